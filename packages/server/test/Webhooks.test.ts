import * as NodeFs from "node:fs"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Principal, Runtime, Webhook, Webhooks } from "@mandate/core"
import { ConfigProvider, Effect, Layer, Option, Queue as Q, Redacted } from "effect"
import { Webhook as StandardWebhook } from "standardwebhooks"
import { loadWebhooks, ServerConfig } from "../src/Config.ts"
import * as Stores from "../src/Stores.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import { describePostgres } from "./utils/TestPostgres.ts"
import * as TestRedis from "./utils/TestRedis.ts"
import { describeRedis } from "./utils/TestRedis.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A local receiver on port 0 that answers 200 and queues what it got. */
const receiver = Effect.gen(function* () {
  const received = yield* Q.unbounded<Received>()
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      Q.offerUnsafe(received, { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") })
      response.writeHead(200).end()
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`, received }
})

const webhooks = { publicUrl: "https://ops.example.com/console/" }

const suite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("admins manage subscriptions; the secret is shown once; others are refused", () =>
      Effect.gen(function* () {
        const created = yield* call("POST", "/webhooks", {
          token: tokens.root,
          body: {
            url: "https://hooks.example.com/a",
            events: ["task.failed", "step.dead_lettered"],
            description: "ops"
          }
        })
        assert.strictEqual(created.status, 201, created.text)
        assert.match(created.body.secret, /^whsec_/)
        assert.match(created.body.id, /^wh_/)
        assert.strictEqual(created.body.created_by, "root")
        const listed = yield* call("GET", "/webhooks", { token: tokens.root })
        assert.strictEqual(listed.status, 200)
        const mine = listed.body.webhooks.find((w: { id: string }) => w.id === created.body.id)
        assert.deepStrictEqual(mine.events, ["task.failed", "step.dead_lettered"])
        assert.isFalse(listed.text.includes(created.body.secret))
        const one = yield* call("GET", `/webhooks/${created.body.id}`, { token: tokens.root })
        assert.strictEqual(one.status, 200)
        assert.isUndefined(one.body.secret)

        for (const token of [tokens.alice, tokens.bob, tokens.carol, tokens.robot]) {
          assert.strictEqual((yield* call("GET", "/webhooks", { token })).status, 403)
          assert.strictEqual((yield* call("GET", "/webhooks/deliveries", { token })).status, 403)
          const post = yield* call("POST", "/webhooks", {
            token,
            body: { url: "https://x.example/", events: ["task.failed"] }
          })
          assert.strictEqual(post.status, 403)
          assert.strictEqual((yield* call("DELETE", `/webhooks/${created.body.id}`, { token })).status, 403)
        }
        assert.strictEqual((yield* call("GET", "/webhooks")).status, 401)

        const bad = yield* call("POST", "/webhooks", {
          token: tokens.root,
          body: { url: "javascript:alert(1)", events: ["task.exploded"], secret: "whsec_short" }
        })
        assert.strictEqual(bad.status, 400, bad.text)
        assert.sameMembers(
          bad.body.issues.map((i: { path: string }) => i.path),
          ["$.url", "$.events[0]", "$.secret"]
        )
        const badQuery = yield* call("GET", "/webhooks/deliveries?limit=0", { token: tokens.root })
        assert.strictEqual(badQuery.status, 400, badQuery.text)
        assert.strictEqual(badQuery.body.path, "$query.limit")

        const patched = yield* call("PATCH", `/webhooks/${created.body.id}`, {
          token: tokens.root,
          body: { enabled: false, events: ["task.failed"] }
        })
        assert.strictEqual(patched.status, 200, patched.text)
        assert.isFalse(patched.body.enabled)
        assert.deepStrictEqual(patched.body.events, ["task.failed"])
        assert.isUndefined(patched.body.secret)
        const badPatch = yield* call("PATCH", `/webhooks/${created.body.id}`, {
          token: tokens.root,
          body: { url: "ftp://x.example/" }
        })
        assert.strictEqual(badPatch.status, 400, badPatch.text)
        assert.strictEqual(badPatch.body.path, "$.url")
        const patchedByOther = yield* call("PATCH", `/webhooks/${created.body.id}`, {
          token: tokens.bob,
          body: { enabled: true }
        })
        assert.strictEqual(patchedByOther.status, 403)
        const unknownDelivery = yield* call("POST", "/webhooks/deliveries/msg_nope/retry", { token: tokens.root })
        assert.strictEqual(unknownDelivery.status, 404, unknownDelivery.text)
        assert.strictEqual(unknownDelivery.body.resource, "webhook_delivery")

        assert.strictEqual((yield* call("DELETE", `/webhooks/${created.body.id}`, { token: tokens.root })).status, 204)
        const gone = yield* call("GET", `/webhooks/${created.body.id}`, { token: tokens.root })
        assert.strictEqual(gone.status, 404)
        assert.strictEqual(gone.body.resource, "webhook")
        assert.strictEqual((yield* call("DELETE", `/webhooks/${created.body.id}`, { token: tokens.root })).status, 404)
      })
    )

    it.effect("a gated transfer notifies the approvers' endpoint, then its completion, signed and linked", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const hook = yield* receiver
          const created = yield* call("POST", "/webhooks", {
            token: tokens.root,
            body: { url: hook.url, events: ["approval.needed", "task.completed"] }
          })
          assert.strictEqual(created.status, 201, created.text)
          const verifier = new StandardWebhook(created.body.secret)
          const started = yield* call("POST", "/task/start", {
            token: tokens.alice,
            body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 5 } }
          })
          assert.strictEqual(started.status, 200, started.text)
          const taskId: string = started.body.task_id

          const first = yield* Q.take(hook.received)
          const needed = verifier.verify(first.body, first.headers as Record<string, string>) as Webhook.Message
          assert.strictEqual(needed.type, "approval.needed")
          assert.strictEqual(needed.data.task_id, taskId)
          assert.strictEqual(needed.data.step_id, "onchain_action")
          assert.strictEqual(needed.data.link, `https://ops.example.com/console/#/task/${taskId}`)

          const approved = yield* call("POST", `/task/${taskId}/approve`, {
            token: tokens.bob,
            body: { approved: true }
          })
          assert.strictEqual(approved.status, 200, approved.text)
          yield* waitForStatus(taskId, (s) => s === "completed")
          const second = yield* Q.take(hook.received)
          const completed = verifier.verify(second.body, second.headers as Record<string, string>) as Webhook.Message
          assert.strictEqual(completed.type, "task.completed")

          // The record follows the answers (it is written just after each one)
          while (true) {
            const deliveries = yield* call("GET", `/webhooks/deliveries?webhook_id=${created.body.id}`, {
              token: tokens.root
            })
            assert.strictEqual(deliveries.status, 200, deliveries.text)
            const statuses = deliveries.body.deliveries.map((d: { type: string; status: string }) => [d.type, d.status])
            if (statuses.length === 2 && statuses.every(([, s]: [string, string]) => s === "delivered")) {
              assert.deepStrictEqual(
                deliveries.body.deliveries.map((d: { id: string }) => d.id).sort(),
                [first.headers["webhook-id"], second.headers["webhook-id"]].sort()
              )
              assert.strictEqual(deliveries.body.deliveries[0].task_id, taskId)
              assert.strictEqual(deliveries.body.deliveries[0].last_status, 200)
              break
            }
            yield* Effect.sleep("20 millis")
          }
          // Only a dead letter is sent again
          const retried = yield* call("POST", `/webhooks/deliveries/${first.headers["webhook-id"]}/retry`, {
            token: tokens.root
          })
          assert.strictEqual(retried.status, 409, retried.text)
          // The delivery jobs are in a queue of Mandate's own: only admins read them (no secret in them), and no one
          // enqueues or claims there over the queue API
          const jobs = yield* call("GET", "/queue/jobs?queue=mandate.webhooks", { token: tokens.root })
          assert.strictEqual(jobs.status, 200, jobs.text)
          assert.strictEqual(jobs.body.jobs.length, 2)
          assert.isFalse(jobs.text.includes(created.body.secret))
          for (const token of [tokens.root, tokens.robot, tokens.alice]) {
            if (token !== tokens.root) {
              const listed = yield* call("GET", "/queue/jobs?queue=mandate.webhooks", { token })
              assert.strictEqual(listed.status, 403, listed.text)
            }
            const enqueued = yield* call("POST", "/queue/jobs", {
              token,
              body: { queue: "mandate.webhooks", payload: { forged: true } }
            })
            assert.strictEqual(enqueued.status, 403, enqueued.text)
          }
          const claimed = yield* call("POST", "/queue/claim", {
            token: tokens.robot,
            body: { worker_id: "robot", queues: ["mandate.webhooks"] }
          })
          assert.strictEqual(claimed.status, 403, claimed.text)
        })
      )
    )
  })

