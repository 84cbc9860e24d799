import { assert, describe, it } from "@effect/vitest"
import {
  InvalidInput,
  Plan,
  Planner,
  Policy,
  PolicyStore,
  Principal,
  Seed,
  stepType,
  taskTemplate
} from "@mandate/core"
import { Effect, Layer, Schema } from "effect"
import { alice, walletA, walletB } from "./utils/fixtures.ts"

const SeedPlanner = Planner.layerTemplates().pipe(Layer.provideMerge(Policy.layerMemory()))
const transfer = (amount: number) => ({
  kind: "transfer_funds",
  params: { from: walletA, to: walletB, amount },
  principal: alice
})

describe("Planner (templates)", () => {
  it.effect("plans the seed transfer as check_balance → policy_check → onchain_action, each with its decision", () =>
    Effect.gen(function* () {
      const planner = yield* Planner
      const plan = yield* planner.plan(transfer(250))
      assert.deepStrictEqual(
        plan.steps.map((s) => [s.id, s.type, s.dependsOn.map(String), s.decision.effect]),
        [
          ["check_balance", "check_balance", [], "allow"],
          ["policy_check", "policy_check", ["check_balance"], "allow"],
          ["onchain_action", "onchain_action", ["policy_check"], "require_approval"]
        ]
      )
      assert.deepStrictEqual(plan.steps[0]!.params, { wallet: walletA, minimum: 250 })
      assert.match(plan.hash, /^[0-9a-f]{64}$/)
      // the planner splices in the steps' canonical text: it must be the hash `Plan.hashOf` (what verifiers use) gives
      assert.strictEqual(plan.hash, Plan.hashOf(plan))
      assert.match(plan.id, /^plan_/)
      assert.strictEqual(plan.policyVersion, (yield* (yield* Policy).active).version)
      // the same request plans to the same content hash
      const again = yield* planner.plan(transfer(250))
      assert.strictEqual(again.hash, plan.hash)
      assert.notStrictEqual(again.id, plan.id)
      assert.notStrictEqual((yield* planner.plan(transfer(251))).hash, plan.hash)
      const kinds = (yield* planner.kinds).map((k) => k.kind)
      assert.deepStrictEqual(kinds, ["transfer_funds", "transaction", "monitoring"])
    }).pipe(Effect.provide(SeedPlanner))
  )

  it.effect("plans a denied step like any other, its decision and reasons on the plan", () =>
    Effect.gen(function* () {
      const planner = yield* Planner
      const plan = yield* planner.plan(transfer(5_000_000))
      assert.deepStrictEqual(Plan.denials(plan), [
        "step policy_check (policy_check): transfers above 1,000,000 QU are denied",
        "step onchain_action (onchain_action): transfers above 1,000,000 QU are denied"
      ])
      assert.strictEqual(plan.steps.length, 3)
      assert.strictEqual(plan.steps[0]!.decision.effect, "allow")
      assert.strictEqual(plan.steps[2]!.decision.effect, "deny")
    }).pipe(Effect.provide(SeedPlanner))
  )

  it.effect("refuses bad task params with the JSON path of each bad field", () =>
    Effect.gen(function* () {
      const planner = yield* Planner
      const error = yield* Effect.flip(
        planner.plan({ kind: "transfer_funds", params: { from: "alice", to: walletB, amount: -5.5 }, principal: alice })
      )
      assert.instanceOf(error, InvalidInput)
      if (!(error instanceof InvalidInput)) return
      assert.deepStrictEqual([...new Set(error.issues.map((i) => i.path))], ["$.params.from", "$.params.amount"])
      assert.match(error.issues[0]!.message, /60 uppercase letters/)
      const unknown = yield* Effect.flip(planner.plan({ kind: "launch", params: {}, principal: alice }))
      assert.strictEqual(unknown._tag, "UnknownTaskKind")
    }).pipe(Effect.provide(SeedPlanner))
  )

  it.effect("runs host templates with parallel branches, and refuses cycles and unknown step types", () => {
    const note = stepType({ type: "note", params: Schema.Struct({ text: Schema.String }) })
    const fanOut = taskTemplate({
      kind: "fan_out",
      params: Schema.Struct({ n: Schema.Int }),
      steps: ({ n }) => [
        { id: "start", type: "note", params: { text: "start" } },
        ...Array.from({ length: n }, (_, i) => ({
          id: `branch${i}`,
          type: "note",
          params: { text: `b${i}` },
          dependsOn: ["start"]
        })),
        {
          id: "join",
          type: "note",
          params: { text: "join" },
          dependsOn: Array.from({ length: n }, (_, i) => `branch${i}`)
        }
      ]
    })
    const cyclic = taskTemplate({
      kind: "cyclic",
      params: Schema.Struct({}),
      steps: () => [
        { id: "a", type: "note", params: { text: "a" }, dependsOn: ["c"] },
        { id: "b", type: "note", params: { text: "b" }, dependsOn: ["a"] },
        { id: "c", type: "note", params: { text: "c" }, dependsOn: ["b"] }
      ]
    })
    const mystery = taskTemplate({
      kind: "mystery",
      params: Schema.Struct({}),
      steps: () => [{ id: "x", type: "teleport", params: {} }]
    })
    const badStepParams = taskTemplate({
      kind: "bad_step_params",
      params: Schema.Struct({}),
      steps: () => [{ id: "x", type: "note", params: { text: 42 } }]
    })
    const layer = Planner.layerTemplates({
      templates: [fanOut, cyclic, mystery, badStepParams],
      stepTypes: [note]
    }).pipe(
      Layer.provideMerge(
        Policy.layerMemory({ name: "notes", rules: [{ id: "notes", effect: "allow", match: { action: "note" } }] })
      )
    )
    return Effect.gen(function* () {
      const planner = yield* Planner
      const plan = yield* planner.plan({ kind: "fan_out", params: { n: 3 }, principal: alice })
      assert.deepStrictEqual(
        plan.steps.map((s) => s.id),
        ["start", "branch0", "branch1", "branch2", "join"]
      )
      assert.deepStrictEqual(plan.steps.at(-1)!.dependsOn.map(String), ["branch0", "branch1", "branch2"])
      assert.isTrue(plan.steps.every((s) => s.decision.effect === "allow"))
      const cycle = yield* Effect.flip(planner.plan({ kind: "cyclic", params: {}, principal: alice }))
      assert.strictEqual(cycle._tag, "InvalidPlan")
      assert.match(cycle.message, /cycle: a → b → c → a|cycle: c → a → b → c|cycle: b → c → a → b/)
      const unknownType = yield* Effect.flip(planner.plan({ kind: "mystery", params: {}, principal: alice }))
      assert.strictEqual(unknownType._tag, "UnknownStepType")
      const badParams = yield* Effect.flip(planner.plan({ kind: "bad_step_params", params: {}, principal: alice }))
      assert.instanceOf(badParams, InvalidInput)
      if (badParams instanceof InvalidInput) assert.strictEqual(badParams.path, '$.steps["x"].params.text')
    }).pipe(Effect.provide(layer))
  })

  it.effect("plans under a pinned policy version after a new set is activated", () =>
    Effect.gen(function* () {
      const planner = yield* Planner
      const store = yield* PolicyStore
      const first = yield* planner.plan(transfer(10))
      const open = yield* store.publish({ name: "open", rules: [{ id: "all", effect: "allow", match: {} }] })
      yield* store.activate(open.version)
      const fresh = yield* planner.plan(transfer(10))
      assert.strictEqual(fresh.policyVersion, open.version)
      assert.strictEqual(fresh.steps[2]!.decision.effect, "allow")
      const pinned = yield* planner.plan(transfer(10), { policyVersion: first.policyVersion })
      assert.strictEqual(pinned.steps[2]!.decision.effect, "require_approval")
      assert.strictEqual(pinned.hash, first.hash)
    }).pipe(Effect.provide(SeedPlanner))
  )

  it.effect("monitoring needs no approval; generic actions are denied by the default policy", () =>
    Effect.gen(function* () {
      const planner = yield* Planner
      const plan = yield* planner.plan({ kind: "monitoring", params: { wallet: walletA }, principal: alice })
      assert.isTrue(plan.steps.every((s) => s.decision.effect === "allow"))
      assert.strictEqual(Seed.templates.length, 3)
      const noRoles = Principal.make("nobody", [])
      const tx = yield* planner.plan({
        kind: "transaction",
        params: { from: walletA, to: walletB, amount: 1 },
        principal: noRoles
      })
      assert.deepStrictEqual(
        tx.steps.map((s) => s.decision.effect),
        ["allow", "require_approval"]
      )
    }).pipe(Effect.provide(SeedPlanner))
  )
})
