/**
 * The authorization matrix: every route of the OpenAPI document the server serves × every role (and no token) ×
 * whose resource it is, each cell asserted over HTTP, on memory, Postgres and Redis.
 *
 * The expectations are a table written here by hand, one row per route: the roles it admits (admins pass every role
 * check), whether its resource is a task or a plan (then core's `Access` decides: a task the caller may not read is
 * 404), and any rule beyond reading (four eyes, requester-only). A route the document serves that the table does not
 * classify fails the test, so a new route cannot ship unclassified; a row for a route that is gone fails it too.
 *
 * Resources, for routes that take a task or a plan: `own` (the caller requested it; only for principals that may
 * start tasks), `other_gated` (dave's transfer, which waits for approval: approvers may read it) and `other_plain`
 * (dave's monitoring task, which needs no approval: only auditors and admins may read it). Outcomes: an exact status,
 * or `ok` (the request got past authorization: not 401, 403 or 404, and no 5xx; state may make it a 409), or, for
 * routes whose ids are not tasks or plans, `pass` (not 401 or 403, no 5xx).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

type Role = "submitter" | "approver" | "auditor" | "agent" | "admin"
type Who = "anonymous" | "alice" | "bob" | "erin" | "carol" | "robot" | "root"
type Resource = "own" | "other_gated" | "other_plain" | "none"
type Outcome = 401 | 403 | 404 | "ok" | "pass"

const principals: Record<Who, { readonly token?: string; readonly roles: ReadonlyArray<Role> }> = {
  anonymous: { roles: [] },
  alice: { token: tokens.alice, roles: ["submitter"] },
  bob: { token: tokens.bob, roles: ["approver"] },
  erin: { token: tokens.erin, roles: ["submitter", "approver"] },
  carol: { token: tokens.carol, roles: ["auditor"] },
  robot: { token: tokens.robot, roles: ["agent"] },
  root: { token: tokens.root, roles: ["admin"] }
}

/** What a cell's request refers to. */
interface Fixture {
  readonly who: Who
  readonly taskId: string
  readonly planId: string
  readonly entryHash: string
  readonly txId: string
  readonly jobId: string
}

interface Route {
  /** The roles the route admits; `public`: no token needed. Admins pass every role check. */
  readonly roles: ReadonlyArray<Role> | "public"
  /** The route's resource is a task or a plan, read through core's `Access`. */
  readonly object?: "task" | "plan"
  readonly query?: string
  readonly body?: (f: Fixture) => unknown
  /** A rule beyond reading, for a caller who may read the resource. */
  readonly rule?: (who: Who, resource: Resource) => Outcome | undefined
}

const readers: ReadonlyArray<Role> = ["submitter", "approver", "auditor"]
const queueReaders: ReadonlyArray<Role> = ["agent", "auditor"]
const monitoring = { task_type: "monitoring", parameters: { wallet: walletA } }
const transfer = { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 1_500 } }
const worker = (f: Fixture) => ({ worker_id: f.who })
// Only the requester or an admin may cancel or retry a task it can read; an approver who reads it may not
const requesterOrAdmin = (who: Who, resource: Resource): Outcome | undefined =>
  resource !== "own" && who !== "root" ? 403 : undefined

