/**
 * The server's configuration, read from the environment (or any `ConfigProvider`) here and nowhere else.
 * Secrets are `Redacted`, so they print as `<redacted>`.
 *
 * | variable | default | meaning |
 * | --- | --- | --- |
 * | `PORT` / `HOST` | `8000` / `127.0.0.1` | where to listen |
 * | `MANDATE_STORE` | `memory` | `memory`, `postgres` or `redis` |
 * | `DATABASE_URL` | | Postgres URL (with `MANDATE_STORE=postgres`) |
 * | `REDIS_URL` | | Redis URL (rate limits; stores with `MANDATE_STORE=redis`) |
 * | `MANDATE_ANCHOR` | `qubic-mock` | `qubic-mock`, `qubic-rpc`, `memory` (in-process, proves nothing) or `none` |
 * | `QUBIC_RPC_URL` | | gateway URL (with `qubic-rpc`) |
 * | `MANDATE_QUBIC_SEED` | mock seed | 55-letter seed of the anchor identity (required with `qubic-rpc`) |
 * | `MANDATE_QUBIC_SIGNER` | `mock` | `mock`, or a module whose default export makes the `Signer` layer from the seed |
 * | `MANDATE_QUBIC_TICK` | `1 second` | tick period of the in-process Qubic mock |
 * | `MANDATE_POLICY_FILE` | seed policy | JSON or YAML policy set |
 * | `MANDATE_API_KEYS` | | `token:role+role,token:role`; principal = the token's part before a `.` |
 * | `MANDATE_JWT_SECRET` / `MANDATE_JWT_PUBLIC_KEY` | | HS256 secret / EdDSA public key (PEM) |
 * | `MANDATE_JWT_ISSUER` / `MANDATE_JWT_AUDIENCE` | | required `iss` / `aud` of JWTs |
 * | `MANDATE_LEDGER_KEY` | kept in the data directory | Ed25519 PKCS#8 PEM signing ledger checkpoints |
 * | `MANDATE_DATA_DIR` | `.mandate` | where a persistent store's ledger keys and the Qubic mock's state are kept |
 * | `MANDATE_ANCHOR_INTERVAL` / `MANDATE_ANCHOR_ENTRIES` | `30 seconds` / `1000` | automatic anchoring |
 * | `MANDATE_RATE_LIMIT` / `MANDATE_RATE_WINDOW` | `600` / `1 minute` | requests per token per window |
 * | `MANDATE_MAX_BODY_BYTES` | `1048576` | largest request body |
 * | `MANDATE_MAX_JSON_DEPTH` | `64` | deepest nesting of objects and arrays in a JSON body (at most 256) |
 * | `MANDATE_MAX_JSON_VALUES` | `100000` | most values (objects, arrays, strings, numbers, literals) in a JSON body |
 * | `MANDATE_JWT_MAX_LIFETIME` | `1 day` | longest a JWT may live (`exp` is required; `exp − iat`, or `exp − now` without `iat`) |
 * | `MANDATE_WORKER_CONCURRENCY` | `16` | steps run at once in this process (`0`: no workers) |
 * | `MANDATE_WORKER_YIELD_OPS` | `64` | the runtime's own fibers (workers) give the event loop back every this many Effect operations (Effect's default: 2048), so requests are not queued behind them |
 * | `MANDATE_REMOTE_STEPS` | | step types run by remote agents, `type:pool,…` (e.g. `onchain_action:signers`) |
 * | `MANDATE_POOL_PRINCIPALS` | | who may serve each remote pool, `pool:principal+principal,…` (none named: admins only) |
 * | `MANDATE_SHUTDOWN_GRACE` | `10 seconds` | how long shutdown waits for requests and steps (event streams end at once) |
 * | `MANDATE_SSE_KEEPALIVE` | `15 seconds` | a `keepalive` event on task event streams this often (`0 seconds`: none) |
 * | `MANDATE_CORS_ORIGINS` | | origins whose pages may call the API (`https://ops.example.com,…` or `*`); CORS is off without it |
 * | `MANDATE_PUBLIC_URL` | `http://HOST:PORT` | the console's address, for links in webhook messages and MCP results |
 * | `MANDATE_WEBHOOKS_FILE` | | JSON file of webhook subscriptions (`[{ url, events, secret }]`) |
 * | `MANDATE_WEBHOOKS` | | the same JSON, inline (both may be given) |
 * | `MANDATE_DEV_TOKENS_FILE` | `.mandate/dev-tokens.env` | where development mode writes its tokens |
 * | `MANDATE_PLANNER` | `templates` | `llm`: `goal` tasks are planned by a language model (`Planner.layerLlm`) |
 * | `MANDATE_LLM_URL` / `MANDATE_LLM_MODEL` / `MANDATE_LLM_API_KEY` | | the OpenAI-compatible endpoint (up to `/v1`), model and key, with `MANDATE_PLANNER=llm` |
 * | `LOG_LEVEL` | `Info` | `Debug`, `Info`, `Warn`, `Error` |
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import { type ConfiguredWebhook, decodeWebhooksConfig, InvalidInput, Webhook } from "@mandate/core"
import { Config, Duration, Effect, type LogLevel, Option, Redacted, Schema, SchemaGetter } from "effect"

/**
 * @category models
 * @since 0.1.0
 */
