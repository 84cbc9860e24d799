/**
 * The security suites' server: the test server (`TestServer`) with JWTs accepted besides the test API keys, and
 * the core services left in context, so a test can check the ledger from inside after attacking it over HTTP.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect, Layer, Redacted, References } from "effect"
import * as Jose from "jose"
import { Authenticator } from "../../src/http/Auth.ts"
import * as Server from "../../src/Server.ts"
import type * as Stores from "../../src/Stores.ts"
import * as TestServer from "../utils/TestServer.ts"

export const jwtSecret = "trust-edge-test-secret-of-at-least-32-characters"

/** The longest a JWT may live on the security suites' server. */
export const jwtMaxLifetime = Duration.hours(1)

/** An HS256 JWT for the suites' server; `exp`/`iat` in seconds since the epoch (omitted when undefined). */
export const jwt = (
  claims: { readonly sub: string; readonly roles: ReadonlyArray<string> },
  times: { exp?: number; iat?: number }
) =>
  Effect.promise(() => {
    let token = new Jose.SignJWT({ ...claims }).setProtectedHeader({ alg: "HS256" })
    if (times.exp !== undefined) token = token.setExpirationTime(times.exp)
    if (times.iat !== undefined) token = token.setIssuedAt(times.iat)
    return token.sign(new TextEncoder().encode(jwtSecret))
  })

/** The server over `services` on an ephemeral port; the services stay in context for the test. */
export const layer = <E>(
  services: Layer.Layer<Stores.Services | Stores.Readiness, E>,
  options?: { readonly maxBodyBytes?: number }
) =>
  Server.layerApp({
    console: false,
    maxBodyBytes: options?.maxBodyBytes ?? 64 * 1024,
    rateLimit: { limit: 1_000_000, window: Duration.minutes(1) }
  }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        Authenticator.layer({ apiKeys: TestServer.keys, jwtSecret: Redacted.make(jwtSecret), jwtMaxLifetime }),
        services
      )
    ),
    Layer.provide(Layer.succeed(References.MinimumLogLevel, "Error")),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

/** Text a response must never carry: runtime error names, stack frames, driver messages. */
export const leak =
  /RangeError|TypeError|ReferenceError|SyntaxError|Maximum call stack|SqlError|PgConnection|ECONNREFUSED|\bat [^ ]+\.(ts|js):\d+/

/** Alice's transfer, started over HTTP; its task id. */
export const startTransfer = (amount = 2_500) =>
  Effect.map(
    TestServer.call("POST", "/task/start", {
      token: TestServer.tokens.alice,
      body: { task_type: "transfer_funds", parameters: { from: TestServer.walletA, to: TestServer.walletB, amount } }
    }),
    (reply) => {
      if (reply.status !== 200) throw new Error(`start: ${reply.status} ${reply.text}`)
      return reply.body.task_id as string
    }
  )

/** JSON text nested `depth` arrays deep around `inner` (built as text: no recursion anywhere). */
export const nestedArrays = (depth: number, inner = "0") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`

/** JSON text nested `depth` objects deep, each under key `k`. */
export const nestedObjects = (depth: number, inner = "0") => `${'{"k":'.repeat(depth)}${inner}${"}".repeat(depth)}`
