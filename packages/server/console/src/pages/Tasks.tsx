/**
 * Tasks: a list filtered by state, type and requester (kept in the URL), updated live from the all-tasks event
 * stream; and, for submitters, a form to start one.
 */
import { useState } from "preact/hooks"
import { call, get } from "../api.ts"
import { href, useCoalesced, useFollow, useLoad } from "../hooks.ts"
import { can, useSession } from "../session.ts"
import { Badge, Empty, ErrorNote, Hash, Live, Time } from "../ui.tsx"
import { type Task, type TaskPage, taskStates } from "../wire.ts"

const seedTypes = ["transfer_funds", "transaction", "monitoring"]

const seedParams = JSON.stringify({ from: "A".repeat(60), to: "B".repeat(60), amount: 2500 }, null, 2)

export const TasksPage = ({ query }: { readonly query: URLSearchParams }) => {
  const session = useSession()
  const status = query.get("status") ?? ""
  const type = query.get("type") ?? ""
  const requester = query.get("requester") ?? ""
  const [more, setMore] = useState<ReadonlyArray<Task>>([])
  const [cursor, setCursor] = useState<string | undefined>(undefined)
  const filter = { status, task_type: type, requested_by: requester, limit: 50 }
  const page = useLoad(async () => {
    const result = await get<TaskPage>("/tasks", filter)
    setMore([])
    setCursor(result.next_cursor)
    return result
  }, `${status}|${type}|${requester}`)
  const reload = useCoalesced(page.reload)
  const live = useFollow("/tasks/events", (event) => {
    if ((event as { kind?: string }).kind !== "keepalive") reload()
  })
  const tasks = [...(page.data?.tasks ?? []), ...more]

  const loadMore = async () => {
    if (cursor === undefined) return
    const next = await get<TaskPage>("/tasks", { ...filter, cursor })
    setMore((m) => [...m, ...next.tasks])
    setCursor(next.next_cursor)
  }

  return (
    <>
      <div class="title-row">
        <h1 tabIndex={-1}>Tasks</h1>
        <Live state={live.state} />
      </div>
      {can(session.principal, "submitter") && <StartTask />}
      <form
        class="filters"
        aria-label="Filter tasks"
        onSubmit={(e) => {
          e.preventDefault()
          const data = new FormData(e.currentTarget)
          location.hash = href("/tasks", {
            status: String(data.get("status") ?? ""),
            type: String(data.get("type") ?? "").trim(),
            requester: String(data.get("requester") ?? "").trim()
          })
        }}
      >
        <div class="field">
          <label for="f-status">State</label>
          <select id="f-status" name="status" value={status}>
            <option value="">any</option>
            {taskStates.map((s) => (
              <option key={s} value={s}>
                {s.replaceAll("_", " ")}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-type">Type</label>
          <input id="f-type" name="type" list="task-types" value={type} placeholder="any" />
          <datalist id="task-types">
            {seedTypes.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </div>
        <div class="field">
          <label for="f-requester">Requester</label>
          <input id="f-requester" name="requester" value={requester} placeholder="any" spellcheck={false} />
        </div>
        <button type="submit">Filter</button>
        {(status || type || requester) && (
          <a class="button-link" href={href("/tasks")}>
            Clear
          </a>
        )}
      </form>
      <ErrorNote error={page.error} />
      {page.data !== undefined && tasks.length === 0 && <Empty>No tasks match.</Empty>}
      {tasks.length > 0 && (
        <table class="list" aria-label="Tasks" aria-busy={page.loading}>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">Requester</th>
              <th scope="col">Created</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {tasks.map((t) => (
              <tr key={t.task_id} data-task={t.task_id}>
                <td data-label="Task">
                  <a href={href(`/task/${encodeURIComponent(t.task_id)}`)}>
                    <Hash value={t.task_id} length={18} />
                  </a>
                </td>
                <td data-label="Type">{t.task_type}</td>
                <td data-label="State">
                  <Badge state={t.status} />
                </td>
                <td data-label="Requester">{t.requested_by.id}</td>
                <td data-label="Created">
                  <Time at={t.created_at} />
                </td>
                <td data-label="Updated">
                  <Time at={t.updated_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor !== undefined && (
        <button type="button" class="secondary" onClick={() => void loadMore()}>
          Load older tasks
        </button>
      )}
    </>
  )
}

const StartTask = () => {
  const [type, setType] = useState("transfer_funds")
  const [params, setParams] = useState(seedParams)
  const [error, setError] = useState<Error | undefined>(undefined)
  const [started, setStarted] = useState<{ task_id: string; status: string } | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const submit = async () => {
    setError(undefined)
    setStarted(undefined)
    let parameters: unknown
    try {
      parameters = JSON.parse(params)
    } catch (e) {
      setError(new Error(`The parameters are not JSON: ${(e as Error).message}`))
      return
    }
    setBusy(true)
    try {
      setStarted(await call("POST", "/task/start", { task_type: type.trim(), parameters }))
    } catch (e) {
      setError(e as Error)
    } finally {
      setBusy(false)
    }
  }
  return (
    <details class="panel start">
      <summary>Start a task</summary>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void submit()
        }}
      >
        <label for="new-type">Task type</label>
        <input id="new-type" list="task-types" value={type} required onInput={(e) => setType(e.currentTarget.value)} />
        <label for="new-params">Parameters (JSON)</label>
        <textarea
          id="new-params"
          rows={5}
          spellcheck={false}
          value={params}
          onInput={(e) => setParams(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          Start
        </button>
        <ErrorNote error={error} />
        {started !== undefined && (
          <p class="note note-ok" role="status">
            <span aria-hidden="true">✓ </span>Started{" "}
            <a href={href(`/task/${encodeURIComponent(started.task_id)}`)}>{started.task_id}</a> ({started.status})
          </p>
        )}
      </form>
    </details>
  )
}
