/**
 * The API's JSON shapes, as types taken from the API's own schemas (`packages/server/src/api`), so that the
 * console and the server cannot drift apart unnoticed: a renamed field fails the console's type check. Types only:
 * nothing of the server or of Effect reaches the bundle.
 */
import type {
  LedgerOverviewWire as LedgerOverviewSchema,
  TaskEvidenceWire as TaskEvidenceSchema
} from "@mandate/server/api/Audit"
import type * as Models from "@mandate/server/api/Models"
import type { QueueStatsWire } from "@mandate/server/api/Queue"
import type { TaskPageWire } from "@mandate/server/api/Tasks"

export type Principal = typeof Models.PrincipalWire.Encoded
export type Task = typeof Models.TaskWire.Encoded
export type TaskDetail = typeof Models.TaskDetailWire.Encoded
export type TaskPage = typeof TaskPageWire.Encoded
export type TaskStatus = typeof Models.TaskStatusWire.Encoded
export type PlannedStep = typeof Models.PlannedStepWire.Encoded
export type Step = typeof Models.StepWire.Encoded
export type Approval = typeof Models.ApprovalWire.Encoded
export type TaskEvent = typeof Models.TaskEventWire.Encoded
export type FeedEvent = typeof Models.FeedEventWire.Encoded
export type Job = typeof Models.JobWire.Encoded
export type Agent = typeof Models.AgentWire.Encoded
export type LedgerEntry = typeof Models.LedgerEntryWire.Encoded
export type Checkpoint = typeof Models.CheckpointWire.Encoded
export type InclusionProof = typeof Models.InclusionProofWire.Encoded
export type AnchorReceipt = typeof Models.AnchorReceiptWire.Encoded
export type TaskEvidence = typeof TaskEvidenceSchema.Encoded
export type LedgerOverview = typeof LedgerOverviewSchema.Encoded
export type QueueStats = typeof QueueStatsWire.Encoded

export type Role = Principal["roles"][number]
export type TaskState = Task["status"]
export type StepState = Step["status"]

export interface Pools {
  readonly pools: ReadonlyArray<{
    readonly pool: string
    readonly agents: number
    readonly online: number
    readonly degraded: number
    readonly offline: number
  }>
}

export const taskStates: ReadonlyArray<TaskState> = [
  "pending",
  "planning",
  "running",
  "waiting_approval",
  "completed",
  "failed",
  "rejected",
  "cancelled"
]

export const isTerminal = (state: TaskState): boolean =>
  state === "completed" || state === "failed" || state === "rejected" || state === "cancelled"
