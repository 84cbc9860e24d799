/**
 * Host-written ledger entries: what a host application or a person records beside the runtime's own entries (a
 * note on a task, an external system's receipt). The runtime's entry kinds (`task.*`, `approval.*`, `step.*`, …)
 * are its own: a host entry can never pass for a decision or a result. The rules, once, here:
 *
 * - The kind is in a host namespace: `note.*` (people's remarks) or `external.*` (facts from other systems), e.g.
 *   `note.comment`, `external.invoice.paid`. Any other kind is `ReservedEntryKind`.
 * - An entry about a task is allowed only on a task the caller may read (`Access`: its requester, approvers of a
 *   gated task, auditors); any other task id is `TaskNotFound`, as a missing one. A step id must be one of the
 *   task's steps, and needs a task id.
 * - The caller is always the entry's principal: nobody records in someone else's name.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { StepId, TaskId } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import { type AppendReceipt, Ledger } from "./Ledger.ts"
import { EntryKind } from "./LedgerEntry.ts"
import type { LedgerStoreError } from "./LedgerStore.ts"
import { Principal } from "./Principal.ts"
import { readRecord } from "./TaskAccess.ts"
import type { TaskNotFound, TaskStore, TaskStoreError } from "./TaskStore.ts"

/**
 * The namespaces of host entry kinds.
 *
 * @category constants
 * @since 0.1.0
 */
export const hostNamespaces = ["note", "external"] as const

/**
 * Whether a kind is a host entry kind (`note.*` or `external.*`).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isHostKind = (kind: string): boolean => hostNamespaces.some((ns) => kind.startsWith(`${ns}.`))

/**
 * A host tried to record an entry of a kind outside the host namespaces.
 *
 * @category errors
 * @since 0.1.0
 */
export class ReservedEntryKind extends Schema.TaggedError<ReservedEntryKind>()("ReservedEntryKind", {
  kind: Schema.String
}) {
  override get message(): string {
    return `Entry kind "${this.kind}" is reserved: host entries must be note.* or external.* (the runtime writes every other kind)`
  }
}

/**
 * What a host records. Ids are plain strings, checked here.
 *
 * @category models
 * @since 0.1.0
 */
export const HostEntryInput = Schema.Struct({
  kind: EntryKind,
  taskId: Schema.optional(TaskId),
  stepId: Schema.optional(StepId),
  payload: Schema.Unknown,
  storePayload: Schema.optional(Schema.Boolean)
})
export type HostEntryInput = typeof HostEntryInput.Encoded

const decodeInput = decode(HostEntryInput)
const decodePrincipal = decode(Principal, "$.principal")

/**
 * Records a host entry as `principal`, under the rules above.
 *
 * @category constructors
 * @since 0.1.0
 */
export const recordHostEntry = (
  input: HostEntryInput,
  principal: Principal
): Effect.Effect<
  AppendReceipt,
  InvalidInput | ReservedEntryKind | TaskNotFound | TaskStoreError | LedgerStoreError,
  Ledger | TaskStore
> =>
  Effect.gen(function* () {
    const entry = yield* decodeInput(input)
    const caller = yield* decodePrincipal(principal)
    if (!isHostKind(entry.kind)) return yield* new ReservedEntryKind({ kind: entry.kind })
    if (entry.taskId !== undefined) {
      const record = yield* readRecord(entry.taskId, caller)
      if (entry.stepId !== undefined && !record.steps.some((s) => s.id === entry.stepId)) {
        return yield* InvalidInput.at("$.stepId", `Task ${entry.taskId} has no step ${entry.stepId}`)
      }
    } else if (entry.stepId !== undefined) {
      return yield* InvalidInput.at("$.stepId", "A step id needs the task id of its task")
    }
    const ledger = yield* Ledger
    return yield* ledger.append({
      kind: entry.kind,
      ...(entry.taskId === undefined ? {} : { taskId: entry.taskId }),
      ...(entry.stepId === undefined ? {} : { stepId: entry.stepId }),
      principal: caller,
      payload: entry.payload,
      ...(entry.storePayload === undefined ? {} : { storePayload: entry.storePayload })
    })
  }).pipe(Effect.withSpan("HostEntry.recordHostEntry"))
