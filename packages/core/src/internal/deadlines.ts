/**
 * Approval deadlines: a waiting step's deadline is a delayed job on the deadlines queue (so it survives restarts);
 * when it comes due, the step's approval round ends (`Flow.deadlinePassed`) unless approvals settled it first.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { StepId } from "../Ids.ts"
import type { Job } from "../Job.ts"
import * as Worker from "../Worker.ts"
import { decodeStepJob } from "./stepRunner.ts"
import * as Flow from "./taskFlow.ts"
import type { Transitions } from "./transitions.ts"

/**
 * Runs a deadline job: ends the step's approval round if the stored deadline has passed.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (transitions: Transitions) => {
  const { transact } = transitions
  const runDeadline = (job: Job) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload).pipe(Effect.mapError((e) => Worker.JobFailure.permanent(e.message)))
      let early = false
      yield* transact(ref.taskId, (r, _plan, now) => {
        early = Flow.deadlinePending(r, ref.stepId as StepId, ref.round, now)
        return Effect.succeed(Flow.deadlinePassed(r, ref.stepId as StepId, ref.round, now))
      })
      // Due by this worker's clock but not by the stored deadline: try again later (the retry backs off)
      if (early) return yield* Worker.JobFailure.transient("the approval deadline has not passed yet")
      return null
    })
  return runDeadline
}
