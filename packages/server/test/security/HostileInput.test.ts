/**
 * Hostile input, generated from the API's own OpenAPI document: for every operation (event streams aside), requests
 * whose path parameters, query parameters and JSON bodies follow the route's schema or break it — deep and wide
 * JSON, huge and odd numbers, NUL and lone surrogates, wrong types, unknown fields, long strings, hostile ids —
 * sent with every role's token (and none). On memory, Postgres and Redis: no response is a 5xx, none carries
 * runtime error text, and the ledger still verifies afterwards, over HTTP and from inside.
 *
 * Bounded by count, not time: `MANDATE_HOSTILE_RUNS` requests per store (default 1500).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Ledger } from "@mandate/core"
import { Effect, type Layer } from "effect"
import { HttpServer } from "effect/http"
import { OpenApi } from "effect/http-api"
import fc from "fast-check"
import { Api } from "../../src/api/Api.ts"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"
import { leak, nestedArrays, nestedObjects, layer as securityLayer, startTransfer } from "./utils.ts"

const runs = Number(process.env.MANDATE_HOSTILE_RUNS ?? 1500)

// ---- the operations, from the OpenAPI document ----------------------------------------------------------------

interface JsonSchema {
  readonly type?: string | ReadonlyArray<string>
  readonly enum?: ReadonlyArray<unknown>
  readonly properties?: Readonly<Record<string, JsonSchema>>
  readonly required?: ReadonlyArray<string>
  readonly items?: JsonSchema
  readonly prefixItems?: ReadonlyArray<JsonSchema>
  readonly anyOf?: ReadonlyArray<JsonSchema>
  readonly oneOf?: ReadonlyArray<JsonSchema>
  readonly additionalProperties?: boolean | JsonSchema
  readonly $ref?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly maxLength?: number
}

interface Operation {
  readonly method: "GET" | "POST" | "PATCH" | "DELETE"
  readonly path: string
  readonly pathParams: ReadonlyArray<string>
  readonly query: ReadonlyArray<{ readonly name: string; readonly schema: JsonSchema }>
  readonly body: JsonSchema | undefined
}

const spec = OpenApi.fromApi(Api) as unknown as {
  readonly paths: Record<string, Record<string, any>>
  readonly components: { readonly schemas: Record<string, JsonSchema> }
}

const resolve = (schema: JsonSchema | undefined): JsonSchema | undefined =>
  schema?.$ref === undefined ? schema : spec.components.schemas[schema.$ref.replace("#/components/schemas/", "")]

const operations: ReadonlyArray<Operation> = Object.entries(spec.paths).flatMap(([path, methods]) =>
  Object.entries(methods).flatMap(([method, op]): Array<Operation> => {
    const content = op.responses?.["200"]?.content ?? {}
    // Event streams never end; they are covered by their own tests
    if ("text/event-stream" in content) return []
    const parameters: ReadonlyArray<{ in: string; name: string; schema: JsonSchema }> = op.parameters ?? []
    return [
      {
        method: method.toUpperCase() as Operation["method"],
        path,
        pathParams: parameters.filter((p) => p.in === "path").map((p) => p.name),
        query: parameters.filter((p) => p.in === "query").map((p) => ({ name: p.name, schema: p.schema })),
        body: resolve(op.requestBody?.content?.["application/json"]?.schema)
      }
    ]
  })
)

// ---- hostile values, as JSON text (so that numbers and escapes go over the wire exactly as written) ------------

// Strings no store can hold, weighted up: every operation should meet them in each of its fields
const unstorable = ["\u0000", "a\u0000b", "\u0000".repeat(3), "\ud800", "x\udfffy", "\ud83d", "ok\udc00"]

const otherHostile = [
  "",
  "\ud83d\ude00",
  "../../etc/passwd",
  "%00",
  "' OR 1=1 --",
  "$" + "{jndi:ldap://x}",
  "<script>alert(1)</script>",
  "__proto__",
  "constructor",
  "mandate.steps",
  "mandate.deadlines",
  "task_",
  "robot.eu",
  "x".repeat(129),
  "y".repeat(3_000),
  "z".repeat(12_000),
  "\u202e\u200b\ufeff",
  "NaN",
  "-0"
]

const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...unstorable) },
  { weight: 2, arbitrary: fc.constantFrom(...otherHostile) }
)

// Any UTF-16 code unit, lone surrogates and NUL included
const anyUnits = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
  maxLength: 40
})

const stringText: fc.Arbitrary<string> = fc
  .oneof({ weight: 3, arbitrary: hostileString }, fc.string({ maxLength: 40 }), anyUnits)
  .map((s) => JSON.stringify(s))

const numberText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("1e400", "-1e400", "1e-400", "-0", "123456789012345678901234567890", "9007199254740993", "0.1"),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.nat({ max: 20 }).map(String)
)

const deepText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 30, max: 12_000 }).map((d) => nestedArrays(d)),
  fc.integer({ min: 30, max: 12_000 }).map((d) => nestedObjects(d)),
  fc.integer({ min: 60, max: 70 }).map((d) => nestedArrays(d, '"\\u0000"'))
)

const wideText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 100, max: 20_000 }).map((n) => `[${"1,".repeat(n - 1)}1]`),
  fc.integer({ min: 100, max: 3_000 }).map((n) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(",")}}`)
)

const anyJsonText: fc.Arbitrary<string> = fc.json({ maxDepth: 4 })

const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: stringText },
  { weight: 2, arbitrary: numberText },
  { weight: 3, arbitrary: deepText },
  wideText,
  anyJsonText,
  fc.constantFrom("null", "true", "{}", "[]", '{"__proto__":{"admin":true}}', '{"a":1,"a":2}')
)

// Ids of real resources (a task, its plan, a job, …), set once the server is seeded: string fields aim at them, so
// that an attack lands on something a later read goes through
let knownIds: ReadonlyArray<string> = ["none"]

const plainString = fc.oneof(
  fc.constantFrom("transfer_funds", "note.fuzz", "external.fuzz", "tenant.fuzz", "robot", "pool-a"),
  fc.stringMatching(/^[a-z][a-z0-9_.-]{0,20}$/)
)

// The real id a field of this name most likely wants (`task_id` → the task), if any
let idFor: (key: string) => string | undefined = () => undefined

// A value that fits `schema` (as far as a JSON schema says), as plain data; `key` is the field's name
const fitting = (schema: JsonSchema | undefined, depth = 0, key = ""): fc.Arbitrary<unknown> => {
  const s = resolve(schema)
  if (s === undefined || depth > 4) return fc.jsonValue({ maxDepth: 3 })
  if (s.enum !== undefined && s.enum.length > 0) return fc.constantFrom(...s.enum)
  const alternatives = s.anyOf ?? s.oneOf
  if (alternatives !== undefined && alternatives.length > 0) {
    return fc.oneof(...alternatives.map((a) => fitting(a, depth + 1)))
  }
  const type = Array.isArray(s.type) ? s.type[0] : s.type
  switch (type) {
    case "string": {
      const id = idFor(key)
      return id === undefined
        ? fc.oneof(fc.constantFrom(...knownIds), plainString)
        : fc.oneof({ weight: 4, arbitrary: fc.constant(id) }, fc.constantFrom(...knownIds), plainString)
    }
    case "integer":
      return fc.integer({ min: Math.max(s.minimum ?? 0, -1e9), max: Math.min(s.maximum ?? 1e6, 1e9) })
    case "number":
      return fc.double({ min: s.minimum ?? 0, max: s.maximum ?? 1e6, noNaN: true })
    case "boolean":
      return fc.boolean()
    case "null":
      return fc.constant(null)
    case "array":
      return fc.array(fitting(s.items ?? s.prefixItems?.[0], depth + 1), { minLength: 1, maxLength: 3 })
    case "object": {
      const required = new Set(s.required ?? [])
      return fc
        .tuple(
          ...Object.entries(s.properties ?? {}).map(([key, property]) =>
            fc.option(fitting(property, depth + 1), { freq: required.has(key) ? 20 : 2 }).map((v) => [key, v] as const)
          )
        )
        .map((entries) => Object.fromEntries(entries.filter(([, v]) => v !== null)))
    }
    default:
      // Any JSON: a payload, parameters, a result; sometimes a transfer's parameters
      return fc.oneof(
        fc.jsonValue({ maxDepth: 3 }),
        fc.constant({ from: TestServer.walletA, to: TestServer.walletB, amount: 10 })
      )
  }
}

// A body: one that fits with exactly one field made hostile (or an unknown one added), often; one that fits, or
// one that is hostile as a whole, sometimes. One change at a time reaches past the decoder to the handlers.
const bodyText = (schema: JsonSchema | undefined): fc.Arbitrary<string> => {
  const s = resolve(schema)
  const keys = Object.keys(s?.properties ?? {})
  const oneField = fc
    .tuple(
      fitting(s),
      keys.length === 0 ? hostileString : fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...keys) }, hostileString),
      hostileText
    )
    .map(([value, key, text]) => {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return text
      const rest = Object.entries(value).filter(([k]) => k !== key)
      return `{${[...rest.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`), `${JSON.stringify(key)}:${text}`].join(",")}}`
    })
  return fc.oneof(
    { weight: 6, arbitrary: oneField },
    { weight: 2, arbitrary: fitting(s).map((v) => JSON.stringify(v) ?? "null") },
    { weight: 1, arbitrary: hostileText },
    { weight: 1, arbitrary: fc.oneof(fc.string(), fc.constant(""), anyUnits) }
  )
}

// ---- requests ----------------------------------------------------------------------------------------------------

// A path segment: percent-encoded when that is possible (a lone surrogate is not UTF-8: sent as its CESU bytes)
const encodeSegment = (text: string): string => {
  try {
    return encodeURIComponent(text)
  } catch {
    return `${encodeURIComponent(text.replace(/[\ud800-\udfff]/g, ""))}%ED%A0%80`
  }
}

const rawSegments = ["%00", "%ED%A0%80", "%E0%A4%A", "..%2F..%2F", "%", "%%", "a%2Fb", "%C0%AE"]

interface Request {
  readonly method: Operation["method"]
  readonly url: string
  readonly token: string | undefined
  readonly contentType: string | undefined
  readonly body: string | undefined
}

const requestArb = (known: {
  readonly task: string
  readonly plan: string
  readonly job: string
  readonly entry: string
}): fc.Arbitrary<Request> => {
  knownIds = [known.task, known.plan, known.job, known.entry, "robot", "robot.eu", "tenant.fuzz"]
  idFor = (key) =>
    key.includes("task")
      ? known.task
      : key.includes("plan")
        ? known.plan
        : key.includes("job")
          ? known.job
          : key.includes("hash")
            ? known.entry
            : key.includes("worker") || key.includes("agent")
              ? "robot"
              : undefined
  const ids = knownIds
  const idText = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...ids).map(encodeSegment) },
    {
      weight: 3,
      arbitrary: fc.oneof({ weight: 3, arbitrary: hostileString }, fc.string(), anyUnits).map(encodeSegment)
    },
    { weight: 1, arbitrary: fc.constantFrom(...rawSegments) }
  )
  const queryValue = (schema: JsonSchema) => {
    const s = resolve(schema)
    const fit =
      s?.enum !== undefined && s.enum.length > 0
        ? fc.constantFrom(...s.enum.map(String))
        : s?.type === "array" && s.items?.enum !== undefined
          ? fc.constantFrom(...s.items.enum.map(String))
          : fc.oneof(fc.nat({ max: 100 }).map(String), fc.constantFrom(...ids))
    return fc.oneof(
      { weight: 3, arbitrary: fit },
      { weight: 2, arbitrary: hostileString },
      fc.constantFrom("-1", "1e400", "0x10", "NaN"),
      anyUnits
    )
  }
  const tokens = Object.values(TestServer.tokens)
  // Operations that take a body reach furthest with hostile data: they come up twice as often
  const weighted = operations.map((op) => ({ weight: op.body === undefined ? 1 : 2, arbitrary: fc.constant(op) }))
  return fc.oneof(...weighted).chain((op) =>
    fc
      .record({
        params: fc.tuple(...op.pathParams.map(() => idText)),
        query: fc.tuple(...op.query.map((q) => fc.option(queryValue(q.schema), { freq: 3 }))),
        extraQuery: fc.option(fc.tuple(hostileString, hostileString)),
        token: fc.oneof(
          { weight: 4, arbitrary: fc.constant(TestServer.tokens.root) },
          { weight: 4, arbitrary: fc.constantFrom(...tokens) },
          { weight: 1, arbitrary: fc.constantFrom(undefined, "nope", "a.b.c", "x".repeat(5_000)) }
        ),
        body:
          op.method === "GET"
            ? fc.constant(undefined)
            : fc.oneof({ weight: 9, arbitrary: bodyText(op.body) }, { weight: 1, arbitrary: fc.constant(undefined) }),
        contentType: fc.oneof(
          { weight: 8, arbitrary: fc.constant("application/json") },
          { weight: 1, arbitrary: fc.constantFrom(undefined, "text/plain", "application/json; charset=utf-16") }
        )
      })
      .map(({ params, query, extraQuery, token, body, contentType }): Request => {
        let i = 0
        const path = op.path.replace(/\{[^}]+\}/g, () => params[i++] as string)
        const pairs: Array<string> = []
        op.query.forEach((q, j) => {
          const value = query[j]
          if (value !== null && value !== undefined) pairs.push(`${q.name}=${encodeSegment(value)}`)
        })
        if (extraQuery !== null) pairs.push(`${encodeSegment(extraQuery[0])}=${encodeSegment(extraQuery[1])}`)
        return {
          method: op.method,
          url: pairs.length === 0 ? path : `${path}?${pairs.join("&")}`,
          token,
          contentType: body === undefined ? undefined : contentType,
          body
        }
      })
  )
}

// ---- the suite ---------------------------------------------------------------------------------------------------

const suite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(securityLayer(services), { excludeTestServices: true, timeout: "300 seconds" })(name, (it) => {
    it.effect(`${runs} hostile requests from the OpenAPI schemas: no 5xx, no error text, the ledger verifies`, () =>
      Effect.gen(function* () {
        const server = yield* HttpServer.HttpServer
        const address = server.address
        if (address._tag === "UnixPathAddress") throw new Error("expected a TCP server")
        const base = `http://127.0.0.1:${address.port}`
        // Real ids for the generator to aim at: a task, its plan, a job, an entry hash, an agent
        const taskId = yield* startTransfer()
        const detail = yield* TestServer.call("GET", `/task/${taskId}`, { token: TestServer.tokens.carol })
        const job = yield* TestServer.call("POST", "/queue/jobs", {
          token: TestServer.tokens.root,
          body: { queue: "tenant.fuzz", payload: { n: 1 } }
        })
        const audit = yield* TestServer.call("GET", `/audit/${taskId}`, { token: TestServer.tokens.carol })
        const known = {
          task: taskId,
          plan: String(detail.body.plan_id),
          job: String(job.body.job_id),
          entry: String(audit.body.entries[0].entry_hash)
        }

        const failures: Array<string> = []
        const statuses = new Map<number, number>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(requestArb(known), async (request) => {
              const headers: Record<string, string> = {}
              if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`
              if (request.contentType !== undefined) headers["content-type"] = request.contentType
              const response = await fetch(`${base}${request.url}`, {
                method: request.method,
                headers,
                ...(request.body === undefined ? {} : { body: request.body })
              })
              const text = await response.text()
              statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
              const problem =
                response.status >= 500
                  ? `status ${response.status}`
                  : leak.test(text)
                    ? "error text in the response"
                    : undefined
              if (problem !== undefined) {
                failures.push(`${problem}: ${request.method} ${request.url.slice(0, 200)} → ${text.slice(0, 300)}`)
              }
              return problem === undefined
            }),
            { numRuns: runs, endOnFailure: true }
          )
        ).pipe(
          Effect.catchDefect((defect) =>
            Effect.sync(() => assert.fail(`${String(defect).slice(0, 2_000)}\n${failures.slice(0, 5).join("\n")}`))
          )
        )
        assert.deepStrictEqual(failures, [])
        // The requests did reach the handlers: most were answered, not all refused at the door
        assert.isAbove(statuses.get(200) ?? 0, runs / 20, JSON.stringify([...statuses]))

        // The ledger still verifies: an entry over HTTP, and the whole chain from inside
        const after = yield* TestServer.call("GET", `/audit/${taskId}`, { token: TestServer.tokens.carol })
        assert.strictEqual(after.status, 200, after.text)
        const last = after.body.entries[after.body.entries.length - 1]
        const verified = yield* TestServer.call("GET", `/verify/${last.entry_hash}`, { token: TestServer.tokens.carol })
        assert.strictEqual(verified.status, 200, verified.text)
        assert.isTrue(verified.body.verified)
        const report = yield* (yield* Ledger).verifyAll()
        assert.isTrue(report.valid, JSON.stringify(report))
      })
    )
  })

describe("security: hostile input from the OpenAPI schemas", () => {
  suite("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    suite("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    suite("redis", TestRedis.services())
  })
})
