/**
 * Proof bundles over HTTP on memory, Postgres and Redis: a task's bundle, exported by its reader, verifies offline
 * with nothing but the key the auditor pinned; the server's own word counts for nothing.
 */
import { assert, describe, layer } from "@effect/vitest"
import { WebBundle } from "@mandate/core"
import { Effect, type Layer } from "effect"
import type * as Stores from "../src/Stores.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import * as TestRedis from "./utils/TestRedis.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, waitForStatus, walletA, walletB } = TestServer

const verify = (bundle: unknown, key: string) => Effect.promise(() => WebBundle.verifyBundle(bundle, key))

const failed = (report: WebBundle.BundleReport) => report.checks.filter((c) => !c.ok).map((c) => c.name)

const bundleSuite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("a bundle exported over HTTP verifies offline with the pinned key and catches tampering", () =>
      Effect.gen(function* () {
        // The key an auditor pins once, from the server's ledger overview
        const overview = yield* call("GET", "/ledger", { token: tokens.carol })
        assert.strictEqual(overview.status, 200, overview.text)
        const pinned: string = overview.body.public_key
        // …or from the list of every trusted key (a submitter may read it too)
        const keys = yield* call("GET", "/ledger/keys", { token: tokens.alice })
        assert.strictEqual(keys.status, 200, keys.text)
        assert.deepStrictEqual(keys.body.keys, [{ key_id: overview.body.key_id, public_key: pinned, signing: true }])

        const started = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }
        })
        assert.strictEqual(started.status, 200, started.text)
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
        assert.strictEqual(anchored.status, 200, anchored.text)
        const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        assert.strictEqual(approved.status, 200, approved.text)
        yield* waitForStatus(taskId, (s) => s === "completed")

        // The submitter exports it; the document travels as JSON and is checked with no server at all
        const exported = yield* call("GET", `/audit/${taskId}/bundle`, { token: tokens.alice })
        assert.strictEqual(exported.status, 200, exported.text)
        const bundle = exported.body
        const audit = yield* call("GET", `/audit/${taskId}`, { token: tokens.carol })
        assert.deepStrictEqual(
          bundle.entries.map((e: { entryHash: string }) => e.entryHash),
          audit.body.entries.map((e: { entry_hash: string }) => e.entry_hash)
        )
        assert.strictEqual(bundle.entries[bundle.entries.length - 1].kind, "task.completed")
        assert.isDefined(bundle.anchor)
        assert.isBelow(bundle.anchor.checkpoint.size, bundle.checkpoint.size)
        for (const key of [pinned, overview.body.key_id]) {
          const report = yield* verify(bundle, key)
          assert.isTrue(report.ok, JSON.stringify(report.checks))
          assert.isFalse(report.checks.some((c) => c.skipped))
        }

        // An entry left out, or a receipt for another root: caught, with the reason
        const removed = { ...bundle, entries: [...bundle.entries], proofs: [...bundle.proofs] }
        removed.entries.splice(1, 1)
        removed.proofs.splice(1, 1)
        assert.deepStrictEqual(failed(yield* verify(removed, pinned)), ["completeness"])
        const otherRoot = {
          ...bundle,
          anchor: { ...bundle.anchor, receipt: { ...bundle.anchor.receipt, root: "ab".repeat(32) } }
        }
        assert.deepStrictEqual(failed(yield* verify(otherRoot, pinned)), ["anchor.receipt"])

        // Visibility is /audit/{task_id}'s: another submitter sees no such task; an unknown task is 404
        const other = yield* call("GET", `/audit/${taskId}/bundle`, { token: tokens.dave })
        assert.strictEqual(other.status, 404, other.text)
        const unknown = yield* call("GET", "/audit/task_unknown/bundle", { token: tokens.carol })
        assert.strictEqual(unknown.status, 404, unknown.text)
      })
    )
  })

describe("proof bundles over HTTP", () => {
  bundleSuite("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    bundleSuite("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    bundleSuite("redis", TestRedis.services())
  })
})
