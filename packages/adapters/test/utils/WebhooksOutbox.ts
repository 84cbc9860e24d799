/**
 * The webhooks outbox across a process stop, on any backend: a transition committed by a process that stops right
 * after its commit (nothing it deferred to after the commit runs, no delivery worker) is delivered by another
 * process on the same stores.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { assert } from "@effect/vitest"
import {
  Mandate,
  Principal,
  Queue,
  Runtime,
  UnitOfWork,
  type Webhook,
  type WebhookStore,
  Webhooks,
  webhooksQueue
} from "@mandate/core"
import { Context, Effect, Layer, Queue as Q } from "effect"
import { FetchHttpClient } from "effect/http"
import { Webhook as StandardWebhook } from "standardwebhooks"

const admin = Principal.make("root", ["admin"])
const alice = Principal.make("alice", ["submitter"])
const wallet = "A".repeat(60)
const signingKey = NodeCrypto.generateKeyPairSync("ed25519")
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

const receiver = Effect.gen(function* () {
  const received = yield* Q.unbounded<Received>()
  let count = 0
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      count++
      Q.offerUnsafe(received, { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") })
      response.writeHead(204).end()
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, count: () => count }
})

type Backend = Mandate.Stores | WebhookStore

/**
 * Runs the scenario; `backend()` builds one process's connection to the shared stores (called once per process).
 */
export const survivesStopAfterCommit = <E>(backend: () => Layer.Layer<Backend, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const hook = yield* receiver
      const process = (stores: Context.Context<Backend>, workers: boolean) =>
        Webhooks.layer({ publicUrl: "https://mandate.example.com", workers, worker: { pollIntervalMs: 20 } }).pipe(
          Layer.provide([Layer.succeedContext(stores), FetchHttpClient.layer]),
          Layer.provideMerge(
            Mandate.layer(Layer.succeedContext(stores), { runtime: { pollIntervalMs: 20 }, ledger: { signingKey } })
          )
        )

      // Process A stops right after each commit: nothing deferred to after a commit runs (no event is published,
      // no delivery record written), and it runs no delivery worker
      const { created, task } = yield* Effect.gen(function* () {
        const stores = yield* Layer.build(backend())
        const uow = Context.get(stores, UnitOfWork)
        const stopping = Context.add(stores, UnitOfWork, UnitOfWork.of({ ...uow, afterCommit: () => Effect.void }))
        return yield* Effect.gen(function* () {
          const webhooks = yield* Webhooks
          const runtime = yield* Runtime
          const created = yield* webhooks.create(admin, { url: hook.url, events: ["task.completed"] })
          const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
          while ((yield* runtime.get(task.id)).task.state !== "completed") yield* Effect.sleep("20 millis")
          // The delivery is a job committed with the transition
          const page = yield* (yield* Queue).list({ queue: webhooksQueue })
          assert.deepStrictEqual(
            page.jobs.map((j) => j.state),
            ["queued"]
          )
          assert.deepStrictEqual(yield* webhooks.deliveries(admin), [])
          return { created, task }
        }).pipe(Effect.provide(process(stopping, false)))
      }).pipe(Effect.scoped)
      assert.strictEqual(hook.count(), 0)

      // Process B: its own connections, runtime and delivery worker over the same stores
      yield* Effect.gen(function* () {
        const stores = yield* Layer.build(backend())
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
            yield* Effect.sleep("20 millis")
          }
          assert.strictEqual(hook.count(), 1)
        }).pipe(Effect.provide(process(stores, true)))
      }).pipe(Effect.scoped)
    })
  )
