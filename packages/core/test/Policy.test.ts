import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { InvalidInput, Policy, PolicySet, PolicyStore, Seed } from "@mandate/core"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { admin, alice, walletA, walletB } from "./utils/fixtures.ts"

const transfer = (amount: number) => ({
  action: "onchain_action",
  task: "transfer_funds",
  params: { from: walletA, to: walletB, amount },
  principal: alice
})

describe("Policy service", () => {
  it.effect("evaluates the seed policy: monitoring allowed, transfers need approval, large transfers denied", () =>
    Effect.gen(function* () {
      const policy = yield* Policy
      const active = yield* policy.active
      assert.strictEqual(active.version, PolicySet.version(Seed.defaultPolicySet))
      const monitor = yield* policy.evaluate({
        action: "monitor_action",
        task: "monitoring",
        params: { wallet: walletA },
        principal: alice
      })
      assert.strictEqual(monitor.effect, "allow")
      const small = yield* policy.evaluate(transfer(100))
      assert.strictEqual(small.effect, "require_approval")
      assert.deepStrictEqual(small.approvals, { required: 1 })
      assert.strictEqual(small.policyVersion, active.version)
      const large = yield* policy.evaluate(transfer(1_000_001))
      assert.strictEqual(large.effect, "deny")
      assert.deepStrictEqual(large.reasons, ["transfers above 1,000,000 QU are denied"])
      const unknown = yield* policy.evaluate({ action: "launch_rockets", params: {}, principal: admin })
      assert.strictEqual(unknown.effect, "deny")
    }).pipe(Effect.provide(Policy.layerMemory()))
  )

  it.effect("keeps old versions: a pinned version decides as before after a new set is activated", () =>
    Effect.gen(function* () {
      const policy = yield* Policy
      const store = yield* PolicyStore
      const seedVersion = (yield* policy.active).version
      const strict = yield* store.publish({
        name: "strict",
        rules: [{ id: "no-transfers", effect: "deny", match: { action: "onchain_action" }, reason: "frozen" }]
      })
      assert.isFalse(strict.active)
      yield* store.activate(strict.version)
      assert.strictEqual((yield* policy.active).version, strict.version)
      assert.strictEqual((yield* policy.evaluate(transfer(5))).effect, "deny")
      assert.strictEqual((yield* policy.evaluate(transfer(5), { version: seedVersion })).effect, "require_approval")
      const listed = yield* store.list
      assert.deepStrictEqual(
        listed.map((s) => [s.set.name, s.active]),
        [
          ["strict", true],
          ["mandate-default", false]
        ]
      )
      // publishing the same rules again is idempotent
      const again = yield* store.publish({ ...strict.set })
      assert.strictEqual(again.version, strict.version)
      assert.strictEqual((yield* store.list).length, 2)
      const missing = yield* Effect.flip(policy.evaluate(transfer(5), { version: "f".repeat(64) as never }))
      assert.strictEqual(missing._tag, "UnknownPolicyVersion")
    }).pipe(Effect.provide(Policy.layerMemory()))
  )

  it.effect("uses the Clock for time windows", () =>
    Effect.gen(function* () {
      const policy = yield* Policy
      const request = { action: "night_batch", params: {}, principal: alice }
      yield* TestClock.setTime(Date.parse("2026-11-23T12:00:00Z"))
      assert.strictEqual((yield* policy.evaluate(request)).effect, "deny")
      yield* TestClock.setTime(Date.parse("2026-11-23T23:30:00Z"))
      assert.strictEqual((yield* policy.evaluate(request)).effect, "allow")
    }).pipe(
      Effect.provide(
        Policy.layerMemory({
          name: "nightly",
          rules: [
            { id: "night", effect: "allow", match: { action: "night_*", window: { from: "22:00", to: "02:00" } } }
          ]
        })
      )
    )
  )

  it.effect("explains a hypothetical action", () =>
    Effect.gen(function* () {
      const policy = yield* Policy
      const explanation = yield* policy.explain(transfer(2_000_000))
      assert.strictEqual(explanation.decision.effect, "deny")
      assert.deepStrictEqual(
        explanation.trace.filter((t) => t.matched).map((t) => t.rule),
        ["transfer_funds", "transfer-limit"]
      )
    }).pipe(Effect.provide(Policy.layerMemory()))
  )
})

describe("Policy files", () => {
  const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"))
  const file = (name: string, text: string) => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }

  it.effect("loads a YAML policy file into the active set", () =>
    Effect.gen(function* () {
      const path = file(
        "ok.yaml",
        ["name: from-yaml", "rules:", "  - id: all", "    effect: allow", "    match: { action: 'check_*' }"].join("\n")
      )
      const active = yield* Policy.use((p) => p.active).pipe(
        Effect.provide(Policy.layerFile(path).pipe(Layer.provide(NodeServices.layer)))
      )
      assert.strictEqual(active.set.name, "from-yaml")
    })
  )

  it.effect("a malformed file fails the layer with the path of each bad field", () =>
    Effect.gen(function* () {
      const path = file(
        "bad.json",
        JSON.stringify({ name: "", rules: [{ id: "r", effect: "allow", match: { roles: ["king"] } }] })
      )
      const error = yield* Effect.flip(
        Policy.use((p) => p.active).pipe(Effect.provide(Policy.layerFile(path).pipe(Layer.provide(NodeServices.layer))))
      )
      assert.instanceOf(error, InvalidInput)
      assert.deepStrictEqual(
        error.issues.map((i) => i.path),
        ["$.name", "$.rules[0].match.roles[0]"]
      )
      const missing = yield* Effect.flip(
        Policy.use((p) => p.active).pipe(
          Effect.provide(Policy.layerFile(join(dir, "nope.yaml")).pipe(Layer.provide(NodeServices.layer)))
        )
      )
      assert.match(missing.message, /Cannot read policy file/)
    })
  )
})
