/**
 * Authentication, authorization and rate limiting, behind the `Auth` middleware of the API:
 *
 * - `Authenticator` turns a bearer token into a principal: a static API key (`MANDATE_API_KEYS`,
 *   `token:role+role,…`, the principal being the token's part before its first `.`), or a JWT verified with
 *   `jose` (HS256 with `MANDATE_JWT_SECRET`, EdDSA with `MANDATE_JWT_PUBLIC_KEY`; `sub` is the principal, `roles`
 *   its roles; `exp` required and checked against `Clock` with `nbf`, the lifetime capped by `jwtMaxLifetime`).
 *   With neither configured, development mode generates one
 *   key per role, announces it and prints the keys once.
 * - `Auth` checks the endpoint's `RequiredRoles` (admins pass every check), then the caller's rate limit.
 * - The rate limit is a token bucket per principal: core's `RateLimit` (memory, or Redis across servers).
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { decode, fromSchemaError, Principal, RateLimit } from "@mandate/core"
import { Clock, Console, Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { HttpServerResponse } from "effect/http"
import { HttpApiError } from "effect/http-api"
import * as Jose from "jose"
import { Auth, CurrentPrincipal, RequestErrors, RequiredRoles } from "../api/Auth.ts"
import { BadRequest, Forbidden, PayloadTooLarge, TooManyRequests, Unauthorized } from "../api/Errors.ts"
import { badRequest } from "./Errors.ts"
import { RequestInfo } from "./Requests.ts"

// ---- static API keys ---------------------------------------------------------------------------------------

/**
 * A static API key: the secret token and the principal it stands for.
 *
 * @category models
 * @since 0.1.0
 */
export interface ApiKey {
  readonly token: Redacted.Redacted
  readonly principal: Principal.Principal
}

/**
 * The configuration is wrong (a malformed key list, an unreadable public key).
 *
 * @category errors
 * @since 0.1.0
 */
export class AuthConfigError extends Schema.TaggedError<AuthConfigError>()("AuthConfigError", {
  message: Schema.String
}) {}

// One-shot: a third of `createHash(…).update(…).digest(…)`'s cost, and it runs on every request
const sha256 = (text: string) => NodeCrypto.hash("sha256", text, "hex")

/**
 * The principal id of a token: its part before the first `.` (`alice.s3cret` → `alice`); a token without a `.`
 * gets `key-` and the first 12 hex digits of its SHA-256, so the secret never lands in the audit log.
 *
 * @category constructors
 * @since 0.1.0
 */
export const principalOfToken = (token: string): string => {
  const dot = token.indexOf(".")
  return dot > 0 ? token.slice(0, dot) : `key-${sha256(token).slice(0, 12)}`
}

/**
 * Parses `MANDATE_API_KEYS`: `token:role+role,token:role`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const parseApiKeys = (text: string): Effect.Effect<ReadonlyArray<ApiKey>, AuthConfigError> =>
  Effect.gen(function* () {
    const keys: Array<ApiKey> = []
    const entries = text
      .split(",")
      .map((e) => e.trim())
      .filter((e) => e.length > 0)
    for (const [i, entry] of entries.entries()) {
      const colon = entry.lastIndexOf(":")
      const token = colon > 0 ? entry.slice(0, colon).trim() : ""
      const roles =
        colon > 0
          ? entry
              .slice(colon + 1)
              .split("+")
              .map((r) => r.trim())
          : []
      const fail = (why: string) =>
        new AuthConfigError({ message: `MANDATE_API_KEYS entry ${i + 1}: ${why} (expected token:role+role)` })
      if (token.length < 8) return yield* fail("the token must have at least 8 characters")
      if (/\s/.test(token)) return yield* fail("the token must not contain whitespace")
      const decoded = Schema.decodeUnknownOption(Schema.NonEmptyArray(Principal.Role))(roles)
      if (Option.isNone(decoded)) {
        return yield* fail(`unknown role in "${roles.join("+")}" (roles: ${Principal.Role.literals.join(", ")})`)
      }
      keys.push({ token: Redacted.make(token), principal: Principal.make(principalOfToken(token), decoded.value) })
    }
    if (keys.length === 0) return yield* new AuthConfigError({ message: "MANDATE_API_KEYS names no key" })
    return keys
  })

// ---- the authenticator -------------------------------------------------------------------------------------

/**
 * How tokens are verified.
 *
 * @category models
 * @since 0.1.0
 */