suite("webhooks over HTTP (memory)", TestServer.memoryServices({ webhooks }))
describePostgres("webhooks over HTTP (postgres)", () => {
  suite("postgres", TestPostgres.services({ webhooks }))
})

describePostgres("webhooks across processes (postgres)", () => {
  it.live("a subscription made through one process is delivered by another, and both see the delivery", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const hook = yield* receiver
        const config = yield* TestPostgres.freshConfig
        const options = { anchor: Stores.layerAnchor("none"), webhooks }
        // An API-only process, and one that runs the steps and the deliveries
        const api = yield* Layer.build(
          Stores.layerPg(config, { ...options, runtime: { ...TestServer.fastRuntime, workers: false } })
        )
        const worker = yield* Layer.build(Stores.layerPg(config, { ...options, runtime: TestServer.fastRuntime }))
        const created = yield* Webhooks.use((w) =>
          w.create(Principal.make("root", ["admin"]), { url: hook.url, events: ["approval.needed"] })
        ).pipe(Effect.provideContext(api))
        const task = yield* Runtime.use((r) =>
          r.start(
            { kind: "transfer_funds", params: { from: walletA, to: walletB, amount: 5 } },
            Principal.make("alice", ["submitter"])
          )
        ).pipe(Effect.provideContext(api))
        const got = yield* Q.take(hook.received)
        const message = new StandardWebhook(created.secret).verify(
          got.body,
          got.headers as Record<string, string>
        ) as Webhook.Message
        assert.strictEqual(message.data.task_id, task.id)
        const seenBy = (context: typeof api) =>
          Webhooks.use((w) => w.deliveries(Principal.make("root", ["admin"]), { taskId: task.id })).pipe(
            Effect.provideContext(context)
          )
        while ((yield* seenBy(api))[0]?.status !== "delivered") yield* Effect.sleep("20 millis")
        assert.deepStrictEqual(yield* seenBy(worker), yield* seenBy(api))
      })
    )
  )
})

