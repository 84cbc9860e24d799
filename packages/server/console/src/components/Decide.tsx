/**
 * Approve or reject a step waiting for approval, with a comment. The server decides whether this principal may
 * (roles, four eyes, distinct approvers); a refusal is shown as the server's reason.
 */
import { useState } from "preact/hooks"
import { call } from "../api.ts"
import { ErrorNote } from "../ui.tsx"
import type { TaskStatus } from "../wire.ts"

export const Decide = ({
  taskId,
  stepId,
  onDecided
}: {
  readonly taskId: string
  readonly stepId?: string | undefined
  readonly onDecided?: ((status: TaskStatus, approved: boolean) => void) | undefined
}) => {
  const [comment, setComment] = useState("")
  const [error, setError] = useState<Error | undefined>(undefined)
  const [done, setDone] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const id = `comment-${taskId}-${stepId ?? "step"}`
  const decide = async (approved: boolean) => {
    setBusy(true)
    setError(undefined)
    setDone(undefined)
    try {
      const status = await call<TaskStatus>("POST", `/task/${encodeURIComponent(taskId)}/approve`, {
        approved,
        ...(stepId === undefined ? {} : { step_id: stepId }),
        ...(comment.trim().length === 0 ? {} : { comment: comment.trim() })
      })
      setDone(approved ? "Approved" : "Rejected")
      onDecided?.(status, approved)
    } catch (e) {
      setError(e as Error)
    } finally {
      setBusy(false)
    }
  }
  return (
    <form class="decide" onSubmit={(e) => e.preventDefault()} aria-label={`Decide on ${stepId ?? "the waiting step"}`}>
      <label for={id}>Comment (optional)</label>
      <textarea id={id} rows={2} maxLength={2000} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
      <div class="actions">
        <button type="button" class="approve" disabled={busy} onClick={() => void decide(true)}>
          <span aria-hidden="true">✓ </span>Approve
        </button>
        <button type="button" class="reject" disabled={busy} onClick={() => void decide(false)}>
          <span aria-hidden="true">✗ </span>Reject
        </button>
      </div>
      <ErrorNote error={error} />
      {done !== undefined && (
        <p class="note note-ok" role="status">
          <span aria-hidden="true">✓ </span>
          {done}.
        </p>
      )}
    </form>
  )
}