export interface AuthOptions {
  readonly apiKeys?: ReadonlyArray<ApiKey> | undefined
  /** HS256 secret. */
  readonly jwtSecret?: Redacted.Redacted | undefined
  /** EdDSA (Ed25519) public key, SPKI PEM. */
  readonly jwtPublicKey?: string | undefined
  readonly jwtIssuer?: string | undefined
  readonly jwtAudience?: string | undefined
  /**
   * The longest a JWT may live (default 1 day): `exp − iat`, or `exp − now` for a token without `iat` (or with an
   * `iat` in the future). A token without `exp` never expires, so it is refused.
   */
  readonly jwtMaxLifetime?: Duration.Duration | undefined
}

/**
 * Turns a bearer token into the principal it stands for.
 *
 * @category services
 * @since 0.1.0
 */
export class Authenticator extends Context.Service<
  Authenticator,
  { readonly authenticate: (token: string) => Effect.Effect<Principal.Principal, Unauthorized> }
>()("@mandate/server/Authenticator") {
  /**
   * An authenticator over API keys and/or a JWT key.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = (options: AuthOptions): Layer.Layer<Authenticator, AuthConfigError> =>
    Layer.effect(Authenticator, make(options))
}

const Claims = Schema.Struct({
  sub: Principal.ExternalPrincipalId,
  roles: Schema.Array(Principal.Role)
})
const decodeClaims = decode(Claims)

const unauthorized = (message: string) => new Unauthorized({ message })

// Verified JWTs remembered at most (one per client that is active at once is plenty)
const verifiedCacheSize = 10_000

// A JWT that verified: whom it stands for, and the seconds (`nbf`, `exp`) between which it is valid
interface VerifiedJwt {
  readonly principal: Principal.Principal
  readonly notBefore: number
  readonly expires: number
}

const make = Effect.fnUntraced(function* (options: AuthOptions) {
  // Keys are looked up by the SHA-256 of the token: the map never compares secrets character by character
  const keys = new Map<string, Principal.Principal>()
  for (const key of options.apiKeys ?? []) keys.set(sha256(Redacted.value(key.token)), key.principal)
  if (options.jwtSecret !== undefined && options.jwtPublicKey !== undefined) {
    return yield* new AuthConfigError({ message: "Set MANDATE_JWT_SECRET or MANDATE_JWT_PUBLIC_KEY, not both" })
  }
  const jwtKey: Option.Option<{ readonly key: Jose.CryptoKey | Uint8Array; readonly alg: string }> =
    options.jwtSecret !== undefined
      ? Option.some({ key: new TextEncoder().encode(Redacted.value(options.jwtSecret)), alg: "HS256" })
      : options.jwtPublicKey !== undefined
        ? Option.some({
            key: yield* Effect.tryPromise({
              try: () => Jose.importSPKI(options.jwtPublicKey!, "EdDSA"),
              catch: (e) =>
                new AuthConfigError({ message: `MANDATE_JWT_PUBLIC_KEY is not an Ed25519 SPKI PEM key: ${String(e)}` })
            }),
            alg: "EdDSA"
          })
        : Option.none()
  if (Option.isSome(jwtKey) && options.jwtSecret !== undefined && Redacted.value(options.jwtSecret).length < 32) {
    return yield* new AuthConfigError({ message: "MANDATE_JWT_SECRET must have at least 32 characters" })
  }

  const verifyJwt = (token: string) =>
    Effect.gen(function* () {
      if (Option.isNone(jwtKey)) return yield* unauthorized("Unknown token")
      const now = yield* Clock.currentTimeMillis
      const { payload } = yield* Effect.tryPromise({
        try: () =>
          Jose.jwtVerify(token, jwtKey.value.key, {
            algorithms: [jwtKey.value.alg],
            currentDate: new Date(now),
            ...(options.jwtIssuer === undefined ? {} : { issuer: options.jwtIssuer }),
            ...(options.jwtAudience === undefined ? {} : { audience: options.jwtAudience })
          }),
        catch: (e) =>
          unauthorized(
            e instanceof Jose.errors.JWTExpired
              ? "The token has expired"
              : e instanceof Jose.errors.JWTClaimValidationFailed
                ? `The token's ${e.claim} claim is not valid: ${e.reason}`
                : "The token does not verify"
          )
      })
      if (typeof payload.exp !== "number") {
        return yield* unauthorized("The token has no exp claim: tokens must expire")
      }
      const maxLifetime = options.jwtMaxLifetime ?? Duration.days(1)
      const nowSeconds = Math.floor(now / 1000)
      const issuedAt = typeof payload.iat === "number" ? Math.min(payload.iat, nowSeconds) : nowSeconds
      if (payload.exp - issuedAt > Duration.toSeconds(maxLifetime)) {
        return yield* unauthorized(
          `The token lives longer than the maximum of ${Duration.format(maxLifetime)} (exp − iat); issue shorter-lived tokens`
        )
      }
      const claims = yield* decodeClaims(payload).pipe(
        Effect.mapError((e) => unauthorized(`The token's claims are not valid: ${e.path} ${e.message}`))
      )
      const principal = Principal.make(claims.sub, claims.roles)
      remember(token, {
        principal,
        notBefore: typeof payload.nbf === "number" ? payload.nbf : Number.NEGATIVE_INFINITY,
        expires: payload.exp
      })
      return principal
    })

  // Tokens that verified, by the whole token (signature included, so a token altered in any byte misses), until
  // their `exp`: a client sends the same JWT with every request, and verifying it costs more than the rest of a
  // small request. What can change for a verified token is time alone: a hit is checked against `exp` and `nbf`
  // as jose checks them (seconds, no tolerance), and an expired entry is dropped. Bounded: the oldest goes first.
  const verified = new Map<string, VerifiedJwt>()
  const remember = (token: string, entry: VerifiedJwt) => {
    if (verified.size >= verifiedCacheSize) verified.delete(verified.keys().next().value!)
    verified.set(token, entry)
  }
  const cachedJwt = (token: string, nowMillis: number): Principal.Principal | undefined => {
    const entry = verified.get(token)
    if (entry === undefined) return undefined
    const now = Math.floor(nowMillis / 1000)
    if (now >= entry.expires) {
      verified.delete(token)
      return undefined
    }
    return now >= entry.notBefore ? entry.principal : undefined
  }

  return Authenticator.of({
    authenticate: (token) => {
      if (token.length === 0) return Effect.fail(unauthorized("Missing bearer token (Authorization: Bearer <token>)"))
      const principal = keys.get(sha256(token))
      if (principal !== undefined) return Effect.succeed(principal)
      if (Option.isNone(jwtKey) || token.split(".").length !== 3) return Effect.fail(unauthorized("Unknown token"))
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const cached = cachedJwt(token, now)
        return cached !== undefined ? Effect.succeed(cached) : verifyJwt(token)
      })
    }
  })
})

/**
 * Writes `text` to `path` readable by the owner only, without following links: a new file is created beside it
 * (`O_EXCL`, mode 0600, never an existing file or link), then renamed over `path`. A symlink planted at `path`
 * is replaced, not written through.
 *
 * @category constructors
 * @since 0.1.0
 */
export const writePrivateFile = (path: string, text: string): void => {
  const target = NodePath.resolve(path)
  const dir = NodePath.dirname(target)
  NodeFs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const temp = NodePath.join(dir, `.${NodePath.basename(target)}.${NodeCrypto.randomBytes(6).toString("hex")}.tmp`)
  const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = NodeFs.constants
  const fd = NodeFs.openSync(temp, O_WRONLY | O_CREAT | O_EXCL | (O_NOFOLLOW ?? 0), 0o600)
  try {
    NodeFs.writeSync(fd, text)
    NodeFs.fsyncSync(fd)
  } finally {
    NodeFs.closeSync(fd)
  }
  try {
    NodeFs.renameSync(temp, target)
  } catch (error) {
    NodeFs.rmSync(temp, { force: true })
    throw error
  }
}

/**
 * Development mode: one fresh key per role, principal = the role's name. The keys are announced on stderr and
 * written to `file` (mode 0600) as shell `export` lines, so a shell can `source` them; they die with the process.
 *
 * @category constructors
 * @since 0.1.0
 */
export const developmentKeys = (file: string): Effect.Effect<ReadonlyArray<ApiKey>> =>
  Effect.gen(function* () {
    const keys = Principal.Role.literals.map(
      (role): ApiKey => ({
        token: Redacted.make(`${role}.${NodeCrypto.randomBytes(18).toString("base64url")}`),
        principal: Principal.make(role, [role])
      })
    )
    const lines = keys.map((k) => `export MANDATE_TOKEN_${k.principal.id.toUpperCase()}=${Redacted.value(k.token)}`)
    const written = yield* Effect.try(() => writePrivateFile(file, `${lines.join("\n")}\n`)).pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
    yield* Console.error(
      [
        "",
        "  ┌─ DEVELOPMENT MODE ───────────────────────────────────────────────────────────────────",
        "  │ No MANDATE_API_KEYS, MANDATE_JWT_SECRET or MANDATE_JWT_PUBLIC_KEY is set, so these",
        "  │ tokens were generated, one per role. They are shown once and die with this process.",
        "  │ Never run development mode where others can reach it.",
        "  │",
        ...lines.map((l) => `  │   ${l}`),
        "  │",
        written ? `  │ Also written to ${file} (mode 0600): source it in a shell.` : `  │ (Could not write ${file}.)`,
        "  └──────────────────────────────────────────────────────────────────────────────────────",
        ""
      ].join("\n")
    )
    return keys
  })

// ---- the middleware --------------------------------------------------------------------------------------

/**
 * The per-principal request budget: `limit` requests per `window`, a token bucket (core `RateLimit`).
 *
 * @category models
 * @since 0.1.0
 */
export interface RateLimitOptions {
  readonly limit: number
  readonly window: Duration.Duration
}

/**
 * The `Auth` middleware over `Authenticator` and core's `RateLimit` (memory, or Redis: one budget across
 * servers). A limiter store that fails lets the request through (and says so in the log): the limit protects
 * the service, it must not take it down.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAuth = (rateLimit: RateLimitOptions): Layer.Layer<Auth, never, Authenticator | RateLimit> =>
  Layer.effect(
    Auth,
    Effect.gen(function* () {
      const authenticator = yield* Authenticator
      const limiter = yield* RateLimit
      const consume = (principalId: string) =>
        limiter.consume({ subject: principalId, limit: rateLimit.limit, window: rateLimit.window }).pipe(
          Effect.asVoid,
          Effect.catchTag("RateLimited", (e) =>
            Effect.fail(
              new TooManyRequests({
                message: `Rate limit of ${rateLimit.limit} requests per ${Duration.format(rateLimit.window)} exceeded`,
                retry_after: Math.max(1, Math.ceil(e.retryAfterMillis / 1000))
              })
            )
          ),
          Effect.catchTag(["RateLimitStoreError", "InvalidInput"], (e) =>
            Effect.logWarning("rate limiter unavailable; request let through", e)
          )
        )
      // Combinators rather than a generator: this runs on every authenticated request
      const authorized = (
        principal: Principal.Principal,
        info: Option.Option<RequestInfo["Service"]>,
        endpoint: { readonly method: string; readonly path: string; readonly annotations: Context.Context<never> }
      ): Effect.Effect<void, Forbidden | TooManyRequests> => {
        if (Option.isSome(info)) info.value.principal = principal.id
        const roles = Context.get(endpoint.annotations, RequiredRoles)
        if (!Principal.hasRole(principal, "admin") && !roles.some((role) => principal.roles.includes(role))) {
          return Effect.fail(
            new Forbidden({
              message:
                roles.length === 0
                  ? `${endpoint.method} ${endpoint.path} is for admins only`
                  : `${endpoint.method} ${endpoint.path} needs the role ${roles.join(" or ")}; ${principal.id} has ${principal.roles.join(", ") || "none"}`,
              principal: principal.id
            })
          )
        }
        return consume(principal.id)
      }
      return Auth.of({
        bearer: (httpEffect, { credential, endpoint }) =>
          Effect.flatMap(Effect.serviceOption(RequestInfo), (info) => {
            const token = Redacted.value(credential)
            const verified = Option.isSome(info) ? info.value.verified : undefined
            const principal =
              verified !== undefined && verified.token === token
                ? Effect.succeed(verified.principal)
                : authenticator.authenticate(token)
            return Effect.flatMap(principal, (principal) =>
              Effect.andThen(
                authorized(principal, info, endpoint),
                Effect.provideService(httpEffect, CurrentPrincipal, principal).pipe(
                  Effect.annotateLogs({ principal: principal.id })
                )
              )
            )
          })
      })
    })
  )

const rootOf = (kind: string): string =>
  kind === "Payload" ? "$" : kind === "Params" ? "$path" : kind === "Query" ? "$query" : `$${kind.toLowerCase()}`

const isBodyTooLarge = (defect: unknown): boolean =>
  (defect as { readonly reason?: { readonly reason?: unknown } } | undefined)?.reason?.reason === "BodyTooLarge"

/**
 * The `RequestErrors` middleware: decoding failures become `BadRequest` (paths under `$` for the body, `$path`
 * and `$query` for the URL), a body over the limit `PayloadTooLarge`. Response encoding failures stay what
 * they are: a bug, answered with a 500.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRequestErrors = (options: { readonly maxBodyBytes: number }): Layer.Layer<RequestErrors> =>
  Layer.succeed(
    RequestErrors,
    RequestErrors.of(
      (httpEffect, { endpoint }) =>
        (httpEffect as Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, never>).pipe(
          // The route template labels metrics and access logs (`/task/:id`, not each task's URL)
          (self) =>
            Effect.andThen(
              Effect.map(Effect.serviceOption(RequestInfo), (info) => {
                if (Option.isSome(info)) info.value.route = endpoint.path
              }),
              self
            ),
          Effect.catchIf(HttpApiError.HttpApiSchemaError.is, (error): Effect.Effect<never, unknown> => {
            if (error.kind === "Body" || error.kind === "ResponseHeaders") return Effect.fail(error)
            const root = rootOf(error.kind)
            // A cause that is not a schema issue (a parser's exception) is logged, never echoed: its text is the
            // runtime's, not a statement about the request
            return Schema.isSchemaError(error.cause)
              ? Effect.fail(badRequest(fromSchemaError(error.cause, root)))
              : Effect.andThen(
                  Effect.logWarning("request did not decode", error.cause),
                  Effect.fail(
                    new BadRequest({
                      message: "The request could not be decoded",
                      path: root,
                      issues: [{ path: root, message: "The request could not be decoded" }]
                    })
                  )
                )
          }),
          Effect.catchDefect((defect) =>
            isBodyTooLarge(defect)
              ? Effect.fail(
                  new PayloadTooLarge({
                    message: `The request body exceeds the limit of ${options.maxBodyBytes} bytes`,
                    limit_bytes: options.maxBodyBytes
                  })
                )
              : Effect.die(defect)
          )
        ) as Effect.Effect<HttpServerResponse.HttpServerResponse, never, never>
    )
  )
