/**
 * Plans a few seed tasks under the default policy and prints each step with its policy decision.
 * Run: npm start (from the repository root).
 */
import { Plan, Planner, Policy, Principal } from "@mandate/core"
import { Console, Effect, Layer } from "effect"

const alice = Principal.make("alice", ["submitter"])
const treasury = `${"A".repeat(56)}FXIB`
const vendor = "B".repeat(60)

const requests = [
  { kind: "transfer_funds", params: { from: treasury, to: vendor, amount: 2_500 } },
  { kind: "monitoring", params: { wallet: treasury } },
  { kind: "transfer_funds", params: { from: treasury, to: vendor, amount: 5_000_000 } },
  { kind: "transfer_funds", params: { from: "not-a-wallet", to: vendor, amount: 0 } }
]

const symbol = { allow: "✔ allow", require_approval: "⏸ require_approval", deny: "✘ deny" } as const

const program = Effect.gen(function* () {
  const planner = yield* Planner
  const policy = yield* Policy
  const active = yield* policy.active
  yield* Console.log(`Policy "${active.set.name}" version ${active.version.slice(0, 12)}…\n`)
  for (const request of requests) {
    yield* Console.log(`${request.kind} ${JSON.stringify(request.params)}`)
    yield* planner.plan({ ...request, principal: alice }).pipe(
      Effect.flatMap((plan) =>
        Effect.forEach(plan.steps, (step) =>
          Console.log(
            `  ${step.id.padEnd(16)} after [${step.dependsOn.join(", ")}]`.padEnd(48) +
              `${symbol[step.decision.effect]}  — ${step.decision.reasons.join("; ")}`
          )
        ).pipe(
          Effect.andThen(
            Plan.denials(plan).length > 0
              ? Console.log(`  REFUSED: ${Plan.denials(plan).join("; ")}\n`)
              : Console.log(`  plan ${plan.id} hash ${plan.hash.slice(0, 12)}…\n`)
          )
        )
      ),
      Effect.catchTags({
        InvalidInput: (e) => Console.log(`  INVALID: ${e.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}\n`)
      })
    )
  }
})

program.pipe(Effect.provide(Planner.layerTemplates().pipe(Layer.provideMerge(Policy.layerMemory()))), Effect.runPromise)
