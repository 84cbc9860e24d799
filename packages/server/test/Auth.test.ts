import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted } from "effect"
import { TestClock } from "effect/testing"
import * as Jose from "jose"
import { Unauthorized } from "../src/api/Errors.ts"
import { Authenticator, developmentKeys, parseApiKeys, principalOfToken } from "../src/http/Auth.ts"
import * as Server from "../src/Server.ts"
import * as TestServer from "./utils/TestServer.ts"

const secret = "a-test-secret-of-at-least-32-characters!"

const hs256 = (claims: Record<string, unknown>, options?: { exp?: number; nbf?: number; key?: string }) =>
  Effect.promise(() => {
    let jwt = new Jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" })
    if (options?.exp !== undefined) jwt = jwt.setExpirationTime(options.exp)
    if (options?.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf)
    return jwt.sign(new TextEncoder().encode(options?.key ?? secret))
  })

const authenticate = (token: string) => Authenticator.use((a) => a.authenticate(token))

describe("API keys", () => {
  it.effect("parse `token:role+role,token:role`; the principal is the token's part before a dot", () =>
    Effect.gen(function* () {
      const keys = yield* parseApiKeys("alice.s3cret-1:submitter, bob.s3cret-2:approver+auditor,plainsecrettoken:agent")
      assert.deepStrictEqual(
        keys.map((k): [string, ReadonlyArray<string>] => [k.principal.id, k.principal.roles]),
        [
          ["alice", ["submitter"]],
          ["bob", ["approver", "auditor"]],
          [principalOfToken("plainsecrettoken"), ["agent"]]
        ]
      )
      // A token without a dot never lands in the audit log as its own principal id
      assert.match(principalOfToken("plainsecrettoken"), /^key-[0-9a-f]{12}$/)
      assert.strictEqual(String(keys[0]!.token), "<redacted>")
    })
  )

  it.effect("refuse unknown roles, short tokens and empty lists, saying which entry", () =>
    Effect.gen(function* () {
      const role = yield* Effect.flip(parseApiKeys("alice.s3cret-1:submitter,bob.s3cret-2:root"))
      assert.match(role.message, /entry 2: unknown role/)
      const short = yield* Effect.flip(parseApiKeys("abc:admin"))
      assert.match(short.message, /at least 8/)
      const missing = yield* Effect.flip(parseApiKeys("alice.s3cret-1"))
      assert.match(missing.message, /entry 1/)
      assert.match((yield* Effect.flip(parseApiKeys(" , "))).message, /names no key/)
    })
  )

  it.effect("authenticate by exact token only", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* authenticate("alice.s3cret-1")).id, "alice")
      assert.strictEqual((yield* Effect.flip(authenticate("alice.s3cret-2"))).error, "unauthorized")
      assert.match((yield* Effect.flip(authenticate(""))).message, /Missing bearer token/)
    }).pipe(
      Effect.provide(
        Layer.unwrap(
          Effect.map(parseApiKeys("alice.s3cret-1:submitter"), (apiKeys) => Authenticator.layer({ apiKeys }))
        )
      )
    )
  )
})

