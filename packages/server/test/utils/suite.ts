/**
 * The HTTP suite: the seed workflow and every error class, over real HTTP, against a server on the given
 * services. The memory run and the Postgres run call the same function.
 */
import { assert, layer } from "@effect/vitest"
import { verifyEntryProof } from "@mandate/core"
import { Effect, type Layer, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { TaskDetailWire, TaskStatusWire } from "../../src/api/Models.ts"
import { TaskStarted } from "../../src/api/Tasks.ts"
import type * as Stores from "../../src/Stores.ts"
import * as TestServer from "./TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus, openEvents } = TestServer

const transfer = (amount = 2_500) => ({
  task_type: "transfer_funds",
  parameters: { from: walletA, to: walletB, amount }
})

export const suite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("seed workflow: start → status → approve → audit → verify, each with its role's token", () =>
      Effect.gen(function* () {
        const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer() })
        assert.strictEqual(started.status, 200, started.text)
        assert.match(started.body.task_id, /^task_/)
        assert.match(started.body.plan_id, /^plan_/)
        assert.match(started.headers["x-request-id"] ?? "", /^[0-9a-f-]{36}$/)
        const taskId: string = started.body.task_id

        const waiting = yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        assert.deepStrictEqual(waiting.waiting_approval, ["onchain_action"])
        assert.deepStrictEqual(
          waiting.steps.map((s: { step_id: string; status: string }) => [s.step_id, s.status]),
          [
            ["check_balance", "succeeded"],
            ["policy_check", "succeeded"],
            ["onchain_action", "waiting_approval"]
          ]
        )

        const approved = yield* call("POST", `/task/${taskId}/approve`, {
          token: tokens.bob,
          body: { approved: true, comment: "vendor verified" }
        })
        assert.strictEqual(approved.status, 200, approved.text)
        yield* waitForStatus(taskId, (s) => s === "completed")

        const detail = yield* call("GET", `/task/${taskId}`, { token: tokens.alice })
        assert.strictEqual(detail.status, 200)
        assert.strictEqual(detail.body.status, "completed")
        assert.strictEqual(detail.body.requested_by.id, "alice")
        assert.strictEqual(detail.body.approvals[0].principal.id, "bob")
        assert.strictEqual(detail.body.approvals[0].comment, "vendor verified")
        assert.strictEqual(detail.body.plan.steps[2].decision.effect, "require_approval")
        const onchain = detail.body.steps.find((s: { step_id: string }) => s.step_id === "onchain_action")
        assert.strictEqual(onchain.status, "succeeded")
        assert.strictEqual(onchain.result.chain, "qubic-mock")

        const audit = yield* call("GET", `/audit/${taskId}`, { token: tokens.carol })
        assert.strictEqual(audit.status, 200)
        const kinds: Array<string> = audit.body.entries.map((e: { kind: string }) => e.kind)
        assert.strictEqual(kinds[0], "task.created")
        for (const kind of ["plan.created", "policy.decided", "approval.granted", "step.succeeded", "task.completed"]) {
          assert.include(kinds, kind)
        }
        const approval = audit.body.entries.find((e: { kind: string }) => e.kind === "approval.granted")
        assert.strictEqual(approval.principal.id, "bob")

        const last = audit.body.entries[audit.body.entries.length - 1]
        const verified = yield* call("GET", `/verify/${last.entry_hash}`, { token: tokens.carol })
        assert.strictEqual(verified.status, 200, verified.text)
        assert.isTrue(verified.body.verified)
        assert.strictEqual(verified.body.entry.entry_hash, last.entry_hash)
        assert.strictEqual(verified.body.inclusion_proof.leaf_index, last.seq)
        // The proof checks offline with @mandate/core, the wire names mapped back
        const v = verified.body
        const entry = {
          seq: v.entry.seq,
          kind: v.entry.kind,
          ...(v.entry.task_id === undefined ? {} : { taskId: v.entry.task_id }),
          ...(v.entry.task_prev_hash === undefined ? {} : { taskPrevHash: v.entry.task_prev_hash }),
          ...(v.entry.step_id === undefined ? {} : { stepId: v.entry.step_id }),
          ...(v.entry.principal === undefined ? {} : { principal: v.entry.principal }),
          at: v.entry.at,
          payloadHash: v.entry.payload_hash,
          ...(v.entry.payload === undefined ? {} : { payload: v.entry.payload }),
          prevHash: v.entry.prev_hash,
          entryHash: v.entry.entry_hash
        }
        const checkpoint = { ...v.checkpoint, keyId: v.checkpoint.key_id }
        const ok = verifyEntryProof(
          {
            entry,
            leafHash: v.leaf_hash,
            checkpoint,
            proof: {
              leafIndex: v.inclusion_proof.leaf_index,
              treeSize: v.inclusion_proof.tree_size,
              path: v.inclusion_proof.path
            }
          } as never,
          v.public_key
        )
        assert.isTrue(ok)

        // Anchor the ledger, then the verification names the anchor transaction, which the chain knows
        const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
        assert.strictEqual(anchored.status, 200, anchored.text)
        const again = yield* call("GET", `/verify/${last.entry_hash}`, { token: tokens.carol })
        assert.isString(again.body.anchor_tx_id)
        const tx = yield* call("GET", `/tx/${again.body.anchor_tx_id}`, { token: tokens.carol })
        assert.strictEqual(tx.status, 200, tx.text)
        assert.strictEqual(tx.body.root, again.body.checkpoint.root)

        const first = yield* call("GET", "/ledger/checkpoint", { token: tokens.carol })
        assert.strictEqual(first.status, 200)
        const consistency = yield* call("GET", `/ledger/consistency?from=1&to=${first.body.size}`, {
          token: tokens.carol
        })
        assert.strictEqual(consistency.status, 200, consistency.text)
        assert.strictEqual(consistency.body.new_size, first.body.size)
      })
    )

    // Start, read and status answer the wire value the server built, serialised as is (`Models.respond`): it must
    // be exactly what HttpApi's encoder would have made of it, at every stage of a task
    it.effect("start, detail and status answer what their schemas encode, before and after approval", () =>
      Effect.gen(function* () {
        const same = <S extends Schema.Codec<unknown, unknown>>(schema: S, reply: TestServer.Reply) => {
          assert.strictEqual(reply.status, 200, reply.text)
          assert.match(reply.headers["content-type"] ?? "", /^application\/json/)
          const encoded = Schema.encodeUnknownSync(schema)(Schema.decodeUnknownSync(schema)(reply.body))
          assert.deepStrictEqual(reply.body, JSON.parse(JSON.stringify(encoded)))
        }
        const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(400) })
        same(TaskStarted, started)
        const taskId: string = started.body.task_id
        same(TaskDetailWire, yield* call("GET", `/task/${taskId}`, { token: tokens.alice }))
        same(TaskStatusWire, yield* call("GET", `/task/${taskId}/status`, { token: tokens.carol }))
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        yield* waitForStatus(taskId, (s) => s === "completed")
        same(TaskDetailWire, yield* call("GET", `/task/${taskId}`, { token: tokens.carol }))
        same(TaskStatusWire, yield* call("GET", `/task/${taskId}/status`, { token: tokens.alice }))
      })
    )

    it.effect("SSE: a snapshot, then the task's events live and in order, until it completes", () =>
      Effect.gen(function* () {
        const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(300) })
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        const stream = yield* openEvents(taskId)
        assert.strictEqual(stream.status, 200)
        assert.match(stream.contentType, /text\/event-stream/)
        yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        const events = yield* stream.events
        assert.strictEqual(events[0].kind, "task.snapshot")
        assert.strictEqual(events[0].status, "waiting_approval")
        const live = events.slice(1)
        const seqs = live.map((e) => e.seq)
        assert.deepStrictEqual(
          seqs,
          [...seqs].sort((a, b) => a - b)
        )
        const kinds = live.map((e) => e.kind)
        const order = ["approval.granted", "step.started", "step.succeeded", "task.completed"]
        assert.deepStrictEqual(
          kinds.filter((k) => order.includes(k)),
          order
        )
        assert.strictEqual(live[live.length - 1].kind, "task.completed")
        assert.isTrue(live.every((e) => e.task_id === taskId))
      })
    )

    it.effect("400: every bad field with its JSON path, never a 500", () =>
      Effect.gen(function* () {
        const bad = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "transfer_funds", parameters: { from: "nope", amount: -5 } }
        })
        assert.strictEqual(bad.status, 400, bad.text)
        assert.strictEqual(bad.body.error, "invalid_input")
        const paths = bad.body.issues.map((i: { path: string }) => i.path)
        assert.includeMembers(paths, ["$.parameters.from", "$.parameters.to", "$.parameters.amount"])

        const shape = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { parameters: 7, priority: "x" }
        })
        assert.strictEqual(shape.status, 400)
        assert.includeMembers(
          shape.body.issues.map((i: { path: string }) => i.path),
          ["$.task_type", "$.priority"]
        )
        const notJson = yield* call("POST", "/task/start", { token: tokens.alice, body: "{not json" })
        assert.strictEqual(notJson.status, 400)
        assert.strictEqual(notJson.body.path, "$")
        const badId = yield* call("GET", "/task/bad%20id", { token: tokens.alice })
        assert.strictEqual(badId.status, 400)
        assert.strictEqual(badId.body.path, "$path.id")
        const badQuery = yield* call("GET", "/tasks?limit=lots", { token: tokens.alice })
        assert.strictEqual(badQuery.status, 400)
        assert.strictEqual(badQuery.body.path, "$query.limit")
        const unknownKind = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "launch_rockets", parameters: {} }
        })
        assert.strictEqual(unknownKind.status, 400)
        assert.strictEqual(unknownKind.body.path, "$.task_type")
        assert.match(unknownKind.body.message, /transfer_funds/)
      })
    )

    it.effect("401 without or with a wrong token; 403 for a role the route does not admit, and for four eyes", () =>
      Effect.gen(function* () {
        const none = yield* call("GET", "/tasks")
        assert.strictEqual(none.status, 401)
        assert.strictEqual(none.body.error, "unauthorized")
        const wrong = yield* call("GET", "/tasks", { token: "alice.wrong-secret" })
        assert.strictEqual(wrong.status, 401)
        const auditorStarts = yield* call("POST", "/task/start", { token: tokens.carol, body: transfer() })
        assert.strictEqual(auditorStarts.status, 403)
        assert.strictEqual(auditorStarts.body.error, "forbidden")

        const started = yield* call("POST", "/task/start", { token: tokens.root, body: transfer(400) })
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        const agentApproves = yield* call("POST", `/task/${taskId}/approve`, {
          token: tokens.robot,
          body: { approved: true }
        })
        assert.strictEqual(agentApproves.status, 403)
        // The admin started it: as the requester it may not approve it (four eyes, enforced by the runtime)
        const selfApproval = yield* call("POST", `/task/${taskId}/approve`, {
          token: tokens.root,
          body: { approved: true }
        })
        assert.strictEqual(selfApproval.status, 403)
        assert.match(selfApproval.body.message, /four eyes/)
        // Someone else's task is not even visible to another submitter: cancelling it is 404, as for no task
        const othersCancel = yield* call("POST", `/task/${taskId}/cancel`, { token: tokens.dave, body: {} })
        assert.strictEqual(othersCancel.status, 404)
        // An admin sees it, but only the requester or an admin may cancel: an approver who sees it is refused
        const approverCancels = yield* call("POST", `/task/${taskId}/cancel`, { token: tokens.erin, body: {} })
        assert.strictEqual(approverCancels.status, 403)
        // Health, readiness, the OpenAPI document and the docs need no token; nothing else does
        for (const path of ["/health", "/ready", "/openapi.json", "/docs"]) {
          assert.strictEqual((yield* call("GET", path)).status, 200, path)
        }
        assert.strictEqual((yield* call("GET", "/metrics")).status, 401)
      })
    )

    it.effect("404 for unknown ids and routes; 409 for illegal transitions; 422 for policy denial", () =>
      Effect.gen(function* () {
        const unknownTask = yield* call("GET", "/task/task_nope", { token: tokens.alice })
        assert.strictEqual(unknownTask.status, 404)
        assert.deepStrictEqual([unknownTask.body.resource, unknownTask.body.id], ["task", "task_nope"])
        assert.strictEqual((yield* call("GET", "/plan/plan_nope", { token: tokens.alice })).status, 404)
        assert.strictEqual((yield* call("GET", `/verify/${"a".repeat(64)}`, { token: tokens.carol })).status, 404)
        assert.strictEqual((yield* call("GET", "/audit/task_nope", { token: tokens.carol })).status, 404)
        assert.strictEqual((yield* call("GET", "/queue/jobs/job_nope", { token: tokens.robot })).status, 404)
        const route = yield* call("GET", "/no/such/route", { token: tokens.alice })
        assert.strictEqual(route.status, 404)
        assert.strictEqual(route.body.error, "not_found")
        assert.isString(route.headers["x-request-id"])

        const started = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "monitoring", parameters: { wallet: walletA } }
        })
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "completed")
        const cancelDone = yield* call("POST", `/task/${taskId}/cancel`, { token: tokens.alice, body: {} })
        assert.strictEqual(cancelDone.status, 409)
        assert.strictEqual(cancelDone.body.error, "conflict")
        // An admin sees every task (an approver would not see this ungated one: 404)
        const approveDone = yield* call("POST", `/task/${taskId}/approve`, {
          token: tokens.root,
          body: { approved: true }
        })
        assert.strictEqual(approveDone.status, 409)

        const gated = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(500) })
        yield* waitForStatus(gated.body.task_id, (s) => s === "waiting_approval")
        const noSuchStep = yield* call("POST", `/task/${gated.body.task_id}/approve`, {
          token: tokens.bob,
          body: { approved: true, step_id: "no_such_step" }
        })
        assert.strictEqual(noSuchStep.status, 404)
        const rejected = yield* call("POST", `/task/${gated.body.task_id}/approve`, {
          token: tokens.bob,
          body: { approved: false, comment: "not today" }
        })
        assert.strictEqual(rejected.status, 200)
        assert.strictEqual(rejected.body.status, "rejected")

        const denied = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(2_000_000) })
        assert.strictEqual(denied.status, 422, denied.text)
        assert.strictEqual(denied.body.error, "policy_denied")
        assert.match(denied.body.reasons[0], /above 1,000,000/)
        const recorded = yield* call("GET", `/task/${denied.body.task_id}/status`, { token: tokens.alice })
        assert.strictEqual(recorded.body.status, "rejected")
      })
    )

    it.effect("413 for a body over the limit, with and without Content-Length", () =>
      Effect.gen(function* () {
        const big = { task_type: "monitoring", parameters: { wallet: walletA, pad: "x".repeat(100 * 1024) } }
        const declared = yield* call("POST", "/task/start", { token: tokens.alice, body: big })
        assert.strictEqual(declared.status, 413)
        assert.strictEqual(declared.body.error, "payload_too_large")
        const client = yield* HttpClient.HttpClient
        const chunked = yield* client
          .execute(
            HttpClientRequest.post("/task/start").pipe(
              HttpClientRequest.bearerToken(tokens.alice),
              HttpClientRequest.bodyStream(
                // A stream body has no Content-Length: the limit applies while reading
                (yield* Effect.promise(() => import("effect/Stream"))).make(
                  new TextEncoder().encode(JSON.stringify(big))
                ),
                { contentType: "application/json" }
              )
            )
          )
          .pipe(Effect.orDie)
        assert.strictEqual(chunked.status, 413)
      })
    )

    it.effect("plans: a dry run with every decision, then execute; policy explains; requests carry ids", () =>
      Effect.gen(function* () {
        const plan = yield* call("POST", "/plan/create", { token: tokens.alice, body: transfer(700) })
        assert.strictEqual(plan.status, 200, plan.text)
        assert.deepStrictEqual(
          plan.body.steps.map((s: { decision: { effect: string } }) => s.decision.effect),
          ["allow", "allow", "require_approval"]
        )
        assert.deepStrictEqual(plan.body.denied, [])
        const fetched = yield* call("GET", `/plan/${plan.body.plan_id}`, { token: tokens.carol })
        assert.strictEqual(fetched.body.hash, plan.body.hash)
        const executed = yield* call("POST", "/plan/execute", {
          token: tokens.alice,
          body: { plan_id: plan.body.plan_id }
        })
        assert.strictEqual(executed.status, 200, executed.text)
        assert.match(executed.body.task_id, /^task_/)

        const policy = yield* call("GET", "/policy", { token: tokens.carol })
        assert.strictEqual(policy.status, 200)
        assert.match(policy.body.version, /^[0-9a-f]{64}$/)
        assert.isTrue(policy.body.active)
        const policies = yield* call("GET", "/policies", { token: tokens.carol })
        assert.strictEqual(policies.body.policies[0].version, policy.body.version)
        const explained = yield* call("POST", "/policy/evaluate", {
          token: tokens.carol,
          body: { action: "onchain_action", task_type: "transfer_funds", parameters: { amount: 5_000_000 } }
        })
        assert.strictEqual(explained.status, 200, explained.text)
        assert.strictEqual(explained.body.decision.effect, "deny")
        assert.include(explained.body.decision.matched_rules, "transfer-limit")
        assert.isTrue(
          explained.body.trace.some((t: { rule: string; matched: boolean }) => t.rule === "transfer-limit" && t.matched)
        )

        const own = yield* call("GET", "/health", { headers: { "x-request-id": "trace-me-123" } })
        assert.strictEqual(own.headers["x-request-id"], "trace-me-123")

        const listed = yield* call("GET", "/tasks?status=completed&status=rejected&limit=2", { token: tokens.carol })
        assert.strictEqual(listed.status, 200, listed.text)
        assert.isAtMost(listed.body.tasks.length, 2)
        assert.isTrue(listed.body.tasks.every((t: { status: string }) => ["completed", "rejected"].includes(t.status)))
      })
    )

    it.effect("host entries go to the ledger with the caller as principal; ready and metrics report the stores", () =>
      Effect.gen(function* () {
        const recorded = yield* call("POST", "/audit/record", {
          token: tokens.alice,
          body: { kind: "external.invoice.paid", payload: { invoice: "INV-7", amount: 120 } }
        })
        assert.strictEqual(recorded.status, 200, recorded.text)
        const reserved = yield* call("POST", "/audit/record", {
          token: tokens.alice,
          body: { kind: "invoice.paid", payload: { invoice: "INV-7", amount: 120 } }
        })
        assert.strictEqual(reserved.status, 422, reserved.text)
        assert.match(reserved.body.message, /note\.\* or external\.\*/)
        const verified = yield* call("GET", `/verify/${recorded.body.entry_hash}`, { token: tokens.carol })
        assert.strictEqual(verified.body.entry.principal.id, "alice")
        assert.deepStrictEqual(verified.body.entry.payload, { invoice: "INV-7", amount: 120 })
        const badKind = yield* call("POST", "/audit/record", {
          token: tokens.alice,
          body: { kind: "Nope", payload: 1 }
        })
        assert.strictEqual(badKind.status, 400)
        assert.strictEqual(badKind.body.path, "$.kind")

        const ready = yield* call("GET", "/ready")
        assert.strictEqual(ready.status, 200, ready.text)
        assert.strictEqual(ready.body.status, "ready")
        assert.isTrue(ready.body.checks.every((c: { ok: boolean }) => c.ok))

        const metrics = yield* call("GET", "/metrics", { token: tokens.carol })
        assert.strictEqual(metrics.status, 200)
        assert.match(metrics.headers["content-type"] ?? "", /text\/plain/)
        assert.match(
          metrics.text,
          /mandate_http_requests_total\{[^}]*route="\/task\/start"[^}]*status="200"[^}]*\} \d+/
        )
        assert.match(metrics.text, /mandate_http_request_duration_seconds_bucket\{/)
        assert.match(metrics.text, /mandate_tasks\{state="completed"\} [1-9]/)
        assert.match(metrics.text, /mandate_queue_jobs\{state="completed"\} \d+/)
        assert.match(metrics.text, /mandate_ledger_entries [1-9]/)
      })
    )
  })
