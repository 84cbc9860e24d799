/**
 * One task: what was asked, the plan as a graph with each step's policy decision (rules and reasons), attempts and
 * results, the approvals with the hashes they are bound to, and, for whoever the server lets read them (auditors, the
 * requester, the approvers of a gated task), the task's ledger entries, each
 * with a badge the browser computed itself and the anchor transaction with its status. Live: every event of the
 * task reloads it.
 */
import { useEffect, useState } from "preact/hooks"
import { ApiError, call, get } from "../api.ts"
import { Decide } from "../components/Decide.tsx"
import { PlanGraph } from "../components/PlanGraph.tsx"
import { href, useCoalesced, useFollow, useLoad } from "../hooks.ts"
import { can, useSession } from "../session.ts"
import { Badge, Empty, ErrorNote, Hash, Json, Live, Section, Time } from "../ui.tsx"
import { type EntryVerdict, failedChecks, type Verification, verifyEvidence } from "../verify.ts"
import {
  type AnchorReceipt,
  isTerminal,
  type Step,
  type TaskDetail,
  type TaskEvidence,
  type TaskStatus
} from "../wire.ts"

export const TaskPage = ({ taskId }: { readonly taskId: string }) => {
  const session = useSession()
  const path = `/task/${encodeURIComponent(taskId)}`
  const detail = useLoad(() => get<TaskDetail>(path), taskId)
  // Asked of every principal: the server decides who may read a task's trail
  const evidence = useLoad(() => get<TaskEvidence>(`/audit/${encodeURIComponent(taskId)}/evidence`), taskId)
  const reload = useCoalesced(() => {
    detail.reload()
    evidence.reload()
  })
  const terminal = detail.data !== undefined && isTerminal(detail.data.status)
  // A finished task's stream ends at once; follow only while it can still change
  const live = useFollow(detail.data === undefined || terminal ? undefined : `${path}/events`, (event) => {
    if ((event as { kind?: string }).kind !== "keepalive") reload()
  })

  if (detail.data === undefined) {
    return (
      <>
        <h1 tabIndex={-1}>Task</h1>
        <p>
          <Hash value={taskId} length={40} />
        </p>
        {detail.error !== undefined ? <ErrorNote error={detail.error} /> : <p aria-busy="true">Loading…</p>}
        <p>
          <a href={href("/tasks")}>Back to the tasks</a>
        </p>
      </>
    )
  }

  const task = detail.data
  const states = new Map(task.steps.map((s) => [s.step_id, s]))
  const waiting = task.steps.filter((s) => s.status === "waiting_approval")
  const mine = task.requested_by.id === session.principal.id
  return (
    <>
      <div class="title-row">
        <h1 tabIndex={-1}>
          {task.task_type} <Badge state={task.status} />
        </h1>
        {terminal ? <span class="live">finished</span> : <Live state={live.state} />}
      </div>
      <dl class="facts">
        <dt>Task</dt>
        <dd>
          <Hash value={task.task_id} length={40} />
        </dd>
        <dt>Requested by</dt>
        <dd>
          {task.requested_by.id} {mine && <span class="hint">(you)</span>}
        </dd>
        <dt>Priority</dt>
        <dd>{task.priority}</dd>
        <dt>Created</dt>
        <dd>
          <Time at={task.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time at={task.updated_at} />
        </dd>
        <dt>Policy version</dt>
        <dd>{task.policy_version === undefined ? "—" : <Hash value={task.policy_version} />}</dd>
      </dl>
      {task.reasons.length > 0 && (
        <ul class="reasons" aria-label="Reasons">
          {task.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      <details>
        <summary>Parameters</summary>
        <Json value={task.parameters} />
      </details>
      <TaskActions task={task} onChanged={reload} />
      {waiting.length > 0 && can(session.principal, "approver") && (
        <Section title="Waiting for a decision">
          {mine && (
            <p class="hint">
              You requested this task: the server will refuse your decision (four eyes). Ask another approver.
            </p>
          )}
          {waiting.map((step) => (
            <div key={step.step_id} class="waiting">
              <h3>{step.step_id}</h3>
              <DecisionSummary task={task} stepId={step.step_id} />
              <Decide taskId={task.task_id} stepId={step.step_id} onDecided={reload} />
            </div>
          ))}
        </Section>
      )}
      <Section title="Plan">
        <PlanGraph steps={task.plan.steps} states={states} />
        <p class="hint">
          Plan <Hash value={task.plan.plan_id} length={24} />, hash <Hash value={task.plan.hash} />, under policy{" "}
          <Hash value={task.plan.policy_version} />
        </p>
        <ol class="steps">
          {task.plan.steps.map((planned) => (
            <li key={planned.step_id}>
              <StepCard task={task} stepId={planned.step_id} step={states.get(planned.step_id)} />
            </li>
          ))}
        </ol>
      </Section>
      <Approvals task={task} />
      {evidence.error instanceof ApiError && evidence.error.status === 403 ? (
        <Section title="Ledger trail">
          <p class="hint">The server does not show you this task's ledger entries ({evidence.error.message}).</p>
        </Section>
      ) : (
        <Trail evidence={evidence.data} error={evidence.error} loading={evidence.loading} reload={evidence.reload} />
      )}
    </>
  )
}

const TaskActions = ({ task, onChanged }: { readonly task: TaskDetail; readonly onChanged: () => void }) => {
  const session = useSession()
  const [error, setError] = useState<Error | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  if (!can(session.principal, "submitter")) return null
  const act = async (action: "cancel" | "retry") => {
    setBusy(true)
    setError(undefined)
    try {
      await call<TaskStatus>(
        "POST",
        `/task/${encodeURIComponent(task.task_id)}/${action}`,
        action === "cancel" ? {} : undefined
      )
      onChanged()
    } catch (e) {
      setError(e as Error)
    } finally {
      setBusy(false)
    }
  }
  const cancellable = !isTerminal(task.status)
  const retryable = task.status === "failed"
  if (!cancellable && !retryable) return null
  return (
    <div class="actions">
      {cancellable && (
        <button type="button" class="secondary" disabled={busy} onClick={() => void act("cancel")}>
          Cancel task
        </button>
      )}
      {retryable && (
        <button type="button" disabled={busy} onClick={() => void act("retry")}>
          Retry from the failed steps
        </button>
      )}
      <ErrorNote error={error} />
    </div>
  )
}

const DecisionSummary = ({ task, stepId }: { readonly task: TaskDetail; readonly stepId: string }) => {
  const planned = task.plan.steps.find((s) => s.step_id === stepId)
  if (planned === undefined) return null
  const d = planned.decision
  return (
    <div class="decision">
      <Badge state={d.effect} />{" "}
      {d.matched_rules.length > 0 ? (
        <span>
          by rule{d.matched_rules.length > 1 ? "s" : ""}{" "}
          {d.matched_rules.map((r) => (
            <code key={r} class="rule">
              {r}
            </code>
          ))}
        </span>
      ) : (
        <span>no rule matched</span>
      )}
      {d.approvals !== undefined && (
        <span class="hint">
          {" "}
          · {d.approvals.required} approval{d.approvals.required > 1 ? "s" : ""} needed
          {d.approvals.timeout_seconds !== undefined && `, within ${d.approvals.timeout_seconds} s`}
        </span>
      )}
      {d.reasons.length > 0 && (
        <ul class="reasons">
          {d.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
    </div>
  )
}

const StepCard = ({
  task,
  stepId,
  step
}: {
  readonly task: TaskDetail
  readonly stepId: string
  readonly step: Step | undefined
}) => {
  const planned = task.plan.steps.find((s) => s.step_id === stepId)!
  return (
    <article class="step" aria-labelledby={`step-${stepId}`} data-step={stepId}>
      <header>
        <h3 id={`step-${stepId}`}>{stepId}</h3>
        <span class="hint">{planned.type}</span> <Badge state={step?.status ?? "pending"} />
      </header>
      {planned.depends_on.length > 0 && <p class="hint">After {planned.depends_on.join(", ")}</p>}
      <h4>Policy decision</h4>
      <DecisionSummary task={task} stepId={stepId} />
      {step !== undefined && (
        <>
          <p>
            {step.attempts} attempt{step.attempts === 1 ? "" : "s"}
            {step.round > 0 && `, round ${step.round + 1}`} · updated <Time at={step.updated_at} />
            {step.deadline_at !== undefined && (
              <>
                {" "}
                · approval window closes <Time at={step.deadline_at} />
              </>
            )}
          </p>
          {step.error !== undefined && (
            <p class="note note-bad">
              <span aria-hidden="true">✗ </span>
              {step.error.message} {step.error.retryable ? "(retryable)" : "(permanent)"}
            </p>
          )}
          {step.result !== undefined && (
            <details>
              <summary>Result</summary>
              <Json value={step.result} />
            </details>
          )}
        </>
      )}
      <details>
        <summary>Parameters</summary>
        <Json value={planned.parameters} />
        <p class="hint">
          Params hash <Hash value={planned.params_hash} />
        </p>
      </details>
    </article>
  )
}

const Approvals = ({ task }: { readonly task: TaskDetail }) => {
  const paramsHash = new Map(task.plan.steps.map((s) => [s.step_id, s.params_hash]))
  return (
    <Section title="Approvals">
      {task.approvals.length === 0 ? (
        <Empty>No approvals or rejections yet.</Empty>
      ) : (
        <table class="list" aria-label="Approvals">
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">Decision</th>
              <th scope="col">Who</th>
              <th scope="col">When</th>
              <th scope="col">Comment</th>
              <th scope="col">Bound to</th>
            </tr>
          </thead>
          <tbody>
            {task.approvals.map((a) => {
              const bound =
                a.plan_hash === task.plan.hash &&
                a.params_hash === paramsHash.get(a.step_id) &&
                a.policy_version === task.plan.policy_version
              return (
                <tr key={`${a.step_id}-${a.round}-${a.principal.id}-${a.at}`}>
                  <td data-label="Step">
                    {a.step_id}
                    {a.round > 0 && ` (round ${a.round + 1})`}
                  </td>
                  <td data-label="Decision">
                    <Badge state={a.decision === "granted" ? "approved" : "rejected"} />
                  </td>
                  <td data-label="Who">{a.principal.id}</td>
                  <td data-label="When">
                    <Time at={a.at} />
                  </td>
                  <td data-label="Comment">{a.comment ?? "—"}</td>
                  <td data-label="Bound to">
                    plan <Hash value={a.plan_hash} length={8} />, params <Hash value={a.params_hash} length={8} />,
                    policy <Hash value={a.policy_version} length={8} />{" "}
                    <span class={bound ? "ok-text" : "bad-text"}>{bound ? "✓ this plan's" : "✗ not this plan's"}</span>
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
    </Section>
  )
}

const Trail = ({
  evidence,
  error,
  loading,
  reload
}: {
  readonly evidence: TaskEvidence | undefined
  readonly error: Error | undefined
  readonly loading: boolean
  readonly reload: () => void
}) => {
  const [verification, setVerification] = useState<Verification | undefined>(undefined)
  useEffect(() => {
    if (evidence === undefined) return
    let current = true
    void verifyEvidence(evidence).then((v) => {
      if (current) setVerification(v)
    })
    return () => {
      current = false
    }
  }, [evidence])
  const receipt = evidence?.anchored?.anchor
  const verdicts = verification?.entries ?? []
  const failed = verdicts.filter((v) => !v.report.ok).length
  const awaiting = verdicts.filter((v) => v.anchor.state === "awaiting").length
  // The ledger anchors in the background: while entries wait for it, look again now and then
  useEffect(() => {
    if (awaiting === 0) return
    const timer = setInterval(reload, 10_000)
    return () => clearInterval(timer)
  }, [awaiting, reload])
  return (
    <Section title="Ledger trail">
      <ErrorNote error={error} />
      {evidence === undefined ? (
        error === undefined && <p aria-busy={loading}>Loading…</p>
      ) : (
        <>
          <p class="verify-summary" role="status" data-testid="trail-summary">
            {verification === undefined
              ? "Verifying in this browser…"
              : failed === 0
                ? `✓ All ${verdicts.length} entries verified in this browser (Web Crypto: SHA-256, Merkle inclusion, Ed25519).`
                : `✗ ${failed} of ${verdicts.length} entries failed verification in this browser.`}
          </p>
          <p class="hint">
            Checkpoint {evidence.checkpoint.size}, signed by key <Hash value={evidence.key_id} />
            {verification !== undefined && (
              <>
                {" "}
                ·{" "}
                {verification.pin === "changed" ? (
                  <span class="bad-text">
                    ✗ a different key than this browser pinned
                    {verification.pinnedKeyId !== undefined && (
                      <>
                        {" "}
                        (<Hash value={verification.pinnedKeyId} />)
                      </>
                    )}
                  </span>
                ) : verification.pin === "pinned now" ? (
                  "key pinned in this browser now"
                ) : (
                  "✓ the key this browser pinned"
                )}
              </>
            )}
          </p>
          {receipt !== undefined && <AnchorStatus receipt={receipt} />}
          <p class="hint">
            {receipt === undefined
              ? "The ledger has not been anchored yet: entries wait for the first anchoring."
              : awaiting === 0
                ? `Every entry of this task is in the anchored tree of ${receipt.size} entries.`
                : `${awaiting} of this task's entries came after the latest anchored tree (${receipt.size} entries) and wait for the next anchoring.`}{" "}
            <button type="button" class="link" onClick={reload}>
              Check again
            </button>
          </p>
          <table class="list trail" aria-label="Ledger entries">
            <thead>
              <tr>
                <th scope="col">Seq</th>
                <th scope="col">Kind</th>
                <th scope="col">Step</th>
                <th scope="col">By</th>
                <th scope="col">At</th>
                <th scope="col">Entry hash</th>
                <th scope="col">Verified here</th>
                <th scope="col">Anchor</th>
              </tr>
            </thead>
            <tbody>
              {evidence.entries.map((entry, i) => (
                <EntryRow key={entry.seq} entry={entry} verdict={verdicts[i]} />
              ))}
            </tbody>
          </table>
        </>
      )}
    </Section>
  )
}

const EntryRow = ({
  entry,
  verdict
}: {
  readonly entry: TaskEvidence["entries"][number]
  readonly verdict: EntryVerdict | undefined
}) => (
  <tr data-seq={entry.seq} data-kind={entry.kind}>
    <td data-label="Seq">{entry.seq}</td>
    <td data-label="Kind">{entry.kind}</td>
    <td data-label="Step">{entry.step_id ?? "—"}</td>
    <td data-label="By">{entry.principal?.id ?? "—"}</td>
    <td data-label="At">
      <Time at={entry.at} />
    </td>
    <td data-label="Entry hash">
      <Hash value={entry.entry_hash} />
    </td>
    <td data-label="Verified here">
      {verdict === undefined ? (
        <span class="badge badge-idle" data-verdict="checking">
          <span aria-hidden="true">…</span> checking
        </span>
      ) : (
        <details class="verdict">
          <summary>
            {verdict.report.ok ? (
              <span class="badge badge-ok" data-verdict="verified">
                <span aria-hidden="true">✓</span> verified
              </span>
            ) : (
              <span class="badge badge-bad" data-verdict="failed">
                <span aria-hidden="true">✗</span> failed: {failedChecks(verdict.report).join(", ")}
              </span>
            )}
          </summary>
          <ul class="checks">
            {(
              [
                ["Payload hash", verdict.report.payloadHash],
                ["Entry hash", verdict.report.entryHash],
                ["Inclusion proof", verdict.report.inclusion],
                ["Checkpoint signature", verdict.report.signature]
              ] as const
            ).map(([name, check]) =>
              check === undefined ? (
                <li key={name}>{name}: payload not stored (only its hash)</li>
              ) : (
                <li key={name} class={check.ok ? "ok-text" : "bad-text"}>
                  {check.ok ? "✓" : "✗"} {name}: {check.detail}
                </li>
              )
            )}
          </ul>
        </details>
      )}
    </td>
    <td data-label="Anchor">
      {verdict === undefined ? (
        "…"
      ) : verdict.anchor.state === "anchored" ? (
        <span title={verdict.anchor.detail}>
          <span aria-hidden="true">⚓ </span>tx <Hash value={verdict.anchor.receipt.tx_id} length={10} />
        </span>
      ) : verdict.anchor.state === "failed" ? (
        <span class="bad-text">✗ {verdict.anchor.detail}</span>
      ) : (
        <span class="hint">awaiting the next anchor</span>
      )}
    </td>
  </tr>
)

/** The anchor transaction as the chain reports it now, checked against the receipt. */
const AnchorStatus = ({ receipt }: { readonly receipt: AnchorReceipt }) => {
  const tx = useLoad(() => get<AnchorReceipt>(`/tx/${encodeURIComponent(receipt.tx_id)}`), receipt.tx_id)
  const chain = tx.data
  const matches = chain !== undefined && chain.root === receipt.root && chain.size === receipt.size
  return (
    <p class="anchor" data-testid="anchor">
      <span aria-hidden="true">⚓ </span>
      Latest anchor on {receipt.chain}: transaction <Hash value={receipt.tx_id} length={16} />, tick {receipt.tick},
      carrying the root of the ledger's first {receipt.size} entries.{" "}
      {chain !== undefined ? (
        <>
          Chain says: <Badge state={chain.status} />
          {chain.confirmed_at !== undefined && (
            <>
              {" "}
              at <Time at={chain.confirmed_at} />
            </>
          )}{" "}
          <span class={matches ? "ok-text" : "bad-text"}>
            {matches ? "✓ carries this root" : "✗ carries another root"}
          </span>
        </>
      ) : tx.error instanceof ApiError && tx.error.status === 403 ? (
        <>
          Receipt says: <Badge state={receipt.status} />{" "}
          <span class="hint">(the chain itself is asked by auditors)</span>
        </>
      ) : tx.error !== undefined ? (
        <span class="bad-text">Chain lookup failed: {tx.error.message}</span>
      ) : (
        "Asking the chain…"
      )}
    </p>
  )
}