export type StoreKind = "memory" | "postgres" | "redis"

/**
 * @category models
 * @since 0.1.0
 */
export type AnchorKind = "qubic-mock" | "qubic-rpc" | "memory" | "none"

/**
 * @category models
 * @since 0.1.0
 */
export interface ServerConfig {
  readonly port: number
  readonly host: string
  readonly store: StoreKind
  readonly redisUrl: Option.Option<Redacted.Redacted>
  readonly anchor: AnchorKind
  readonly qubicRpcUrl: Option.Option<string>
  readonly qubicSeed: Option.Option<Redacted.Redacted>
  readonly qubicSigner: string
  readonly qubicTick: Duration.Duration
  readonly policyFile: Option.Option<string>
  readonly apiKeys: Option.Option<Redacted.Redacted>
  readonly jwtSecret: Option.Option<Redacted.Redacted>
  readonly jwtPublicKey: Option.Option<string>
  readonly jwtIssuer: Option.Option<string>
  readonly jwtAudience: Option.Option<string>
  readonly ledgerKey: Option.Option<Redacted.Redacted>
  readonly dataDir: string
  readonly anchorInterval: Duration.Duration
  readonly anchorEntries: number
  readonly rateLimit: number
  readonly rateWindow: Duration.Duration
  readonly maxBodyBytes: number
  readonly maxJsonDepth: number
  readonly maxJsonValues: number
  readonly jwtMaxLifetime: Duration.Duration
  readonly workerConcurrency: number
  readonly workerYieldOps: number
  readonly remoteSteps: { readonly [type: string]: string }
  readonly poolPrincipals: { readonly [pool: string]: ReadonlyArray<string> }
  readonly shutdownGrace: Duration.Duration
  readonly sseKeepAlive: Duration.Duration
  readonly corsOrigins: ReadonlyArray<string>
  readonly publicUrl: Option.Option<string>
  readonly webhooksFile: Option.Option<string>
  readonly webhooks: Option.Option<Redacted.Redacted>
  readonly devTokensFile: string
  readonly logLevel: LogLevel.LogLevel
  /** `templates` (default) or `llm`: `goal` tasks planned by a model at MANDATE_LLM_URL (see `Stores.llmFromConfig`). */
  readonly planner: "templates" | "llm"
}

const positiveInt = (name: string, fallback: number, max = 1_000_000_000) =>
  Config.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: max })), name).pipe(
    Config.withDefault(fallback)
  )

// `scheme://host[:port]` as a browser sends it in `Origin` (no path, no trailing slash), or `*`
const origin = /^(\*|https?:\/\/[a-z0-9.-]+(:\d{1,5})?|https?:\/\/\[[0-9a-f:.]+\](:\d{1,5})?)$/

const CorsOrigins = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Array(
      Schema.String.check(
        Schema.isPattern(origin, { message: "Expected an origin such as https://ops.example.com:8443, or *" })
      )
    ),
    {
      decode: SchemaGetter.transform((text: string) =>
        text
          .split(",")
          .map((o) => o.trim())
          .filter((o) => o.length > 0)
      ),
      encode: SchemaGetter.transform((origins: ReadonlyArray<string>) => origins.join(","))
    }
  )
)

// Keys are checked by a filter, not by the record's key schema: decoding drops keys a key schema refuses, and a bad
// entry must be refused, not dropped
const keysMatch = (pattern: RegExp, message: string) =>
  Schema.makeFilter((record: { readonly [key: string]: unknown }) =>
    Object.keys(record)
      .filter((key) => !pattern.test(key))
      .map((key) => ({ path: [key], issue: message }))
  )

