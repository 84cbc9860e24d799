import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus, openEvents } = TestServer

layer(TestServer.layer(TestServer.memoryServices(), { sseKeepAlive: "100 millis" }), { excludeTestServices: true })(
  "task event streams with a keepalive",
  (it) => {
    it.effect("an idle stream sends keepalive events with the task's status, then the task's events as usual", () =>
      Effect.gen(function* () {
        const started = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }
        })
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        const stream = yield* openEvents(taskId)
        assert.strictEqual(stream.status, 200)
        // Idle for a while: the task waits for an approver
        yield* Effect.sleep("450 millis")
        yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        const events = yield* stream.events
        assert.strictEqual(events[0].kind, "task.snapshot")
        const keepAlives = events.filter((e) => e.kind === "keepalive")
        assert.isAtLeast(keepAlives.length, 2, JSON.stringify(events.map((e) => e.kind)))
        for (const k of keepAlives) {
          assert.strictEqual(k.task_id, taskId)
          assert.strictEqual(k.seq, 0)
        }
        // Those sent while the task waited carry its status then
        assert.strictEqual(keepAlives[0].status, "waiting_approval")
        const live = events.slice(1).filter((e) => e.kind !== "keepalive")
        assert.includeMembers(
          live.map((e) => e.kind),
          ["approval.granted", "step.succeeded", "task.completed"]
        )
        // The stream still ends with the task
        assert.strictEqual(events[events.length - 1].kind, "task.completed")
      })
    )
  }
)