describe("JWT", () => {
  it.effect("HS256: sub is the principal, roles the roles; exp and nbf are checked against Clock", () =>
    Effect.gen(function* () {
      // TestClock starts at the epoch: exp 60 means one minute from "now"
      const token = yield* hs256({ sub: "erin", roles: ["approver", "auditor"] }, { exp: 60 })
      const principal = yield* authenticate(token)
      assert.deepStrictEqual([principal.id, principal.roles], ["erin", ["approver", "auditor"]])
      yield* TestClock.adjust("2 minutes")
      assert.match((yield* Effect.flip(authenticate(token))).message, /expired/)
      const early = yield* hs256({ sub: "erin", roles: ["auditor"] }, { nbf: 3_600 })
      assert.match((yield* Effect.flip(authenticate(early))).message, /nbf/)
    }).pipe(Effect.provide(Authenticator.layer({ jwtSecret: Redacted.make(secret) })))
  )

  it.effect(
    "a verified token is remembered only until its exp: the second before it passes, at exp it is refused",
    () =>
      Effect.gen(function* () {
        const token = yield* hs256({ sub: "erin", roles: ["auditor"] }, { exp: 60 })
        assert.strictEqual((yield* authenticate(token)).id, "erin")
        yield* TestClock.adjust("59999 millis")
        assert.strictEqual((yield* authenticate(token)).id, "erin")
        yield* TestClock.adjust("1 millis")
        assert.match((yield* Effect.flip(authenticate(token))).message, /expired/)
        // and stays refused (the entry is gone, not revived)
        yield* TestClock.adjust("1 minute")
        assert.match((yield* Effect.flip(authenticate(token))).message, /expired/)
      }).pipe(Effect.provide(Authenticator.layer({ jwtSecret: Redacted.make(secret) })))
  )

  it.effect("a remembered token lends nothing to another: one altered byte, or another principal's token", () =>
    Effect.gen(function* () {
      const erin = yield* hs256({ sub: "erin", roles: ["auditor"] }, { exp: 600 })
      const frank = yield* hs256({ sub: "frank", roles: ["submitter"] }, { exp: 600 })
      assert.strictEqual((yield* authenticate(erin)).id, "erin")
      // The same header and claims with one signature character changed
      const at = erin.length - 10
      const altered = `${erin.slice(0, at)}${erin[at] === "A" ? "B" : "A"}${erin.slice(at + 1)}`
      assert.match((yield* Effect.flip(authenticate(altered))).message, /does not verify/)
      // Claims swapped onto the cached token's signature
      const [, body] = frank.split(".")
      const [head, , signature] = erin.split(".")
      assert.match((yield* Effect.flip(authenticate(`${head}.${body}.${signature}`))).message, /does not verify/)
      const principal = yield* authenticate(frank)
      assert.deepStrictEqual([principal.id, principal.roles], ["frank", ["submitter"]])
      assert.strictEqual((yield* authenticate(erin)).id, "erin")
    }).pipe(Effect.provide(Authenticator.layer({ jwtSecret: Redacted.make(secret) })))
  )

  it.effect("refuses a wrong key, a missing sub, unknown roles, and a mismatched issuer or audience", () =>
    Effect.gen(function* () {
      const forged = yield* hs256({ sub: "erin", roles: ["admin"] }, { key: "another-secret-of-at-least-32-chars!!" })
      assert.match((yield* Effect.flip(authenticate(forged))).message, /does not verify/)
      const noSub = yield* hs256({ roles: ["admin"], iss: "mandate", aud: "api" }, { exp: 600 })
      assert.match((yield* Effect.flip(authenticate(noSub))).message, /claims are not valid: \$\.sub/)
      const badRole = yield* hs256({ sub: "erin", roles: ["root"], iss: "mandate", aud: "api" }, { exp: 600 })
      assert.match((yield* Effect.flip(authenticate(badRole))).message, /\$\.roles\[0\]/)
      const otherIssuer = yield* hs256({ sub: "erin", roles: ["auditor"], iss: "evil", aud: "api" }, { exp: 600 })
      assert.match((yield* Effect.flip(authenticate(otherIssuer))).message, /iss/)
      const good = yield* hs256({ sub: "erin", roles: ["auditor"], iss: "mandate", aud: "api" }, { exp: 600 })
      assert.strictEqual((yield* authenticate(good)).id, "erin")
    }).pipe(
      Effect.provide(
        Authenticator.layer({ jwtSecret: Redacted.make(secret), jwtIssuer: "mandate", jwtAudience: "api" })
      )
    )
  )

  it.effect("EdDSA: verified with the configured Ed25519 public key", () =>
    Effect.gen(function* () {
      const { privateKey, publicKey } = NodeCrypto.generateKeyPairSync("ed25519")
      const pem = publicKey.export({ type: "spki", format: "pem" }).toString()
      const sign = (key: NodeCrypto.KeyObject) =>
        Effect.promise(() =>
          new Jose.SignJWT({ sub: "frank", roles: ["agent"] })
            .setProtectedHeader({ alg: "EdDSA" })
            .setExpirationTime(600)
            .sign(key)
        )
      const check = (token: string) =>
        Authenticator.use((a) => a.authenticate(token)).pipe(Effect.provide(Authenticator.layer({ jwtPublicKey: pem })))
      assert.strictEqual((yield* check(yield* sign(privateKey))).id, "frank")
      const other = NodeCrypto.generateKeyPairSync("ed25519").privateKey
      assert.instanceOf(yield* Effect.flip(check(yield* sign(other))), Unauthorized)
      // An HS256 token is refused by an EdDSA server (no algorithm confusion)
      assert.instanceOf(yield* Effect.flip(check(yield* hs256({ sub: "x", roles: ["admin"] }))), Unauthorized)
      const notAKey = yield* Effect.flip(
        Authenticator.use(() => Effect.void).pipe(Effect.provide(Authenticator.layer({ jwtPublicKey: "not a key" })))
      )
      assert.strictEqual(notAKey._tag, "AuthConfigError")
    })
  )
})