// `type:pool,type:pool`: each step type once, pools named as queues are (at most 51 characters: `mandate.pool.` + it)
const RemoteSteps = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Record(
      Schema.String,
      Schema.String.check(
        Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,50}$/, {
          message: "Expected a pool name: 1-51 letters, digits and _ . : -"
        })
      )
    ).check(keysMatch(/^[a-z][a-z0-9_.-]{0,63}$/, "Expected a step type")),
    {
      decode: SchemaGetter.transform((text: string) =>
        Object.fromEntries(
          text
            .split(",")
            .map((pair) => pair.trim())
            .filter((pair) => pair.length > 0)
            .map((pair) => {
              const colon = pair.indexOf(":")
              return colon < 0 ? [pair, ""] : [pair.slice(0, colon).trim(), pair.slice(colon + 1).trim()]
            })
        )
      ),
      encode: SchemaGetter.transform((steps: { readonly [type: string]: string }) =>
        Object.entries(steps)
          .map(([type, pool]) => `${type}:${pool}`)
          .join(",")
      )
    }
  )
)

// `pool:principal+principal,pool:principal`
const PoolPrincipals = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Record(
      Schema.String,
      Schema.Array(
        Schema.String.check(Schema.isPattern(/^[^\s,:+]{1,128}$/, { message: "Expected a principal id" }))
      ).check(Schema.isMinLength(1))
    ).check(keysMatch(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,50}$/, "Expected a pool name")),
    {
      decode: SchemaGetter.transform((text: string) =>
        Object.fromEntries(
          text
            .split(",")
            .map((pair) => pair.trim())
            .filter((pair) => pair.length > 0)
            .map((pair) => {
              const colon = pair.indexOf(":")
              const pool = colon < 0 ? pair : pair.slice(0, colon).trim()
              const principals =
                colon < 0
                  ? []
                  : pair
                      .slice(colon + 1)
                      .split("+")
                      .map((p) => p.trim())
              return [pool, principals.filter((p) => p.length > 0)]
            })
        )
      ),
      encode: SchemaGetter.transform((pools: { readonly [pool: string]: ReadonlyArray<string> }) =>
        Object.entries(pools)
          .map(([pool, principals]) => `${pool}:${principals.join("+")}`)
          .join(",")
      )
    }
  )
)

/**
 * The server's configuration from the environment.
 *
 * @category config
 * @since 0.1.0
 */
