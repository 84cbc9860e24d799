/**
 * The approvals inbox: every task waiting for an approval that this principal can see, with the step that waits
 * and why policy gated it; approve or reject with a comment. Updated live: a decided task leaves the inbox.
 */
import { get } from "../api.ts"
import { Decide } from "../components/Decide.tsx"
import { href, useCoalesced, useFollow, useLoad } from "../hooks.ts"
import { useSession } from "../session.ts"
import { Badge, Empty, ErrorNote, Hash, Json, Live, Time } from "../ui.tsx"
import type { Task, TaskDetail, TaskPage } from "../wire.ts"

export const InboxPage = () => {
  const waiting = useLoad(() => get<TaskPage>("/tasks", { status: "waiting_approval", limit: 100 }), "inbox")
  const reload = useCoalesced(waiting.reload)
  const live = useFollow("/tasks/events", (event) => {
    if ((event as { kind?: string }).kind !== "keepalive") reload()
  })
  const tasks = waiting.data?.tasks ?? []
  return (
    <>
      <div class="title-row">
        <h1 tabIndex={-1}>Approvals</h1>
        <Live state={live.state} />
      </div>
      <ErrorNote error={waiting.error} />
      {waiting.data !== undefined && tasks.length === 0 && (
        <Empty>
          <span aria-hidden="true">✓ </span>Nothing waits for a decision.
        </Empty>
      )}
      <ul class="inbox" aria-label="Tasks waiting for approval" data-count={tasks.length}>
        {tasks.map((task) => (
          <li key={task.task_id} data-task={task.task_id}>
            <InboxItem
              task={task}
              onDecided={() => {
                // The decided item leaves the list: keep keyboard focus on the page, not on a vanished button
                document.querySelector<HTMLElement>("main h1")?.focus()
                reload()
              }}
            />
          </li>
        ))}
      </ul>
    </>
  )
}

const InboxItem = ({ task, onDecided }: { readonly task: Task; readonly onDecided: () => void }) => {
  const session = useSession()
  const detail = useLoad(
    () => get<TaskDetail>(`/task/${encodeURIComponent(task.task_id)}`),
    `${task.task_id}|${task.updated_at}`
  )
  const mine = task.requested_by.id === session.principal.id
  const steps = detail.data?.steps.filter((s) => s.status === "waiting_approval") ?? []
  return (
    <article class="panel" aria-labelledby={`inbox-${task.task_id}`}>
      <header class="panel-head">
        <h2 id={`inbox-${task.task_id}`}>
          <a href={href(`/task/${encodeURIComponent(task.task_id)}`)}>{task.task_type}</a>
        </h2>
        <Badge state={task.status} />
      </header>
      <p>
        <Hash value={task.task_id} length={24} /> · requested by <strong>{task.requested_by.id}</strong>
        {mine && <span class="hint"> (you: the server will refuse your own decision)</span>} ·{" "}
        <Time at={task.created_at} />
      </p>
      <details>
        <summary>Parameters</summary>
        <Json value={task.parameters} />
      </details>
      <ErrorNote error={detail.error} />
      {steps.map((step) => {
        const planned = detail.data?.plan.steps.find((s) => s.step_id === step.step_id)
        return (
          <div key={step.step_id} class="waiting">
            <h3>
              Step {step.step_id} <span class="hint">({step.type})</span>
            </h3>
            {planned !== undefined && (
              <p>
                Gated by{" "}
                {planned.decision.matched_rules.map((r) => (
                  <code key={r} class="rule">
                    {r}
                  </code>
                ))}
                {planned.decision.reasons.length > 0 && `: ${planned.decision.reasons.join("; ")}`}
              </p>
            )}
            <Decide taskId={task.task_id} stepId={step.step_id} onDecided={onDecided} />
          </div>
        )
      })}
    </article>
  )
}