/** The expectations, one row per route of the OpenAPI document. */
const table: Record<string, Route> = {
  "POST /task/start": { roles: ["submitter"], body: () => monitoring },
  "GET /task/{id}": { roles: readers, object: "task" },
  "GET /task/{id}/status": { roles: readers, object: "task" },
  "GET /task/{id}/events": { roles: readers, object: "task" },
  "POST /task/{id}/approve": {
    roles: ["approver"],
    object: "task",
    body: () => ({ approved: true }),
    // Four eyes: the requester of a task never decides on it
    rule: (_who, resource) => (resource === "own" ? 403 : undefined)
  },
  "POST /task/{id}/cancel": { roles: ["submitter"], object: "task", body: () => ({}), rule: requesterOrAdmin },
  "POST /task/{id}/retry": { roles: ["submitter"], object: "task", rule: requesterOrAdmin },
  "GET /tasks": { roles: readers },
  "GET /tasks/events": { roles: readers },
  "POST /plan/create": { roles: ["submitter"], body: () => monitoring },
  "GET /plan/{plan_id}": { roles: readers, object: "plan" },
  "POST /plan/execute": { roles: ["submitter"], object: "plan", body: (f) => ({ plan_id: f.planId }) },
  "GET /policy": { roles: readers },
  "GET /policies": { roles: readers },
  "POST /policy/evaluate": {
    roles: readers,
    body: () => ({ action: "onchain_action", task_type: "transfer_funds", parameters: { amount: 1 } })
  },
  "GET /policy/versions": { roles: ["auditor"] },
  // Admins only; a dry run, so the matrix changes no policy
  "POST /policy/versions": { roles: [], body: () => ({ policy: { name: "matrix", rules: [] }, dry_run: true }) },
  "POST /policy/versions/{version}/activate": { roles: [] },
  "GET /audit/{task_id}": { roles: readers, object: "task" },
  "GET /audit/{task_id}/evidence": { roles: readers, object: "task" },
  "GET /audit/{task_id}/bundle": { roles: readers, object: "task" },
  "POST /audit/record": {
    roles: ["submitter", "approver", "auditor", "agent"],
    object: "task",
    body: (f) => ({ kind: "note.matrix", task_id: f.taskId, payload: { by: f.who } })
  },
  "GET /verify/{hash}": { roles: ["auditor"] },
  "GET /ledger": { roles: ["auditor"] },
  "GET /ledger/entries": { roles: ["auditor"] },
  "GET /ledger/keys": { roles: readers },
  "GET /ledger/verify": { roles: ["auditor"] },
  "GET /ledger/checkpoint": { roles: ["auditor"] },
  "GET /ledger/consistency": { roles: ["auditor"], query: "?from=1&to=2" },
  "POST /ledger/anchor": { roles: ["auditor"] },
  "POST /write": { roles: [], body: () => ({ hash: "ab".repeat(32) }) },
  "GET /tx/{txid}": { roles: ["auditor"] },
  "POST /queue/jobs": { roles: ["submitter"], body: () => ({ queue: "matrix.jobs", payload: { n: 1 } }) },
  "GET /queue/jobs": { roles: queueReaders, query: "?queue=matrix.jobs" },
  "GET /queue/jobs/{id}": { roles: queueReaders },
  "POST /queue/claim": { roles: ["agent"], body: (f) => ({ ...worker(f), queues: ["matrix.jobs"], max: 1 }) },
  "PATCH /queue/jobs/{id}/start": { roles: ["agent"], body: worker },
  "POST /queue/jobs/{id}/heartbeat": { roles: ["agent"], body: worker },
  "PATCH /queue/jobs/{id}/complete": { roles: ["agent"], body: (f) => ({ ...worker(f), result: { ok: true } }) },
  "PATCH /queue/jobs/{id}/fail": { roles: ["agent"], body: (f) => ({ ...worker(f), error: "matrix" }) },
  "GET /queue/stats": { roles: queueReaders },
  "POST /queue/jobs/{id}/redrive": { roles: [] },
  "POST /queue/maintenance/requeue-expired": { roles: [] },
  "POST /agents": { roles: ["agent"], body: () => ({ pool: "matrix" }) },
  "GET /agents": { roles: queueReaders },
  "GET /agents/pools": { roles: queueReaders },
  "GET /agents/{id}": { roles: queueReaders },
  "POST /agents/{id}/heartbeat": { roles: ["agent"], body: () => ({}) },
  "DELETE /agents/{id}": { roles: ["agent"] },
  // Lease ids here are a host queue's job: no pool step exists under them (404), and robot is no agent of a pool
  "GET /pools/{pool}": { roles: queueReaders },
  "POST /pools/{pool}/claim": { roles: ["agent"], body: (f) => ({ ...worker(f), max: 1 }) },
  "POST /steps/{lease_id}/heartbeat": { roles: ["agent"], body: worker },
  "POST /steps/{lease_id}/complete": { roles: ["agent"], body: (f) => ({ ...worker(f), result: { ok: true } }) },
  "POST /steps/{lease_id}/fail": { roles: ["agent"], body: (f) => ({ ...worker(f), error: "matrix" }) },
  "POST /execute": {
    roles: ["submitter"],
    body: () => ({ step_type: "monitor_action", parameters: { wallet: walletA } })
  },
  "GET /health": { roles: "public" },
  "GET /ready": { roles: "public" },
  "GET /metrics": { roles: ["auditor"] },
  "GET /whoami": { roles: ["submitter", "approver", "auditor", "agent"] },
  // Webhooks: admins only (core's Webhooks checks the role again)
  "GET /webhooks": { roles: [] },
  "POST /webhooks": {
    roles: [],
    body: () => ({ url: "https://matrix.example/hook", events: ["step.dead_lettered"], enabled: false })
  },
  "GET /webhooks/deliveries": { roles: [] },
  "POST /webhooks/deliveries/{id}/retry": { roles: [] },
  "GET /webhooks/{id}": { roles: [] },
  "PATCH /webhooks/{id}": { roles: [], body: () => ({ enabled: false }) },
  "DELETE /webhooks/{id}": { roles: [] }
}

