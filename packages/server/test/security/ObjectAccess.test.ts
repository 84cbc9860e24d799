/**
 * Issue 12, findings 9 and 4, as the attacks they were, over HTTP, on memory, Postgres and Redis:
 * - 9: a submitter read everyone's tasks (list, detail, status, event streams: OWASP API1, broken object-level
 *   authorization). Now a task a principal may not read answers 404 exactly as a missing one, and listings hold
 *   only the tasks it may read, page after full page.
 * - 4: anyone wrote reserved ledger entries (`approval.granted` "by dave" on alice's task, or on no task at all).
 *   Now host entries are `note.*` / `external.*` only, on a task the caller may read, always in the caller's name.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, type Layer, Stream } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

const transfer = (amount = 2_500) => ({
  task_type: "transfer_funds",
  parameters: { from: walletA, to: walletB, amount }
})
const monitoring = { task_type: "monitoring", parameters: { wallet: walletA } }

const start = (token: string, body: unknown) =>
  Effect.gen(function* () {
    const started = yield* call("POST", "/task/start", { token, body })
    assert.strictEqual(started.status, 200, started.text)
    return { taskId: started.body.task_id as string, planId: started.body.plan_id as string }
  })

/** A 404 body with the asked-for id replaced, so that a hidden task's answer can be compared with a missing one's. */
const anonymised = (reply: TestServer.Reply, id: string) => JSON.parse(reply.text.split(id).join("<id>"))

/** The status of a request and, for an event stream, the first event it sends (then the stream is dropped). */
const firstEvent = (path: string, token: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = HttpClient.withScope(yield* HttpClient.HttpClient)
      const response = yield* client.execute(HttpClientRequest.get(path).pipe(HttpClientRequest.bearerToken(token)))
      if (response.status !== 200) return { status: response.status, first: undefined }
      const chunk = yield* response.stream.pipe(Stream.decodeText(), Stream.take(1), Stream.runCollect)
      return { status: response.status, first: TestServer.parseSse(chunk.join(""))[0] }
    })
  ).pipe(Effect.orDie)

/** Collects what a principal's task feed (`/tasks/events`) streams until `until` holds for it. */
const followFeed = (token: string) =>
  Effect.gen(function* () {
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    const response = yield* client.execute(
      HttpClientRequest.get("/tasks/events").pipe(HttpClientRequest.bearerToken(token))
    )
    assert.strictEqual(response.status, 200)
    const seen: Array<any> = []
    let buffer = ""
    yield* response.stream.pipe(
      Stream.decodeText(),
      Stream.runForEach((text) =>
        Effect.sync(() => {
          buffer += text
          const blocks = buffer.split("\n\n")
          buffer = blocks.pop() ?? ""
          seen.push(...TestServer.parseSse(blocks.map((b) => `${b}\n\n`).join("")))
        })
      ),
      Effect.forkScoped
    )
    return {
      until: (done: (events: ReadonlyArray<any>) => boolean) =>
        Effect.gen(function* () {
          while (!done(seen)) yield* Effect.sleep(Duration.millis(20))
          return [...seen]
        })
    }
  }).pipe(Effect.orDie)