describeRedis("webhooks over HTTP (redis)", () => {
  suite("redis", TestRedis.services({ webhooks }))
})

describe("webhook configuration", () => {
  it.effect("MANDATE_PUBLIC_URL must be an http(s) URL", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) => Effect.result(ServerConfig.parse(ConfigProvider.fromEnvRecord(env)))
      const good = yield* read({ MANDATE_PUBLIC_URL: "https://ops.example.com/console" })
      assert.isTrue(
        good._tag === "Success" && Option.getOrUndefined(good.success.publicUrl) === "https://ops.example.com/console"
      )
      const bad = yield* read({ MANDATE_PUBLIC_URL: "javascript:alert(1)" })
      assert.strictEqual(bad._tag, "Failure")
    })
  )

  it.effect("reads subscriptions from MANDATE_WEBHOOKS_FILE and MANDATE_WEBHOOKS; a bad one names its path", () =>
    Effect.gen(function* () {
      const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-webhooks-"))
      const file = NodePath.join(dir, "webhooks.json")
      const secret = Webhook.generateSecret()
      NodeFs.writeFileSync(
        file,
        JSON.stringify({ subscriptions: [{ url: "https://a.example/hook", events: ["task.failed"], secret }] })
      )
      const inline = JSON.stringify([
        { id: "wh_pager", url: "https://b.example/", events: ["approval.needed"], secret }
      ])
      const loaded = yield* loadWebhooks({
        webhooksFile: Option.some(file),
        webhooks: Option.some(Redacted.make(inline))
      })
      assert.deepStrictEqual(
        loaded.map((s) => s.url),
        ["https://a.example/hook", "https://b.example/"]
      )
      NodeFs.writeFileSync(file, JSON.stringify([{ url: "https://a.example/hook", events: ["task.failed"] }]))
      const missing = yield* Effect.flip(loadWebhooks({ webhooksFile: Option.some(file), webhooks: Option.none() }))
      assert.strictEqual(missing.path, "MANDATE_WEBHOOKS_FILE[0].secret")
      const notJson = yield* Effect.flip(
        loadWebhooks({ webhooksFile: Option.none(), webhooks: Option.some(Redacted.make("{")) })
      )
      assert.strictEqual(notJson.path, "MANDATE_WEBHOOKS")
      NodeFs.rmSync(dir, { recursive: true })
    })
  )
})
