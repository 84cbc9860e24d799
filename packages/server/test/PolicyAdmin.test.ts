/**
 * Policy administration over HTTP: versions, publish with a dry run over recent tasks, activate and roll back;
 * admins only; every change in the ledger with the set's version; running tasks stay on their version.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type * as Stores from "../src/Stores.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import * as TestRedis from "./utils/TestRedis.ts"
import {
  call,
  memoryServices,
  layer as serverLayer,
  tokens,
  waitForStatus,
  walletA,
  walletB
} from "./utils/TestServer.ts"

const transfer = { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }

const ledgerEntries = (kind: string) =>
  Effect.gen(function* () {
    // Policy entries belong to no task: read them from the ledger listing (small in a test)
    const reply = yield* call("GET", "/ledger/entries?limit=1000", { token: tokens.carol })
    assert.strictEqual(reply.status, 200, reply.text)
    return (
      reply.body.entries as ReadonlyArray<{ kind: string; payload?: any; principal?: any; [field: string]: any }>
    ).filter((e) => e.kind === kind)
  })

const suite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(serverLayer(services), { excludeTestServices: true, timeout: "90 seconds" })(name, (it) => {
    it.effect("admins only: auditors read versions, submitters and auditors cannot publish or activate", () =>
      Effect.gen(function* () {
        const active = yield* call("GET", "/policy", { token: tokens.alice })
        const body = { policy: active.body.policy }
        assert.strictEqual((yield* call("POST", "/policy/versions", { token: tokens.alice, body })).status, 403)
        assert.strictEqual((yield* call("POST", "/policy/versions", { token: tokens.carol, body })).status, 403)
        const activate = yield* call("POST", `/policy/versions/${active.body.version}/activate`, {
          token: tokens.carol
        })
        assert.strictEqual(activate.status, 403)
        assert.strictEqual((yield* call("GET", "/policy/versions", { token: tokens.alice })).status, 403)
        const versions = yield* call("GET", "/policy/versions", { token: tokens.carol })
        assert.strictEqual(versions.status, 200, versions.text)
        assert.isTrue(versions.body.versions.some((v: any) => v.version === active.body.version && v.active))
      })
    )

    it.effect("a malformed set is refused with the JSON path of each bad field", () =>
      Effect.gen(function* () {
        const reply = yield* call("POST", "/policy/versions", {
          token: tokens.root,
          body: { policy: { name: "broken", rules: [{ id: "x", effect: "maybe", match: {} }] } }
        })
        assert.strictEqual(reply.status, 400, reply.text)
        assert.strictEqual(reply.body.error, "invalid_input")
        assert.isTrue(
          reply.body.issues.some((i: any) => i.path === "$.policy.rules[0].effect"),
          JSON.stringify(reply.body.issues)
        )
        const unknown = yield* call("POST", `/policy/versions/${"0".repeat(64)}/activate`, { token: tokens.root })
        assert.strictEqual(unknown.status, 404, unknown.text)
      })
    )

    it.effect(
      "publish shows the impact on recent tasks, activation changes new tasks only, rollback restores; all in the ledger",
      () =>
        Effect.gen(function* () {
          const seed = yield* call("GET", "/policy", { token: tokens.alice })
          // A task planned under the seed policy, waiting for approval of its on-chain step
          const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer })
          assert.strictEqual(started.status, 200, started.text)
          const pinned: string = started.body.task_id
          yield* waitForStatus(pinned, (s) => s === "waiting_approval")

          const stricter = {
            ...seed.body.policy,
            name: "no-transfers",
            rules: [
              ...seed.body.policy.rules,
              { id: "no-transfers", effect: "deny", match: { task: "transfer_funds" }, reason: "transfers are frozen" }
            ]
          }
          // A dry run stores nothing
          const dry = yield* call("POST", "/policy/versions", {
            token: tokens.root,
            body: { policy: stricter, dry_run: true }
          })
          assert.strictEqual(dry.status, 200, dry.text)
          assert.isFalse(dry.body.published)
          const listed = yield* call("GET", "/policy/versions", { token: tokens.root })
          assert.isFalse(listed.body.versions.some((v: any) => v.version === dry.body.version))

          const published = yield* call("POST", "/policy/versions", { token: tokens.root, body: { policy: stricter } })
          assert.strictEqual(published.status, 200, published.text)
          assert.isTrue(published.body.published)
          assert.isTrue(published.body.new)
          assert.strictEqual(published.body.version, dry.body.version)
          assert.strictEqual(published.body.active_version, seed.body.version)
          // The waiting task's steps would now be denied: the dry run over its recorded inputs says so
          const impacted = published.body.impact.tasks.find((t: any) => t.task_id === pinned)
          assert.isDefined(impacted, JSON.stringify(published.body.impact))
          assert.strictEqual(impacted.policy_version, seed.body.version)
          const onchain = impacted.steps.find((s: any) => s.step_id === "onchain_action")
          assert.deepStrictEqual([onchain.before, onchain.after], ["require_approval", "deny"])
          assert.include(onchain.reasons.join(" "), "transfers are frozen")
          // Publishing does not activate
          assert.strictEqual((yield* call("GET", "/policy", { token: tokens.alice })).body.version, seed.body.version)

          const activated = yield* call("POST", `/policy/versions/${published.body.version}/activate`, {
            token: tokens.root
          })
          assert.strictEqual(activated.status, 200, activated.text)
          assert.strictEqual(activated.body.active.version, published.body.version)
          assert.strictEqual(activated.body.previous, seed.body.version)
          assert.isTrue(activated.body.changed)
          assert.isFalse(activated.body.rollback)

          // New tasks are planned under the new version: denied
          const denied = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer })
          assert.strictEqual(denied.status, 422, denied.text)
          // The running task stays pinned to the seed version: approved, it completes
          const approved = yield* call("POST", `/task/${pinned}/approve`, {
            token: tokens.bob,
            body: { approved: true }
          })
          assert.strictEqual(approved.status, 200, approved.text)
          const done = yield* waitForStatus(pinned, (s) => s === "completed" || s === "failed")
          assert.strictEqual(done.status, "completed")
          const detail = yield* call("GET", `/task/${pinned}`, { token: tokens.carol })
          assert.strictEqual(detail.body.policy_version, seed.body.version)

          // Activating the active version again changes nothing
          const again = yield* call("POST", `/policy/versions/${published.body.version}/activate`, {
            token: tokens.root
          })
          assert.isFalse(again.body.changed)

          // Roll back
          const rolledBack = yield* call("POST", `/policy/versions/${seed.body.version}/activate`, {
            token: tokens.root
          })
          assert.strictEqual(rolledBack.status, 200, rolledBack.text)
          assert.isTrue(rolledBack.body.rollback)
          assert.strictEqual(rolledBack.body.previous, published.body.version)
          const after = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer })
          assert.strictEqual(after.status, 200, after.text)

          // Every change is in the ledger with the set's version and the admin who made it
          const publishedEntries = yield* ledgerEntries("policy.published")
          assert.isTrue(
            publishedEntries.some((e) => e.payload?.version === published.body.version && e.principal?.id === "root")
          )
          const activations = yield* ledgerEntries("policy.activated")
          const mine = activations
            .filter((e) => e.principal?.id === "root")
            .map((e) => [e.payload.version, e.payload.previous])
          assert.deepStrictEqual(mine.slice(-2), [
            [published.body.version, seed.body.version],
            [seed.body.version, published.body.version]
          ])
          // and GET /policy/versions shows that history: who activated which version when, with its entry
          const history = yield* call("GET", "/policy/versions", { token: tokens.carol })
          assert.strictEqual(history.status, 200, history.text)
          const shown = history.body.activations.slice(-2)
          const entries = activations.slice(-2)
          assert.deepStrictEqual(
            shown,
            entries.map((e) => ({
              version: e.payload.version,
              previous: e.payload.previous,
              name: e.payload.name,
              by: "root",
              rollback: e.payload.version === seed.body.version,
              at: e.at,
              seq: e.seq,
              entry_hash: e.entry_hash
            }))
          )
        })
    )

    it.effect("plan binding: execute runs exactly the reviewed plan, or refuses with 409 when anything changed", () =>
      Effect.gen(function* () {
        const seed = yield* call("GET", "/policy", { token: tokens.alice })
        const create = (token: string) =>
          Effect.map(call("POST", "/plan/create", { token, body: transfer }), (reply) => {
            assert.strictEqual(reply.status, 200, reply.text)
            return reply.body as { plan_id: string; hash: string; policy_version: string }
          })
        const execute = (token: string, planId: string) =>
          call("POST", "/plan/execute", { token, body: { plan_id: planId } })
        const publishAndActivate = (policy: unknown) =>
          Effect.gen(function* () {
            const published = yield* call("POST", "/policy/versions", { token: tokens.root, body: { policy } })
            assert.strictEqual(published.status, 200, published.text)
            const activated = yield* call("POST", `/policy/versions/${published.body.version}/activate`, {
              token: tokens.root
            })
            assert.strictEqual(activated.status, 200, activated.text)
            return published.body.version as string
          })
        const aliceTasks = Effect.map(
          call("GET", "/tasks?requested_by=alice&limit=1000", { token: tokens.carol }),
          (reply) => reply.body.tasks.length as number
        )

        // Unchanged: the task's plan is the reviewed one (same hash, same version)
        const reviewed = yield* create(tokens.alice)
        const ran = yield* execute(tokens.alice, reviewed.plan_id)
        assert.strictEqual(ran.status, 200, ran.text)
        const task = yield* call("GET", `/task/${ran.body.task_id}`, { token: tokens.carol })
        assert.strictEqual(task.body.plan.hash, reviewed.hash)
        assert.strictEqual(task.body.policy_version, reviewed.policy_version)

        // The policy changed since the dry run: 409, and no task starts
        const before = yield* create(tokens.alice)
        const changed = {
          ...seed.body.policy,
          name: "stricter-for-approvers",
          // Approvers' transfers need two approvals, everyone else's one
          rules: seed.body.policy.rules.concat([
            {
              id: "transfers-by-approvers",
              effect: "require_approval",
              match: { task: "transfer_funds", action: "onchain_action", roles: ["approver"] },
              approvals: { required: 2 }
            }
          ])
        }
        const changedVersion = yield* publishAndActivate(changed)
        const tasksBefore = yield* aliceTasks
        const stale = yield* execute(tokens.alice, before.plan_id)
        assert.strictEqual(stale.status, 409, stale.text)
        assert.strictEqual(stale.body.reason, "policy_changed")
        assert.strictEqual(yield* aliceTasks, tasksBefore)

        // Same version, but the decisions differ for the principal who executes: 409 as well
        const erinsPlan = yield* create(tokens.erin)
        assert.strictEqual(erinsPlan.policy_version, changedVersion)
        // (only its requester, auditors and admins may read a dry run's plan; the admin is no approver)
        const other = yield* execute(tokens.root, erinsPlan.plan_id)
        assert.strictEqual(other.status, 409, other.text)
        assert.strictEqual(other.body.reason, "decisions_changed")
        assert.strictEqual((yield* execute(tokens.erin, erinsPlan.plan_id)).status, 200)

        // Back on the version it was planned under, the reviewed plan runs again
        yield* call("POST", `/policy/versions/${seed.body.version}/activate`, { token: tokens.root })
        assert.strictEqual((yield* execute(tokens.alice, before.plan_id)).status, 200)
      })
    )
  })

describe("policy administration and plan binding", () => {
  suite("memory", memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    suite("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    suite("redis", TestRedis.services())
  })
})