/** Who may read which resource (core's `Access`, restated as the matrix's spec). */
const mayRead = (who: Who, resource: Resource): boolean => {
  const roles = principals[who].roles
  if (resource === "own" || resource === "none") return true
  if (roles.includes("auditor") || roles.includes("admin")) return true
  return resource === "other_gated" && roles.includes("approver")
}

const expected = (route: Route, who: Who, resource: Resource): Outcome => {
  const { roles } = principals[who]
  if (route.roles === "public") return "ok"
  if (who === "anonymous") return 401
  if (!roles.includes("admin") && !route.roles.some((r) => roles.includes(r))) return 403
  if (route.object === undefined) return "pass"
  if (!mayRead(who, resource)) return 404
  return route.rule?.(who, resource) ?? "ok"
}

const matches = (outcome: Outcome, status: number): boolean =>
  outcome === "ok"
    ? status < 500 && status !== 401 && status !== 403 && status !== 404
    : outcome === "pass"
      ? status < 500 && status !== 401 && status !== 403
      : status === outcome

/** The status of a request; the body is not read, so an event stream is dropped as soon as it answers. */
const statusOf = (method: string, path: string, token: string | undefined, body: unknown) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = HttpClient.withScope(yield* HttpClient.HttpClient)
      let request = HttpClientRequest.make(method as "GET")(path)
      if (token !== undefined) request = HttpClientRequest.bearerToken(request, token)
      if (body !== undefined) request = HttpClientRequest.bodyText(request, JSON.stringify(body), "application/json")
      return (yield* client.execute(request)).status
    })
  ).pipe(Effect.orDie)

// Approvals run before cancellations, so a requester's own task still waits for approval when four eyes is checked
const order = (key: string) => (key.endsWith("/approve") ? 0 : key.startsWith("GET ") ? 1 : 2)

