import * as Fs from "node:fs"
import * as Path from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { OpenApi } from "effect/http-api"
import { Api } from "../src/api/Api.ts"
import { RequiredRoles } from "../src/api/Auth.ts"
import * as TestServer from "./utils/TestServer.ts"

const spec = OpenApi.fromApi(Api) as any

const endpoints = Object.values(Api.groups).flatMap((group: any) =>
  Object.values(group.endpoints).map((endpoint: any) => ({
    group: group.identifier as string,
    identifier: endpoint.identifier as string,
    method: (endpoint.method as string).toLowerCase(),
    path: (endpoint.path as string).replace(/:([A-Za-z_]+)/g, "{$1}"),
    endpoint
  }))
)

/** Every `$ref` in the document, with where it was found. */
const refs = (value: unknown, at = "$"): Array<[string, string]> =>
  typeof value !== "object" || value === null
    ? []
    : Object.entries(value).flatMap(([key, v]) =>
        key === "$ref" && typeof v === "string" ? [[v, at] as [string, string]] : refs(v, `${at}.${key}`)
      )

describe("OpenAPI document", () => {
  it("is an OpenAPI 3.1 document with info, paths and components", () => {
    assert.match(spec.openapi, /^3\.1\./)
    assert.strictEqual(spec.info.title, "Mandate")
    // The document's version is the package's: `npm run version` (Changesets) bumps package.json, not Api.ts
    const pkg = JSON.parse(Fs.readFileSync(Path.resolve(import.meta.dirname, "../package.json"), "utf8"))
    assert.strictEqual(spec.info.version, pkg.version)
    assert.isObject(spec.paths)
    assert.isObject(spec.components.schemas)
    assert.deepStrictEqual(spec.components.securitySchemes.bearer, { type: "http", scheme: "Bearer" })
  })

  it("lists every route of the API, each operation well-formed", () => {
    assert.isAtLeast(endpoints.length, 42)
    for (const { group, identifier, method, path, endpoint } of endpoints) {
      const operation = spec.paths[path]?.[method]
      assert.isObject(operation, `${method.toUpperCase()} ${path} is missing`)
      assert.strictEqual(operation.operationId, `${group}.${identifier}`)
      assert.isObject(operation.responses)
      const statuses = Object.keys(operation.responses)
      assert.isTrue(
        statuses.some((s) => s.startsWith("2")),
        `${path}: a success response`
      )
      for (const [status, response] of Object.entries<any>(operation.responses)) {
        assert.match(status, /^[1-5][0-9][0-9]$/)
        assert.isString(response.description)
      }
      for (const parameter of operation.parameters ?? []) {
        assert.include(["path", "query", "header"], parameter.in)
        assert.isString(parameter.name)
        assert.isObject(parameter.schema)
      }
      for (const name of path.match(/\{([A-Za-z_]+)\}/g) ?? []) {
        const param = (operation.parameters ?? []).find((p: any) => p.in === "path" && `{${p.name}}` === name)
        assert.isObject(param, `${path}: path parameter ${name}`)
        assert.isTrue(param.required)
      }
      if (group === "system") {
        assert.deepStrictEqual(operation.security ?? [], [], `${path} needs no credentials`)
      } else {
        assert.deepStrictEqual(operation.security, [{ bearer: [] }], `${path} requires a bearer token`)
        assert.include(statuses, "401")
        assert.include(statuses, "403")
        assert.include(statuses, "429")
        assert.isObject(operation.responses["429"].headers?.["retry-after"], `${path}: Retry-After`)
        // Routes fail closed: every authenticated endpoint names the roles it admits
        const roles = endpoint.annotations.mapUnsafe.get(RequiredRoles.key)
        assert.isArray(roles, `${path}: required roles`)
        assert.isAbove(roles.length, 0)
      }
      assert.include(statuses, "400", `${path}: bad requests are documented`)
      if (operation.requestBody !== undefined) {
        assert.isObject(operation.requestBody.content["application/json"]?.schema, `${path}: a JSON body`)
        assert.include(statuses, "413")
      }
    }
  })

  it("covers the issue's routes", () => {
    const routes = new Set(endpoints.map((e) => `${e.method.toUpperCase()} ${e.path}`))
    for (const route of [
      "POST /task/start",
      "GET /task/{id}",
      "GET /task/{id}/status",
      "POST /task/{id}/approve",
      "POST /task/{id}/cancel",
      "GET /tasks",
      "GET /task/{id}/events",
      "POST /plan/create",
      "GET /plan/{plan_id}",
      "POST /plan/execute",
      "GET /policy",
      "GET /policies",
      "POST /policy/evaluate",
      "GET /audit/{task_id}",
      "POST /audit/record",
      "GET /verify/{hash}",
      "GET /ledger/checkpoint",
      "GET /ledger/consistency",
      "POST /write",
      "GET /tx/{txid}",
      "POST /queue/jobs",
      "GET /queue/jobs",
      "GET /queue/jobs/{id}",
      "POST /queue/claim",
      "PATCH /queue/jobs/{id}/start",
      "POST /queue/jobs/{id}/heartbeat",
      "PATCH /queue/jobs/{id}/complete",
      "PATCH /queue/jobs/{id}/fail",
      "GET /queue/stats",
      "POST /queue/maintenance/requeue-expired",
      "POST /agents",
      "GET /agents",
      "GET /agents/{id}",
      "POST /agents/{id}/heartbeat",
      "GET /agents/pools",
      "GET /health",
      "GET /ready",
      "GET /metrics"
    ]) {
      assert.isTrue(routes.has(route), route)
    }
    const events = spec.paths["/task/{id}/events"].get.responses["200"].content
    assert.isObject(events["text/event-stream"])
  })

  it("resolves every $ref", () => {
    const found = refs(spec)
    assert.isAbove(found.length, 10)
    for (const [ref, at] of found) {
      const match = /^#\/components\/schemas\/(.+)$/.exec(ref)
      assert.isNotNull(match, `${at}: ${ref}`)
      assert.isObject(spec.components.schemas[decodeURIComponent(match![1]!)], `${at}: ${ref} does not resolve`)
    }
  })
})

layer(TestServer.layer(TestServer.memoryServices()), { excludeTestServices: true })("served", (it) => {
  it.effect("GET /openapi.json serves the same document, and /docs the Scalar page", () =>
    Effect.gen(function* () {
      const served = yield* TestServer.call("GET", "/openapi.json")
      assert.strictEqual(served.status, 200)
      assert.deepStrictEqual(served.body, JSON.parse(JSON.stringify(spec)))
      const docs = yield* TestServer.call("GET", "/docs")
      assert.strictEqual(docs.status, 200)
      assert.match(docs.headers["content-type"] ?? "", /text\/html/)
      assert.match(docs.text, /scalar/i)
    })
  )
})