const objectAccess = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "90 seconds" })(name, (it) => {
    it.effect("finding 9: dave cannot list, read, poll or stream alice's task; it answers as a missing one", () =>
      Effect.gen(function* () {
        const { taskId, planId } = yield* start(tokens.alice, transfer(2_345))
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")

        // The listing: dave's own tasks only, even when he asks for alice's
        const mine = yield* start(tokens.dave, monitoring)
        for (const query of ["", "?requested_by=alice", "?status=waiting_approval", "?task_type=transfer_funds"]) {
          const listed = yield* call("GET", `/tasks${query}`, { token: tokens.dave })
          assert.strictEqual(listed.status, 200, listed.text)
          assert.isFalse(listed.text.includes(taskId), `/tasks${query} shows alice's task to dave`)
          assert.isTrue(
            listed.body.tasks.every((t: any) => t.requested_by.id === "dave"),
            `/tasks${query}`
          )
        }
        assert.include(
          (yield* call("GET", "/tasks", { token: tokens.dave })).body.tasks.map((t: any) => t.task_id),
          mine.taskId
        )

        // Each read of the task: 404, the same answer as for a task that does not exist
        const missing = "task_doesnotexist0000000"
        for (const suffix of ["", "/status"]) {
          const hidden = yield* call("GET", `/task/${taskId}${suffix}`, { token: tokens.dave })
          const none = yield* call("GET", `/task/${missing}${suffix}`, { token: tokens.dave })
          assert.strictEqual(hidden.status, 404, hidden.text)
          assert.deepStrictEqual(anonymised(hidden, taskId), anonymised(none, missing))
          // Without the id itself: a random task id can hold the digits 2345
          const withoutId = hidden.text.split(taskId).join("")
          assert.isFalse(withoutId.includes(walletA) || withoutId.includes("2345"))
        }
        for (const path of [`/audit/${taskId}`, `/audit/${taskId}/evidence`, `/plan/${planId}`]) {
          assert.strictEqual((yield* call("GET", path, { token: tokens.dave })).status, 404, path)
        }
        const stream = yield* firstEvent(`/task/${taskId}/events`, tokens.dave)
        assert.strictEqual(stream.status, 404)
        // Acting on it is no different: 404, never a 403 that would confirm it exists
        for (const [path, body] of [
          [`/task/${taskId}/cancel`, {}],
          [`/task/${taskId}/retry`, undefined]
        ] as const) {
          const acted = yield* call("POST", path, { token: tokens.dave, ...(body === undefined ? {} : { body }) })
          assert.strictEqual(acted.status, 404, `${path}: ${acted.text}`)
        }

        // The owner, the approvers who may decide it, the auditor and the admin still read it
        for (const token of [tokens.alice, tokens.bob, tokens.erin, tokens.carol, tokens.root]) {
          const read = yield* call("GET", `/task/${taskId}`, { token })
          assert.strictEqual(read.status, 200, read.text)
          assert.strictEqual((yield* firstEvent(`/task/${taskId}/events`, token)).first?.kind, "task.snapshot")
        }
        // An approver does not read an ungated task (nothing in it for an approver to decide)
        const plain = yield* start(tokens.alice, monitoring)
        assert.strictEqual((yield* call("GET", `/task/${plain.taskId}`, { token: tokens.bob })).status, 404)
        assert.strictEqual((yield* call("GET", `/task/${plain.taskId}`, { token: tokens.alice })).status, 200)
        // Agents read no tasks at all
        assert.strictEqual((yield* call("GET", `/task/${taskId}`, { token: tokens.robot })).status, 403)
      })
    )

    it.effect("finding 9: the task feed streams to dave his own tasks only", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const daveFeed = yield* followFeed(tokens.dave)
          const carolFeed = yield* followFeed(tokens.carol)
          const alices = yield* start(tokens.alice, transfer(1_234))
          const daves = yield* start(tokens.dave, monitoring)
          // Events reach each subscriber in publish order: once dave's own task shows, alice's came and went
          const has = (id: string) => (events: ReadonlyArray<any>) => events.some((e) => e.task_id === id)
          yield* carolFeed.until((e) => has(alices.taskId)(e) && has(daves.taskId)(e))
          const daveSaw = yield* daveFeed.until(has(daves.taskId))
          assert.isFalse(has(alices.taskId)(daveSaw))
          // Whatever else he saw is his own (earlier tasks of his may still be running)
          for (const id of new Set(daveSaw.flatMap((e) => (e.task_id === undefined ? [] : [e.task_id as string])))) {
            const read = yield* call("GET", `/task/${id}`, { token: tokens.dave })
            assert.strictEqual(read.body.requested_by.id, "dave")
          }
        })
      )
    )

    it.effect("finding 9: a listing filtered by what the caller may read keeps its pages full and exact", () =>
      Effect.gen(function* () {
        // Erin's tasks interleaved with many of alice's newer ones: erin pages through hers alone
        const hers: Array<string> = []
        for (let i = 0; i < 3; i++) {
          hers.push((yield* start(tokens.erin, monitoring)).taskId)
          for (let j = 0; j < 4; j++) yield* start(tokens.alice, monitoring)
        }
        const seen: Array<string> = []
        let cursor: string | undefined
        do {
          const page = yield* call("GET", `/tasks?task_type=monitoring&limit=1${cursor ? `&cursor=${cursor}` : ""}`, {
            token: tokens.erin
          })
          assert.strictEqual(page.status, 200, page.text)
          assert.isAtMost(page.body.tasks.length, 1)
          seen.push(...page.body.tasks.map((t: any) => t.task_id))
          cursor = page.body.next_cursor
        } while (cursor !== undefined && seen.length < 50)
        // Erin's own monitoring tasks, newest first, one per page (alice's are ungated: an approver has nothing to
        // decide there, so they are not hers to read)
        assert.deepStrictEqual(seen, [...hers].reverse())
      })
    )

    it.effect("finding 4: dave cannot write reserved entries, nor any entry on alice's task or on no task", () =>
      Effect.gen(function* () {
        const { taskId } = yield* start(tokens.alice, transfer(2_222))
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        const before = (yield* call("GET", `/audit/${taskId}`, { token: tokens.alice })).body.entries.length

        // The attack as reported: a forged approval and a forged step result, in dave's name, on alice's task
        for (const kind of ["approval.granted", "step.succeeded", "task.completed", "policy.decided", "invoice.paid"]) {
          const forged = yield* call("POST", "/audit/record", {
            token: tokens.dave,
            body: { kind, task_id: taskId, step_id: "onchain_action", payload: {} }
          })
          assert.strictEqual(forged.status, 422, `${kind}: ${forged.text}`)
          assert.strictEqual(forged.body.error, "unprocessable")
          assert.match(forged.body.message, /reserved: host entries must be note\.\* or external\.\*/)
        }
        // Even a host kind: not on a task dave may not read, nor on one that does not exist
        for (const id of [taskId, "task_doesnotexist0000000"]) {
          const note = yield* call("POST", "/audit/record", {
            token: tokens.dave,
            body: { kind: "note.comment", task_id: id, payload: { text: "approved by me" } }
          })
          assert.strictEqual(note.status, 404, note.text)
        }
        const after = yield* call("GET", `/audit/${taskId}`, { token: tokens.alice })
        assert.strictEqual(after.body.entries.length, before)
        assert.isFalse(after.body.entries.some((e: any) => e.principal?.id === "dave"))
        assert.isFalse(after.body.entries.some((e: any) => e.kind === "approval.granted"))
        // The task still waits for a real approval
        assert.strictEqual(
          (yield* call("GET", `/task/${taskId}/status`, { token: tokens.alice })).body.status,
          "waiting_approval"
        )
      })
    )

    it.effect(
      "finding 4: host entries in their namespace, on tasks the caller reads, always in the caller's name",
      () =>
        Effect.gen(function* () {
          const { taskId } = yield* start(tokens.alice, transfer(2_111))
          yield* waitForStatus(taskId, (s) => s === "waiting_approval")
          for (const [token, who] of [
            [tokens.alice, "alice"],
            [tokens.bob, "bob"],
            [tokens.carol, "carol"]
          ] as const) {
            // A principal field in the body names nobody: the entry is the caller's
            const recorded = yield* call("POST", "/audit/record", {
              token,
              body: {
                kind: "note.comment",
                task_id: taskId,
                step_id: "onchain_action",
                payload: { text: `from ${who}` },
                principal: { id: "root", roles: ["admin"] }
              }
            })
            assert.strictEqual(recorded.status, 200, recorded.text)
            const verified = yield* call("GET", `/verify/${recorded.body.entry_hash}`, { token: tokens.carol })
            assert.strictEqual(verified.body.entry.principal.id, who)
            assert.strictEqual(verified.body.entry.task_id, taskId)
          }
          const external = yield* call("POST", "/audit/record", {
            token: tokens.robot,
            body: { kind: "external.payment.settled", payload: { ref: "PAY-1" } }
          })
          assert.strictEqual(external.status, 200, external.text)
          // An agent reads no task, so it records on none
          const onTask = yield* call("POST", "/audit/record", {
            token: tokens.robot,
            body: { kind: "external.payment.settled", task_id: taskId, payload: {} }
          })
          assert.strictEqual(onTask.status, 404)
          // A step that is not the task's, or a step without its task
          const wrongStep = yield* call("POST", "/audit/record", {
            token: tokens.alice,
            body: { kind: "note.comment", task_id: taskId, step_id: "no_such_step", payload: {} }
          })
          assert.strictEqual(wrongStep.status, 400)
          assert.strictEqual(wrongStep.body.path, "$.step_id")
          const orphan = yield* call("POST", "/audit/record", {
            token: tokens.alice,
            body: { kind: "note.comment", step_id: "onchain_action", payload: {} }
          })
          assert.strictEqual(orphan.status, 400)
          const notes = (yield* call("GET", `/audit/${taskId}`, { token: tokens.alice })).body.entries.filter(
            (e: any) => e.kind === "note.comment"
          )
          assert.deepStrictEqual(
            notes.map((e: any) => e.principal.id),
            ["alice", "bob", "carol"]
          )
          // The ledger still verifies end to end
          const last = notes[notes.length - 1]
          assert.strictEqual((yield* call("GET", `/verify/${last.entry_hash}`, { token: tokens.carol })).status, 200)
        })
    )
  })

describe("security: object-level access (issue 12, findings 4 and 9)", () => {
  objectAccess("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    objectAccess("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    objectAccess("redis", TestRedis.services())
  })
})