export const ServerConfig: Config.Config<ServerConfig> = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(8000)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  store: Config.Literals(["memory", "postgres", "redis"], "MANDATE_STORE").pipe(Config.withDefault("memory" as const)),
  redisUrl: Config.Redacted("REDIS_URL").pipe(Config.option),
  anchor: Config.Literals(["qubic-mock", "qubic-rpc", "memory", "none"], "MANDATE_ANCHOR").pipe(
    Config.withDefault("qubic-mock" as const)
  ),
  qubicRpcUrl: Config.String("QUBIC_RPC_URL").pipe(Config.option),
  qubicSeed: Config.Redacted("MANDATE_QUBIC_SEED").pipe(Config.option),
  qubicSigner: Config.String("MANDATE_QUBIC_SIGNER").pipe(Config.withDefault("mock")),
  qubicTick: Config.Duration("MANDATE_QUBIC_TICK").pipe(Config.withDefault(Duration.seconds(1))),
  policyFile: Config.String("MANDATE_POLICY_FILE").pipe(Config.option),
  apiKeys: Config.Redacted("MANDATE_API_KEYS").pipe(Config.option),
  jwtSecret: Config.Redacted("MANDATE_JWT_SECRET").pipe(Config.option),
  jwtPublicKey: Config.String("MANDATE_JWT_PUBLIC_KEY").pipe(Config.option),
  jwtIssuer: Config.String("MANDATE_JWT_ISSUER").pipe(Config.option),
  jwtAudience: Config.String("MANDATE_JWT_AUDIENCE").pipe(Config.option),
  ledgerKey: Config.Redacted("MANDATE_LEDGER_KEY").pipe(Config.option),
  dataDir: Config.String("MANDATE_DATA_DIR").pipe(Config.withDefault(".mandate")),
  anchorInterval: Config.Duration("MANDATE_ANCHOR_INTERVAL").pipe(Config.withDefault(Duration.seconds(30))),
  anchorEntries: positiveInt("MANDATE_ANCHOR_ENTRIES", 1000),
  rateLimit: positiveInt("MANDATE_RATE_LIMIT", 600, 1_000_000),
  rateWindow: Config.Duration("MANDATE_RATE_WINDOW").pipe(Config.withDefault(Duration.minutes(1))),
  maxBodyBytes: positiveInt("MANDATE_MAX_BODY_BYTES", 1_048_576, 1_073_741_824),
  // Core refuses values nested deeper than 256 (Canonical.maxDepth) whatever the edge lets through
  maxJsonDepth: positiveInt("MANDATE_MAX_JSON_DEPTH", 64, 256),
  maxJsonValues: positiveInt("MANDATE_MAX_JSON_VALUES", 100_000, 10_000_000),
  jwtMaxLifetime: Config.Duration("MANDATE_JWT_MAX_LIFETIME").pipe(Config.withDefault(Duration.days(1))),
  workerConcurrency: Config.schema(
    Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10_000 })),
    "MANDATE_WORKER_CONCURRENCY"
  ).pipe(Config.withDefault(16)),
  workerYieldOps: positiveInt("MANDATE_WORKER_YIELD_OPS", 64, 2048),
  remoteSteps: Config.schema(RemoteSteps, "MANDATE_REMOTE_STEPS").pipe(
    Config.withDefault({} as { readonly [type: string]: string })
  ),
  poolPrincipals: Config.schema(PoolPrincipals, "MANDATE_POOL_PRINCIPALS").pipe(
    Config.withDefault({} as { readonly [pool: string]: ReadonlyArray<string> })
  ),
  shutdownGrace: Config.Duration("MANDATE_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(10))),
  sseKeepAlive: Config.Duration("MANDATE_SSE_KEEPALIVE").pipe(Config.withDefault(Duration.seconds(15))),
  corsOrigins: Config.schema(CorsOrigins, "MANDATE_CORS_ORIGINS").pipe(Config.withDefault([] as ReadonlyArray<string>)),
  publicUrl: Config.schema(Webhook.Url, "MANDATE_PUBLIC_URL").pipe(Config.option),
  webhooksFile: Config.String("MANDATE_WEBHOOKS_FILE").pipe(Config.option),
  webhooks: Config.Redacted("MANDATE_WEBHOOKS").pipe(Config.option),
  devTokensFile: Config.String("MANDATE_DEV_TOKENS_FILE").pipe(Config.withDefault(".mandate/dev-tokens.env")),
  logLevel: Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as const)),
  planner: Config.Literals(["templates", "llm"], "MANDATE_PLANNER").pipe(Config.withDefault("templates" as const))
})

/**
 * Whether the configuration names no credentials at all (development mode).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isDevelopmentMode = (config: ServerConfig): boolean =>
  Option.isNone(config.apiKeys) && Option.isNone(config.jwtSecret) && Option.isNone(config.jwtPublicKey)

/**
 * The webhook subscriptions of `MANDATE_WEBHOOKS_FILE` and `MANDATE_WEBHOOKS` (JSON: an array of `{ url, events,
 * secret, id?, enabled?, description? }`, or `{ "subscriptions": [...] }`), checked; a bad one is an `InvalidInput`
 * whose path starts with the variable's name.
 *
 * @category config
 * @since 0.1.0
 */
export const loadWebhooks = (
  config: Pick<ServerConfig, "webhooksFile" | "webhooks">
): Effect.Effect<ReadonlyArray<ConfiguredWebhook>, InvalidInput> =>
  Effect.gen(function* () {
    const parse = (text: string, source: string) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (e) => InvalidInput.at(source, `Expected JSON: ${e instanceof Error ? e.message : String(e)}`)
      })
    const out: Array<ConfiguredWebhook> = []
    if (Option.isSome(config.webhooksFile)) {
      const file = config.webhooksFile.value
      const text = yield* Effect.tryPromise({
        try: () => readFile(file, "utf8"),
        catch: (e) =>
          InvalidInput.at("MANDATE_WEBHOOKS_FILE", `Cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)
      })
      out.push(...(yield* decodeWebhooksConfig(yield* parse(text, "MANDATE_WEBHOOKS_FILE"), "MANDATE_WEBHOOKS_FILE")))
    }
    if (Option.isSome(config.webhooks)) {
      const inline = yield* parse(Redacted.value(config.webhooks.value), "MANDATE_WEBHOOKS")
      out.push(...(yield* decodeWebhooksConfig(inline, "MANDATE_WEBHOOKS")))
    }
    return out
  })