const matrix = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "180 seconds" })(name, (it) => {
    it.effect("every route × role × resource answers as the table says; every route is classified", () =>
      Effect.gen(function* () {
        const spec = (yield* call("GET", "/openapi.json")).body
        const served: Array<string> = []
        for (const [path, item] of Object.entries<Record<string, unknown>>(spec.paths)) {
          for (const method of Object.keys(item)) {
            if (["get", "post", "put", "patch", "delete"].includes(method))
              served.push(`${method.toUpperCase()} ${path}`)
          }
        }
        const unclassified = served.filter((key) => table[key] === undefined)
        assert.deepStrictEqual(unclassified, [], "routes missing from the matrix's table: classify them")
        const stale = Object.keys(table).filter((key) => !served.includes(key))
        assert.deepStrictEqual(stale, [], "rows for routes the server no longer serves")

        // The resources: dave's gated and plain tasks, and a gated task of each principal that may start one
        const start = (token: string, body: unknown) =>
          Effect.gen(function* () {
            const started = yield* call("POST", "/task/start", { token, body })
            assert.strictEqual(started.status, 200, started.text)
            return { taskId: started.body.task_id as string, planId: started.body.plan_id as string }
          })
        const daveGated = yield* start(tokens.dave, transfer)
        const davePlain = yield* start(tokens.dave, monitoring)
        const own: Partial<Record<Who, { taskId: string; planId: string }>> = {
          alice: yield* start(tokens.alice, transfer),
          erin: yield* start(tokens.erin, transfer),
          root: yield* start(tokens.root, transfer)
        }
        for (const t of [daveGated, ...Object.values(own)])
          yield* waitForStatus(t!.taskId, (s) => s === "waiting_approval")
        yield* waitForStatus(davePlain.taskId, (s) => s === "completed")
        const entries = (yield* call("GET", `/audit/${davePlain.taskId}`, { token: tokens.carol })).body.entries
        const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
        assert.strictEqual(anchored.status, 200, anchored.text)
        const job = yield* call("POST", "/queue/jobs", {
          token: tokens.alice,
          body: { queue: "matrix.jobs", payload: { n: 0 } }
        })
        assert.strictEqual(job.status, 200, job.text)
        const common = {
          entryHash: entries[entries.length - 1].entry_hash as string,
          txId: anchored.body.anchor.tx_id as string,
          jobId: job.body.job_id as string
        }

        const failures: Array<string> = []
        let cells = 0
        for (const key of [...served].sort((a, b) => order(a) - order(b))) {
          const route = table[key]!
          const [method, template] = key.split(" ") as [string, string]
          const resources: ReadonlyArray<Resource> =
            route.object === undefined ? ["none"] : ["own", "other_gated", "other_plain"]
          for (const who of Object.keys(principals) as Array<Who>) {
            for (const resource of resources) {
              const target =
                resource === "own"
                  ? own[who]
                  : resource === "other_gated"
                    ? daveGated
                    : resource === "other_plain"
                      ? davePlain
                      : { taskId: daveGated.taskId, planId: daveGated.planId }
              // Only principals that may start tasks have tasks of their own
              if (target === undefined) continue
              const fixture: Fixture = { who, ...target, ...common }
              const path =
                template
                  .replace(
                    "{id}",
                    key.includes("/queue/jobs/") ? fixture.jobId : key.includes("/agents/") ? who : fixture.taskId
                  )
                  .replace("{task_id}", fixture.taskId)
                  .replace("{plan_id}", fixture.planId)
                  .replace("{hash}", fixture.entryHash)
                  .replace("{txid}", fixture.txId)
                  .replace("{pool}", "matrix")
                  .replace("{lease_id}", fixture.jobId)
                  // An unknown version: nothing is activated
                  .replace("{version}", "0".repeat(64)) + (route.query ?? "")
              const outcome = expected(route, who, resource)
              const status = yield* statusOf(method, path, principals[who].token, route.body?.(fixture))
              cells++
              if (!matches(outcome, status))
                failures.push(`${key} as ${who} on ${resource}: ${status}, expected ${outcome}`)
            }
          }
        }
        assert.deepStrictEqual(failures, [])
        assert.isAbove(cells, served.length * 6)
      })
    )
  })

describe("security: the authorization matrix (issue 12)", () => {
  matrix("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    matrix("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    matrix("redis", TestRedis.services())
  })
})
