import { assert, describe, it } from "@effect/vitest"
import { Mandate, Principal, Runtime, type TaskEvent, taskFeed } from "@mandate/core"
import { Effect, Fiber, Stream } from "effect"

const alice = Principal.make("alice", ["submitter"])
const dave = Principal.make("dave", ["submitter"])
const bob = Principal.make("bob", ["approver"])
const carol = Principal.make("carol", ["auditor"])
const robot = Principal.make("robot", ["agent"])
const wallet = "A".repeat(60)

describe("taskFeed", () => {
  it.live("streams to each principal the events of the tasks it may see", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const follow = (p: Principal.Principal) =>
          Effect.gen(function* () {
            const stream = yield* taskFeed(p)
            const seen: Array<TaskEvent> = []
            const fiber = yield* Stream.runForEach(stream, (e) => Effect.sync(() => seen.push(e))).pipe(
              Effect.forkScoped
            )
            return { seen, fiber }
          })
        const feeds = {
          alice: yield* follow(alice),
          dave: yield* follow(dave),
          bob: yield* follow(bob),
          carol: yield* follow(carol),
          robot: yield* follow(robot)
        }
        const transfer = yield* runtime.start(
          { kind: "transfer_funds", params: { from: wallet, to: "B".repeat(60), amount: 10 } },
          alice
        )
        const monitoring = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const last = yield* runtime.start({ kind: "monitoring", params: { wallet } }, dave)
        // Later tasks, waited for: events reach a subscriber in publish order, so a feed that saw these has had
        // its chance to see everything before them
        const closingAlice = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const closingDave = yield* runtime.start(
          { kind: "transfer_funds", params: { from: wallet, to: "B".repeat(60), amount: 10 } },
          dave
        )
        const saw = (seen: ReadonlyArray<TaskEvent>, id: string) => seen.some((e) => e.taskId === id)
        while (
          !saw(feeds.carol.seen, closingDave.id) ||
          !saw(feeds.dave.seen, closingDave.id) ||
          !saw(feeds.bob.seen, closingDave.id) ||
          !saw(feeds.alice.seen, closingAlice.id)
        ) {
          yield* Effect.sleep("10 millis")
        }
        const tasks = (seen: ReadonlyArray<TaskEvent>) => [...new Set(seen.map((e) => e.taskId))].sort()
        assert.deepStrictEqual(
          tasks(feeds.carol.seen),
          [transfer.id, monitoring.id, last.id, closingAlice.id, closingDave.id].sort()
        )
        assert.deepStrictEqual(tasks(feeds.alice.seen), [transfer.id, monitoring.id, closingAlice.id].sort())
        assert.deepStrictEqual(tasks(feeds.dave.seen), [last.id, closingDave.id].sort())
        // bob may decide the gated transfers; monitoring needs nobody's approval
        assert.deepStrictEqual(tasks(feeds.bob.seen), [transfer.id, closingDave.id].sort())
        assert.strictEqual(feeds.robot.seen.length, 0)
        yield* Fiber.interrupt(feeds.robot.fiber)
      })
    ).pipe(Effect.provide(Mandate.layerMemory({ runtime: { pollIntervalMs: 10 } })))
  )
})
