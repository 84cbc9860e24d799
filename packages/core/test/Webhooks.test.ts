import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import {
  decodeWebhooksConfig,
  Mandate,
  Principal,
  Queue,
  QueueStoreError,
  Runtime,
  type TaskEvent,
  UnitOfWork,
  Webhook,
  WebhookStore,
  Webhooks,
  type WebhooksOptions,
  webhooksQueue
} from "@mandate/core"
import { Context, Deferred, Effect, Exit, Layer, Queue as Q, type Schema, type Scope, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { Webhook as StandardWebhook } from "standardwebhooks"

const admin = Principal.make("root", ["admin"])
const alice = Principal.make("alice", ["submitter"])
const bob = Principal.make("bob", ["approver"])
const wallet = "A".repeat(60)
const blocked = "C".repeat(60)
const publicUrl = "https://mandate.example.com/"

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A local receiver on port 0: answers the n-th request (1-based) with `status(n)`, and queues what it got. */
const receiver = (status: (n: number) => number) =>
  Effect.gen(function* () {
    const received = yield* Q.unbounded<Received>()
    let count = 0
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        count++
        Q.offerUnsafe(received, { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") })
        response.writeHead(status(count), { "content-type": "text/plain" }).end("ok")
      })
    })
    yield* Effect.acquireRelease(
      Effect.callback<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`
    return { url, received, count: () => count }
  })

const services = (options?: WebhooksOptions, queue?: Layer.Layer<Queue, never, Queue>) => {
  const mandate = Mandate.layerMemory({
    runtime: { pollIntervalMs: 10 },
    blockedWallets: [blocked],
    queue: { backoff: { baseMs: 1, capMs: 20 }, requeueIntervalMs: 10 }
  })
  const webhooks = Webhooks.layer({ publicUrl, worker: { pollIntervalMs: 10 }, ...options }).pipe(
    Layer.provide([WebhookStore.layerMemory(), FetchHttpClient.layer, ...(queue === undefined ? [] : [queue])])
  )
  return webhooks.pipe(Layer.provideMerge(mandate))
}

/** Every delivery update from now on, in order, in a queue for the test to take from. */
const subscribed = (updates: Effect.Effect<Stream.Stream<Webhook.Delivery>, never, Scope.Scope>) =>
  Effect.gen(function* () {
    const stream = yield* updates
    const queue = yield* Q.unbounded<Webhook.Delivery>()
    yield* Effect.forkScoped(Stream.runForEach(stream, (d) => Q.offer(queue, d)))
    return queue
  })

/** Waits for the next update of a delivery matching `which` that reaches `status`. */
const awaitStatus = (
  updates: Q.Queue<Webhook.Delivery>,
  which: (d: Webhook.Delivery) => boolean,
  status: Webhook.DeliveryStatus
) =>
  Effect.gen(function* () {
    while (true) {
      const d = yield* Q.take(updates)
      if (which(d) && d.status === status) return d
    }
  })

describe("Webhooks", () => {
  it.live("signs deliveries the Standard Webhooks way, with a link to the task's console page", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 204)
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const created = yield* webhooks.create(admin, { url: hook.url, events: ["approval.needed", "task.completed"] })
        assert.match(created.secret, /^whsec_[A-Za-z0-9+/]+=*$/)
        // The secret is shown once: listings leave it out
        const listed = yield* webhooks.list(admin)
        assert.deepStrictEqual(
          listed.map((s) => s.id),
          [created.id]
        )
        assert.isFalse("secret" in listed[0]!)

        const task = yield* runtime.start(
          { kind: "transfer_funds", params: { from: wallet, to: "B".repeat(60), amount: 10 } },
          alice
        )
        const verifier = new StandardWebhook(created.secret)
        const first = yield* Q.take(hook.received)
        const message = verifier.verify(first.body, first.headers as Record<string, string>) as Webhook.Message
        assert.strictEqual(message.type, "approval.needed")
        assert.strictEqual(message.data.task_id, task.id)
        assert.strictEqual(message.data.link, `https://mandate.example.com/#/task/${task.id}`)
        assert.strictEqual(message.data.event, "step.waiting_approval")
        assert.isDefined(message.data.step_id)
        assert.strictEqual(first.headers["content-type"], "application/json")
        // Our own verification agrees with the reference, and a changed body fails both
        const id = String(first.headers["webhook-id"])
        const timestamp = Number(first.headers["webhook-timestamp"])
        const signature = String(first.headers["webhook-signature"])
        assert.isTrue(Webhook.verify(created.secret, id, timestamp, first.body, signature))
        const tampered = first.body.replace(task.id, "task_someone_else")
        assert.isFalse(Webhook.verify(created.secret, id, timestamp, tampered, signature))
        assert.throws(() => verifier.verify(tampered, first.headers as Record<string, string>))
        assert.throws(() =>
          new StandardWebhook(Webhook.generateSecret()).verify(first.body, first.headers as Record<string, string>)
        )

        yield* runtime.approve(task.id, bob)
        const second = yield* Q.take(hook.received)
        const done = verifier.verify(second.body, second.headers as Record<string, string>) as Webhook.Message
        assert.strictEqual(done.type, "task.completed")
        assert.strictEqual(done.data.state, "completed")
        assert.notStrictEqual(second.headers["webhook-id"], first.headers["webhook-id"])

        const deliveries = yield* webhooks.deliveries(admin, { webhookId: created.id })
        assert.sameMembers(
          deliveries.map((d) => d.type),
          ["approval.needed", "task.completed"]
        )
      })
    ).pipe(Effect.provide(services()))
  )

  it.live("tells of a denied task, a step that failed for good and the task it failed", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 200)
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const created = yield* webhooks.create(admin, {
          url: hook.url,
          events: ["task.rejected", "task.failed", "step.dead_lettered"]
        })
        const verifier = new StandardWebhook(created.secret)
        const next = Effect.map(
          Q.take(hook.received),
          (r) => verifier.verify(r.body, r.headers as Record<string, string>) as Webhook.Message
        )
        const denied = yield* Effect.flip(
          runtime.start(
            { kind: "transfer_funds", params: { from: wallet, to: "B".repeat(60), amount: 2_000_000 } },
            alice
          )
        )
        assert.strictEqual(denied._tag, "TaskRejected")
        const rejected = yield* next
        assert.strictEqual(rejected.type, "task.rejected")
        assert.include(
          (rejected.data.details as { reasons: ReadonlyArray<string> }).reasons,
          "step onchain_action (onchain_action): transfers above 1,000,000 QU are denied"
        )

        const failing = yield* runtime.start(
          { kind: "transfer_funds", params: { from: blocked, to: "B".repeat(60), amount: 10 } },
          alice
        )
        const messages = [yield* next, yield* next]
        const byType = new Map(messages.map((m) => [m.type, m]))
        assert.sameMembers([...byType.keys()], ["step.dead_lettered", "task.failed"])
        const dead = byType.get("step.dead_lettered")!
        assert.strictEqual(dead.data.task_id, failing.id)
        assert.strictEqual(dead.data.step_id, "policy_check")
        assert.strictEqual(dead.data.event, "step.failed")
        assert.strictEqual(byType.get("task.failed")!.data.state, "failed")
      })
    ).pipe(Effect.provide(services()))
  )

  it.live("retries after 500s through the queue and delivers the same message", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver((n) => (n <= 2 ? 500 : 200))
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const updates = yield* subscribed(webhooks.updates)
        const created = yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
        const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const delivered = yield* awaitStatus(updates, (d) => d.taskId === task.id, "delivered")
        assert.strictEqual(hook.count(), 3)
        const ids = new Set<string>()
        for (let i = 0; i < 3; i++) ids.add(String((yield* Q.take(hook.received)).headers["webhook-id"]))
        assert.deepStrictEqual([...ids], [delivered.id])
        assert.strictEqual(delivered.attempts, 3)
        assert.strictEqual(delivered.lastStatus, 200)
        const queue = yield* Queue
        const job = yield* queue.get(delivered.jobId)
        assert.strictEqual(job.queue, webhooksQueue)
        assert.strictEqual(job.state, "completed")
        assert.strictEqual(job.failures, 2)
        const [listed] = yield* webhooks.deliveries(admin, { webhookId: created.id })
        assert.strictEqual(listed?.status, "delivered")
      })
    ).pipe(Effect.provide(services()))
  )

  it.live("dead-letters a delivery after its last attempt; an admin can send it again", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver((n) => (n <= 3 ? 500 : 200))
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const updates = yield* subscribed(webhooks.updates)
        yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
        const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const retrying = yield* awaitStatus(updates, (d) => d.taskId === task.id, "retrying")
        assert.strictEqual(retrying.lastError, "HTTP 500")
        assert.isDefined(retrying.nextAttemptAt)
        const dead = yield* awaitStatus(updates, (d) => d.taskId === task.id, "dead_lettered")
        assert.strictEqual(dead.attempts, 3)
        assert.strictEqual(hook.count(), 3)
        const job = yield* (yield* Queue).get(dead.jobId)
        assert.strictEqual(job.state, "dead_lettered")
        const listed = yield* webhooks.deliveries(admin, { status: "dead_lettered" })
        assert.deepStrictEqual(
          listed.map((d) => d.id),
          [dead.id]
        )

        assert.strictEqual((yield* Effect.flip(webhooks.retry(bob, dead.id)))._tag, "Forbidden")
        assert.strictEqual((yield* Effect.flip(webhooks.retry(admin, "msg_unknown")))._tag, "WebhookDeliveryNotFound")
        const again = yield* webhooks.retry(admin, dead.id)
        assert.strictEqual(again.status, "pending")
        const delivered = yield* awaitStatus(updates, (d) => d.id === dead.id, "delivered")
        assert.strictEqual(delivered.lastStatus, 200)
        assert.strictEqual(hook.count(), 4)
        // Only a dead letter goes back
        assert.strictEqual((yield* Effect.flip(webhooks.retry(admin, dead.id)))._tag, "IllegalTransition")
      })
    ).pipe(Effect.provide(services({ maxAttempts: 3 })))
  )

  it.live("delivers one event once across a worker restart and a replay of the event", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 200)
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const queue = yield* Queue
        const updates = yield* subscribed(webhooks.updates)
        const events = yield* runtime.events()
        const completions = yield* Q.unbounded<TaskEvent>()
        yield* Effect.forkScoped(
          Stream.runForEach(events, (e) => (e.kind === "task.completed" ? Q.offer(completions, e) : Effect.void))
        )
        yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })

        // Worker A delivers the first event, then stops
        const first = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const a = yield* Effect.gen(function* () {
          yield* webhooks.startWorker({ workerId: "webhooks-a", pollIntervalMs: 10 })
          return yield* awaitStatus(updates, (d) => d.taskId === first.id, "delivered")
        }).pipe(Effect.scoped)
        const event = yield* Q.take(completions)
        assert.strictEqual(event.taskId, first.id)

        // The same event offered again (a restarted listener, a replay) is the same job and no new delivery
        const replayed = yield* webhooks.notify(event)
        assert.deepStrictEqual(
          replayed.map((d) => [d.id, d.jobId, d.status]),
          [[a.id, a.jobId, "delivered"]]
        )

        // Worker B starts; a second event shows it has worked the queue
        yield* webhooks.startWorker({ workerId: "webhooks-b", pollIntervalMs: 10 })
        const second = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        yield* awaitStatus(updates, (d) => d.taskId === second.id, "delivered")
        const page = yield* queue.list({ queue: webhooksQueue })
        assert.strictEqual(page.jobs.length, 2)
        assert.isTrue(page.jobs.every((j) => j.state === "completed" && j.attempts === 1))
        const seen: Array<string> = []
        while (Q.sizeUnsafe(hook.received) > 0) seen.push(String((yield* Q.take(hook.received)).headers["webhook-id"]))
        assert.strictEqual(seen.length, 2)
        assert.strictEqual(new Set(seen).size, 2)
      })
    ).pipe(Effect.provide(services({ workers: false })))
  )

  it.live("a transition's deliveries commit with it: a process that stops right after the commit loses none", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 200)
        // The stores outlive the processes, as a database does
        const stores = yield* Layer.build(
          Mandate.layerMemoryStores({ queue: { backoff: { baseMs: 1, capMs: 20 }, requeueIntervalMs: 10 } })
        )
        const webhookStore = Layer.succeedContext(yield* Layer.build(WebhookStore.layerMemory()))
        const process = (storesOf: Layer.Layer<Mandate.Stores>, options: WebhooksOptions) =>
          Webhooks.layer({ publicUrl, worker: { pollIntervalMs: 10 }, ...options }).pipe(
            Layer.provide([webhookStore, FetchHttpClient.layer]),
            Layer.provideMerge(Mandate.layer(storesOf, { runtime: { pollIntervalMs: 10 } }))
          )
        // Process A stops right after each commit: nothing deferred to after a commit runs (no event is published,
        // so no listener could enqueue anything then), and it runs no delivery worker
        const uow = Context.get(stores, UnitOfWork)
        const stopping = Context.add(stores, UnitOfWork, UnitOfWork.of({ ...uow, afterCommit: () => Effect.void }))
        const { created, task } = yield* Effect.gen(function* () {
          const webhooks = yield* Webhooks
          const runtime = yield* Runtime
          const created = yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
          const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
          while ((yield* runtime.get(task.id)).task.state !== "completed") yield* Effect.sleep("10 millis")
          // The delivery is a job committed with the transition; its record was to be written after the commit
          const page = yield* (yield* Queue).list({ queue: webhooksQueue })
          assert.deepStrictEqual(
            page.jobs.map((j) => j.state),
            ["queued"]
          )
          assert.deepStrictEqual(yield* webhooks.deliveries(admin), [])
          return { created, task }
        }).pipe(Effect.provide(process(Layer.succeedContext(stopping), { workers: false })), Effect.scoped)
        assert.strictEqual(hook.count(), 0)

        // Process B: new runtime, event hub and delivery worker over the same stores
        yield* Effect.gen(function* () {
          const webhooks = yield* Webhooks
          const got = yield* Q.take(hook.received)
          const message = new StandardWebhook(created.secret).verify(
            got.body,
            got.headers as Record<string, string>
          ) as Webhook.Message
          assert.strictEqual(message.type, "task.completed")
          assert.strictEqual(message.data.task_id, task.id)
          while (true) {
            const [delivery] = yield* webhooks.deliveries(admin, { taskId: task.id })
            if (delivery?.status === "delivered") {
              assert.strictEqual(delivery.id, got.headers["webhook-id"])
              break
            }
            yield* Effect.sleep("10 millis")
          }
          assert.strictEqual(hook.count(), 1)
        }).pipe(Effect.provide(process(Layer.succeedContext(stores), {})), Effect.scoped)
      })
    )
  )

  it.live("events no subscription wants enqueue nothing", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const queue = yield* Queue
        yield* webhooks.create(admin, { url: "https://hooks.example.com/x", events: ["task.failed"] })
        const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        while ((yield* runtime.get(task.id)).task.state !== "completed") yield* Effect.sleep("10 millis")
        assert.deepStrictEqual((yield* queue.list({ queue: webhooksQueue })).jobs, [])
      })
    ).pipe(Effect.provide(services({ workers: false })))
  )

  it.live("a job enqueued by anyone but Mandate is never signed and sent, nor does it touch a delivery", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 200)
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const queue = yield* Queue
        const updates = yield* subscribed(webhooks.updates)
        const created = yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
        const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const real = yield* awaitStatus(updates, (d) => d.taskId === task.id, "delivered")
        const genuine = (yield* queue.get(real.jobId)).payload as unknown as Webhook.DeliveryJob
        assert.isTrue(Webhook.verifyJobMac(created.secret, genuine))
        yield* Q.take(hook.received)

        // Someone who can enqueue to the queue: a message of their own with a MAC copied from a real job, and the
        // real job's payload again under a fresh idempotency key (same message id, another job)
        const forged: Webhook.DeliveryJob = {
          ...genuine,
          messageId: "msg_forged",
          message: { ...genuine.message, data: { ...genuine.message.data, link: "https://evil.example/" } }
        }
        const jobs = yield* Effect.forEach([forged, genuine], (payload) =>
          queue.enqueue({ queue: webhooksQueue, payload: payload as unknown as Schema.Json, maxAttempts: 3 })
        )
        for (const job of jobs) {
          while (true) {
            const state = (yield* queue.get(job.id)).state
            if (state === "dead_lettered" || state === "completed") break
            yield* Effect.sleep("10 millis")
          }
        }
        assert.strictEqual((yield* queue.get(jobs[0]!.id)).state, "dead_lettered")
        assert.match((yield* queue.get(jobs[0]!.id)).lastError ?? "", /MAC does not verify/)
        // The copy of a delivered message is completed without sending it again
        assert.strictEqual((yield* queue.get(jobs[1]!.id)).state, "completed")
        assert.strictEqual(hook.count(), 1)
        const mine = yield* webhooks.deliveries(admin, { webhookId: created.id })
        assert.deepStrictEqual(
          mine.map((d) => [d.id, d.jobId, d.status]),
          [[real.id, real.jobId, "delivered"]]
        )
      })
    ).pipe(Effect.provide(services()))
  )

  it.live("an answered delivery whose job was not completed is not sent again by the next attempt", () => {
    // The first completion of a delivery job is lost, as when a worker stops right after the receiver's answer
    const losing = Layer.effect(
      Queue,
      Effect.gen(function* () {
        const queue = yield* Queue
        const lost = yield* Deferred.make<void>()
        return Queue.of({
          ...queue,
          complete: (jobId, workerId, result) =>
            Effect.flatMap(Deferred.succeed(lost, undefined), (first) =>
              first
                ? Effect.fail(new QueueStoreError({ operation: "complete", cause: new Error("connection lost") }))
                : queue.complete(jobId, workerId, result)
            )
        })
      })
    )
    return Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver(() => 200)
        const webhooks = yield* Webhooks
        const runtime = yield* Runtime
        const updates = yield* subscribed(webhooks.updates)
        yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
        const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        const delivered = yield* awaitStatus(updates, (d) => d.taskId === task.id, "delivered")
        const job = yield* (yield* Queue).get(delivered.jobId)
        assert.strictEqual(job.state, "completed")
        assert.strictEqual(job.attempts, 2)
        assert.strictEqual(hook.count(), 1)
        assert.deepStrictEqual(job.result, { delivered: true, repeated: true })
      })
    ).pipe(Effect.provide(services(undefined, losing)))
  })

  it.effect("only admins manage webhooks and read deliveries; bad input names its field", () =>
    Effect.gen(function* () {
      const webhooks = yield* Webhooks
      for (const who of [alice, bob, Principal.make("audit", ["auditor"])]) {
        assert.strictEqual((yield* Effect.flip(webhooks.list(who)))._tag, "Forbidden")
        assert.strictEqual(
          (yield* Effect.flip(webhooks.create(who, { url: "https://x.example/", events: ["task.failed"] })))._tag,
          "Forbidden"
        )
        assert.strictEqual((yield* Effect.flip(webhooks.deliveries(who)))._tag, "Forbidden")
        assert.strictEqual((yield* Effect.flip(webhooks.remove(who, "wh_x")))._tag, "Forbidden")
      }
      const bad = yield* Effect.flip(
        webhooks.create(admin, { url: "ftp://x.example/", events: ["task.failed", "task.exploded"], secret: "abc" })
      )
      assert.strictEqual(bad._tag, "InvalidInput")
      if (bad._tag === "InvalidInput") {
        assert.sameMembers(
          bad.issues.map((i) => i.path),
          ["$.url", "$.events[1]", "$.secret"]
        )
      }
      const given = Webhook.generateSecret()
      const created = yield* webhooks.create(admin, {
        url: "https://hooks.example.com/mandate",
        events: ["task.failed", "task.failed"],
        secret: given,
        enabled: false
      })
      assert.strictEqual(created.secret, given)
      assert.deepStrictEqual(created.events, ["task.failed"])
      assert.isFalse((yield* webhooks.get(admin, created.id)).enabled)
      const updated = yield* webhooks.update(admin, created.id, { enabled: true, events: ["task.completed"] })
      assert.isTrue(updated.enabled)
      assert.deepStrictEqual(updated.events, ["task.completed"])
      assert.strictEqual(updated.url, "https://hooks.example.com/mandate")
      assert.strictEqual((yield* Effect.flip(webhooks.update(bob, created.id, { enabled: false })))._tag, "Forbidden")
      const badPatch = yield* Effect.flip(webhooks.update(admin, created.id, { url: "file:///etc/passwd" }))
      assert.strictEqual(badPatch._tag === "InvalidInput" ? badPatch.path : badPatch._tag, "$.url")
      yield* webhooks.remove(admin, created.id)
      assert.strictEqual((yield* Effect.flip(webhooks.get(admin, created.id)))._tag, "WebhookNotFound")
      assert.strictEqual((yield* Effect.flip(webhooks.remove(admin, "not an id")))._tag, "WebhookNotFound")
      const query = yield* Effect.flip(webhooks.deliveries(admin, { status: "lost", limit: 0 }))
      assert.strictEqual(query._tag, "InvalidInput")
    }).pipe(Effect.provide(services({ workers: false })))
  )

  it.effect("configured subscriptions need a secret and keep their id across starts", () =>
    Effect.gen(function* () {
      const secret = Webhook.generateSecret()
      const entry = { url: "https://hooks.example.com/a", events: ["task.failed", "approval.needed"], secret }
      const ids = yield* Effect.forEach([1, 2], () =>
        Effect.map(
          Webhooks.use((w) => w.list(admin)).pipe(Effect.provide(services({ workers: false, subscriptions: [entry] }))),
          (l) => l.map((s) => [s.id, s.createdBy])
        )
      )
      assert.deepStrictEqual(ids[0], ids[1])
      assert.strictEqual(ids[0]![0]![1], "configuration")
      const missing = yield* Effect.exit(
        Webhooks.use((w) => w.list(admin)).pipe(
          Effect.provide(services({ workers: false, subscriptions: [{ url: entry.url, events: entry.events }] }))
        )
      )
      assert.isTrue(Exit.isFailure(missing))
      const decoded = yield* Effect.flip(decodeWebhooksConfig({ subscriptions: [{ ...entry, url: "nope" }] }))
      assert.strictEqual(decoded.path, "$.subscriptions[0].url")
    })
  )

  it("maps runtime events to webhook events", () => {
    const base = { seq: 1, taskId: "task_1", state: "running", version: 3, at: 0 }
    const type = (kind: string, data?: unknown) =>
      Webhook.eventTypeOf({ ...base, kind, ...(data === undefined ? {} : { data }) } as TaskEvent)
    assert.strictEqual(type("step.waiting_approval"), "approval.needed")
    assert.strictEqual(type("task.completed"), "task.completed")
    assert.strictEqual(type("task.failed"), "task.failed")
    assert.strictEqual(type("task.rejected"), "task.rejected")
    assert.strictEqual(type("step.failed", { final: true }), "step.dead_lettered")
    assert.strictEqual(type("step.failed", { final: false }), undefined)
    assert.strictEqual(type("step.started"), undefined)
    const event = { ...base, kind: "task.completed" } as TaskEvent
    assert.strictEqual(Webhook.messageId("wh_a", event), Webhook.messageId("wh_a", event))
    assert.notStrictEqual(Webhook.messageId("wh_a", event), Webhook.messageId("wh_b", event))
    assert.notStrictEqual(Webhook.messageId("wh_a", event), Webhook.messageId("wh_a", { ...event, version: 4 }))
  })
})
