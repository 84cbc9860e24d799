/**
 * Queues: depth by state and priority, readiness, wait p50/p95 and failure rate of one queue or all, refreshed
 * every few seconds; the dead letters, with redrive for admins (the runtime's own queues are retried through
 * their tasks, and the server says so). Only what the principal may see is offered: the runtime's queues
 * (`mandate.…`) are suggested, and their jobs listed, to admins only; everyone else reads their statistics.
 */
import { useEffect, useState } from "preact/hooks"
import { call, get } from "../api.ts"
import { href, useLoad } from "../hooks.ts"
import { can, useSession } from "../session.ts"
import { Badge, Empty, ErrorNote, Hash, Section, Time } from "../ui.tsx"
import type { Job, QueueStats } from "../wire.ts"

const ms = (value: number | null) =>
  value === null ? "—" : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`

// The runtime's queues: their statistics are for every reader, their jobs for admins only
const isRuntimeQueue = (queue: string) => queue.startsWith("mandate.")

export const QueuesPage = ({ query }: { readonly query: URLSearchParams }) => {
  const session = useSession()
  const admin = can(session.principal, "admin")
  const queue = query.get("queue") ?? ""
  const showDead = admin || !isRuntimeQueue(queue)
  const stats = useLoad(() => get<QueueStats>("/queue/stats", { queue }), `stats|${queue}`)
  const dead = useLoad(
    () =>
      showDead
        ? get<{ jobs: ReadonlyArray<Job> }>("/queue/jobs", { status: "dead_lettered", queue, limit: 100 })
        : Promise.resolve({ jobs: [] }),
    `dead|${queue}`
  )
  useEffect(() => {
    const timer = setInterval(() => {
      stats.reload()
      dead.reload()
    }, 5000)
    return () => clearInterval(timer)
  }, [stats.reload, dead.reload])
  const s = stats.data
  return (
    <>
      <h1 tabIndex={-1}>Queues</h1>
      <form
        class="filters"
        aria-label="Choose a queue"
        onSubmit={(e) => {
          e.preventDefault()
          const name = String(new FormData(e.currentTarget).get("queue") ?? "").trim()
          location.hash = href("/queues", { queue: name })
        }}
      >
        <div class="field">
          <label for="q-name">Queue</label>
          <input
            id="q-name"
            name="queue"
            list={admin ? "queue-names" : undefined}
            value={queue}
            placeholder="all queues"
            spellcheck={false}
          />
          {admin && (
            <datalist id="queue-names">
              <option value="mandate.steps" />
              <option value="mandate.deadlines" />
            </datalist>
          )}
        </div>
        <button type="submit">Show</button>
      </form>
      <ErrorNote error={stats.error} />
      {s !== undefined && (
        <Section title={queue === "" ? "All queues" : queue}>
          <dl class="stats">
            <div>
              <dt>Ready now</dt>
              <dd>{s.ready}</dd>
            </div>
            <div>
              <dt>Oldest ready job waited</dt>
              <dd>{ms(s.oldest_ready_age_ms)}</dd>
            </div>
            <div>
              <dt>Wait p50</dt>
              <dd>{ms(s.wait_p50_ms)}</dd>
            </div>
            <div>
              <dt>Wait p95</dt>
              <dd>{ms(s.wait_p95_ms)}</dd>
            </div>
            <div>
              <dt>Failure rate</dt>
              <dd>{s.failure_rate === null ? "—" : `${(s.failure_rate * 100).toFixed(1)} %`}</dd>
            </div>
            <div>
              <dt>Dead letters</dt>
              <dd>{s.dead_lettered}</dd>
            </div>
          </dl>
          <div class="two">
            <table class="list" aria-label="Depth by state">
              <caption>Depth by state</caption>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Jobs</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(s.by_state).map(([state, n]) => (
                  <tr key={state}>
                    <td data-label="State">
                      <Badge state={state} />
                    </td>
                    <td data-label="Jobs">{n}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <table class="list" aria-label="Waiting by priority">
              <caption>Waiting by priority</caption>
              <thead>
                <tr>
                  <th scope="col">Priority</th>
                  <th scope="col">Jobs</th>
                </tr>
              </thead>
              <tbody>
                {(["critical", "high", "normal", "low"] as const).map((p) => (
                  <tr key={p}>
                    <td data-label="Priority">{p}</td>
                    <td data-label="Jobs">{s.pending_by_priority[p] ?? 0}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Section>
      )}
      {showDead && (
        <Section title="Dead letters">
          <ErrorNote error={dead.error} />
          {dead.data !== undefined && dead.data.jobs.length === 0 && <Empty>No dead letters.</Empty>}
          {dead.data !== undefined && dead.data.jobs.length > 0 && (
            <table class="list" aria-label="Dead letters">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">Queue</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Since</th>
                  <th scope="col">
                    <span class="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {dead.data.jobs.map((job) => (
                  <DeadLetter key={job.job_id} job={job} onRedriven={dead.reload} />
                ))}
              </tbody>
            </table>
          )}
        </Section>
      )}
    </>
  )
}

const DeadLetter = ({ job, onRedriven }: { readonly job: Job; readonly onRedriven: () => void }) => {
  const session = useSession()
  const [error, setError] = useState<Error | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const redrive = async () => {
    setBusy(true)
    setError(undefined)
    try {
      await call<Job>("POST", `/queue/jobs/${encodeURIComponent(job.job_id)}/redrive`)
      onRedriven()
    } catch (e) {
      setError(e as Error)
    } finally {
      setBusy(false)
    }
  }
  return (
    <tr data-job={job.job_id}>
      <td data-label="Job">
        <Hash value={job.job_id} length={16} />
      </td>
      <td data-label="Queue">{job.queue}</td>
      <td data-label="Attempts">
        {job.attempts} of {job.max_attempts}
      </td>
      <td data-label="Last error">{job.last_error ?? "—"}</td>
      <td data-label="Since">
        <Time at={job.updated_at} />
      </td>
      <td data-label="Action">
        {can(session.principal, "admin") && (
          <button type="button" class="secondary" disabled={busy} onClick={() => void redrive()}>
            Redrive
          </button>
        )}
        <ErrorNote error={error} />
      </td>
    </tr>
  )
}
