/**
 * A remote agent: a worker in someone else's infrastructure that pulls work from a Mandate server over HTTP.
 *
 * It registers in a pool, then loops: claim up to `concurrency` jobs of its queues under a lease, start each,
 * keep its lease alive with heartbeats while it works, and complete it with the result (or fail it, retryable
 * or not). The agent also heartbeats itself with its load, and deregisters when it stops.
 *
 * The work here is signing: each job's payload names a document, the agent signs its SHA-256 with an Ed25519
 * key that only the agent holds, and returns the signature and its public key. The private key never leaves
 * the process: no request carries it, and the server only ever sees results.
 *
 * The client is derived from the server's own API definition (`HttpApiClient.make(Api)`), so requests and
 * responses are checked against the same schemas the server uses.
 */
import * as NodeCrypto from "node:crypto"
import { AgentId, JobId } from "@mandate/core"
import { Api } from "@mandate/server"
import { Duration, Effect, Fiber, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"

/** A signing job's payload. */
export const SigningJob = Schema.Struct({ document: Schema.String.check(Schema.isBetweenLength(1, 100_000)) })

export interface AgentOptions {
  /** The server, e.g. `http://127.0.0.1:8000`. */
  readonly baseUrl: string
  /** A bearer token with the `agent` role. */
  readonly token: string
  /** `<principal>` or `<principal>.<name>` (the server refuses others); default: one the server assigns. */
  readonly agentId?: string | undefined
  readonly pool: string
  readonly queues: ReadonlyArray<string>
  /** The agent's Ed25519 private key: it signs, and is never sent anywhere. */
  readonly privateKey: NodeCrypto.KeyObject
  /** Jobs worked on at once (default 4). */
  readonly concurrency?: number | undefined
  /** Lease per claim (default 15 s); job heartbeats extend it every third of it. */
  readonly leaseMs?: number | undefined
  /** The agent's own heartbeat interval (default 5 s). */
  readonly heartbeatMs?: number | undefined
  /** Least time spent per job, e.g. to pace a hardware signer (default 0). */
  readonly paceMs?: number | undefined
  /** Pause between claims when there is no work (default 250 ms). */
  readonly idleMs?: number | undefined
  /** Called with each line the agent would log. */
  readonly log?: ((line: string) => void) | undefined
}

/** What a completed signing job returns. */
export interface Signature {
  readonly algorithm: "ed25519"
  readonly digest: string
  readonly signature: string
  readonly public_key: string
}

/** Signs a document: Ed25519 over the SHA-256 of its UTF-8 bytes. */
export const sign = (document: string, privateKey: NodeCrypto.KeyObject): Signature => {
  const digest = NodeCrypto.createHash("sha256").update(document, "utf8").digest()
  return {
    algorithm: "ed25519",
    digest: digest.toString("hex"),
    signature: NodeCrypto.sign(null, digest, privateKey).toString("base64"),
    public_key: NodeCrypto.createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString()
  }
}

/** Checks a `Signature` with nothing but its public key. */
export const verify = (document: string, result: Signature): boolean => {
  const digest = NodeCrypto.createHash("sha256").update(document, "utf8").digest()
  return (
    digest.toString("hex") === result.digest &&
    NodeCrypto.verify(null, digest, result.public_key, Buffer.from(result.signature, "base64"))
  )
}

/**
 * Runs the agent until interrupted; on the way out it deregisters. Needs an `HttpClient`
 * (`FetchHttpClient.layer`).
 */
export const run = (options: AgentOptions) =>
  Effect.gen(function* () {
    const log = options.log ?? ((line: string) => console.log(line))
    const concurrency = options.concurrency ?? 4
    const leaseMs = options.leaseMs ?? 15_000
    const client = yield* HttpApiClient.make(Api, {
      baseUrl: options.baseUrl,
      transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
    })
    let busy = 0

    const agent = yield* client.agents.register({
      payload: {
        ...(options.agentId === undefined ? {} : { agent_id: AgentId.make(options.agentId) }),
        pool: options.pool,
        capabilities: ["sign:ed25519"]
      }
    })
    const agentId = AgentId.make(agent.agent_id)
    log(`registered ${agent.agent_id} in pool ${agent.pool}`)
    yield* Effect.addFinalizer(() =>
      client.agents.deregister({ params: { id: agentId } }).pipe(
        Effect.tap(() => Effect.sync(() => log(`deregistered ${agentId}`))),
        Effect.ignore
      )
    )
    // The agent's own heartbeat, with its load
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.sleep(Duration.millis(options.heartbeatMs ?? 5_000)).pipe(
          Effect.andThen(
            client.agents.heartbeat({
              params: { id: agentId },
              payload: { load: busy / concurrency }
            })
          ),
          Effect.ignore
        )
      )
    )

    const work = (job: { readonly job_id: string; readonly payload: unknown }) =>
      Effect.gen(function* () {
        const id = JobId.make(job.job_id)
        const holder = { worker_id: agentId }
        yield* client.queue.start({ params: { id }, payload: holder })
        // Keep the lease while working
        const beating = yield* Effect.forkChild(
          Effect.forever(
            Effect.sleep(Duration.millis(leaseMs / 3)).pipe(
              Effect.andThen(client.queue.heartbeat({ params: { id }, payload: { ...holder, extend_ms: leaseMs } }))
            )
          )
        )
        const decoded = Schema.decodeUnknownOption(SigningJob)(job.payload)
        if (decoded._tag === "None") {
          yield* Fiber.interrupt(beating)
          yield* client.queue.fail({
            params: { id },
            payload: { ...holder, error: "payload is not { document: string }", retryable: false }
          })
          log(`job ${job.job_id}: refused (bad payload)`)
          return
        }
        const result = sign(decoded.value.document, options.privateKey)
        if (options.paceMs !== undefined) yield* Effect.sleep(Duration.millis(options.paceMs))
        yield* Fiber.interrupt(beating)
        yield* client.queue.complete({ params: { id }, payload: { ...holder, result: { ...result } } })
        log(`job ${job.job_id}: signed ${result.digest.slice(0, 16)}…`)
      }).pipe(
        Effect.ensuring(Effect.sync(() => busy--)),
        // A lost lease (the job was cancelled or expired) or a failed call: the server retries the job elsewhere
        Effect.catchCause((cause) =>
          Effect.sync(() => log(`job ${job.job_id}: given up (${String(cause).split("\n")[0]})`))
        )
      )

    while (true) {
      const free = concurrency - busy
      if (free <= 0) {
        yield* Effect.sleep(Duration.millis(20))
        continue
      }
      const claimed = yield* client.queue
        .claim({
          payload: {
            worker_id: agentId,
            queues: options.queues as never,
            pool: options.pool,
            max: free,
            lease_ms: leaseMs
          }
        })
        .pipe(
          Effect.map((page) => page.jobs),
          Effect.catchCause((cause) =>
            Effect.as(
              Effect.sync(() => log(`claim failed: ${String(cause).split("\n")[0]}`)),
              []
            )
          )
        )
      if (claimed.length === 0) {
        yield* Effect.sleep(Duration.millis(options.idleMs ?? 250))
        continue
      }
      busy += claimed.length
      for (const job of claimed) yield* Effect.forkScoped(work(job))
    }
  }).pipe(Effect.scoped)