describe("development mode", () => {
  it.effect("generates one key per role, writes them to a 0600 file, and they authenticate", () =>
    Effect.gen(function* () {
      const file = NodePath.join(NodeOs.tmpdir(), `mandate-${crypto.randomUUID()}`, "dev.env")
      const keys = yield* developmentKeys(file)
      assert.deepStrictEqual(
        keys.map((k) => k.principal.id),
        ["submitter", "approver", "auditor", "agent", "admin"]
      )
      const text = NodeFs.readFileSync(file, "utf8")
      assert.strictEqual(NodeFs.statSync(file).mode & 0o777, 0o600)
      for (const key of keys) assert.include(text, `=${Redacted.value(key.token)}`)
      const again = yield* developmentKeys(file)
      assert.notStrictEqual(Redacted.value(again[0]!.token), Redacted.value(keys[0]!.token))
      const principal = yield* Authenticator.use((a) => a.authenticate(Redacted.value(keys[1]!.token))).pipe(
        Effect.provide(Authenticator.layer({ apiKeys: keys }))
      )
      assert.deepStrictEqual(principal.roles, ["approver"])
      NodeFs.rmSync(NodePath.dirname(file), { recursive: true })
    })
  )
})

// A server whose bearer tokens are JWTs, with a budget of 3 requests per minute per principal
const jwtServer = Server.layerApp({ maxBodyBytes: 4096, rateLimit: { limit: 3, window: Duration.minutes(1) } }).pipe(
  Layer.provide(Layer.mergeAll(Authenticator.layer({ jwtSecret: Redacted.make(secret) }), TestServer.memoryServices())),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

layer(jwtServer, { excludeTestServices: true })("over HTTP", (it) => {
  it.effect("a JWT authenticates; past the budget a principal gets 429 with Retry-After, others do not", () =>
    Effect.gen(function* () {
      const erin = yield* hs256({ sub: "erin", roles: ["auditor"] }, { exp: Math.floor(Date.now() / 1000) + 600 })
      const gus = yield* hs256({ sub: "gus", roles: ["submitter"] }, { exp: Math.floor(Date.now() / 1000) + 600 })
      const whoami = yield* TestServer.call("GET", "/whoami", { token: erin })
      assert.strictEqual(whoami.status, 200, whoami.text)
      assert.deepStrictEqual(whoami.body, { id: "erin", roles: ["auditor"] })
      assert.strictEqual((yield* TestServer.call("GET", "/tasks", { token: erin })).status, 200)
      assert.strictEqual((yield* TestServer.call("GET", "/policy", { token: erin })).status, 200)
      const limited = yield* TestServer.call("GET", "/tasks", { token: erin })
      assert.strictEqual(limited.status, 429, limited.text)
      assert.strictEqual(limited.body.error, "rate_limited")
      const retryAfter = Number(limited.headers["retry-after"])
      assert.isTrue(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, String(retryAfter))
      assert.strictEqual(limited.body.retry_after, retryAfter)
      assert.strictEqual((yield* TestServer.call("GET", "/whoami", { token: gus })).status, 200)
      // Credentials are checked before the budget: a bad token is 401, not 429
      assert.strictEqual((yield* TestServer.call("GET", "/tasks", { token: `${erin}x` })).status, 401)
    })
  )
})

// The keys' authenticator, counting its calls
let verifications = 0
const countingAuthenticator = Layer.effect(
  Authenticator,
  Effect.gen(function* () {
    const inner = yield* Authenticator
    return Authenticator.of({
      authenticate: (token) => {
        verifications++
        return inner.authenticate(token)
      }
    })
  })
).pipe(Layer.provide(Authenticator.layer({ apiKeys: TestServer.keys })))

const countingServer = Server.layerApp({
  console: false,
  rateLimit: { limit: 1_000, window: Duration.minutes(1) }
}).pipe(
  Layer.provide(Layer.mergeAll(countingAuthenticator, TestServer.memoryServices())),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

layer(countingServer, { excludeTestServices: true })("one verification per request", (it) => {
  it.effect("a body route's token is verified once (before its body is read), not again by the middleware", () =>
    Effect.gen(function* () {
      verifications = 0
      const started = yield* TestServer.call("POST", "/task/start", {
        token: TestServer.tokens.alice,
        body: { task_type: "monitoring", parameters: { wallet: TestServer.walletA } }
      })
      assert.strictEqual(started.status, 200, started.text)
      assert.strictEqual(verifications, 1)
      verifications = 0
      assert.strictEqual((yield* TestServer.call("GET", "/whoami", { token: TestServer.tokens.alice })).status, 200)
      assert.strictEqual(verifications, 1)
      // A bad token is refused by the first check, and a good one for the wrong role still gets 403
      verifications = 0
      const refused = yield* TestServer.call("POST", "/task/start", {
        token: `${TestServer.tokens.alice}x`,
        body: { task_type: "monitoring", parameters: { wallet: TestServer.walletA } }
      })
      assert.strictEqual(refused.status, 401, refused.text)
      assert.strictEqual(verifications, 1)
      const forbidden = yield* TestServer.call("POST", "/task/start", {
        token: TestServer.tokens.carol,
        body: { task_type: "monitoring", parameters: { wallet: TestServer.walletA } }
      })
      assert.strictEqual(forbidden.status, 403, forbidden.text)
    })
  )
})
