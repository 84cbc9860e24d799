/**
 * A remote agent: it runs a task's governed steps in someone else's infrastructure, where the key is, and the key
 * never leaves it.
 *
 * The server is told to route the seed's `onchain_action` to a pool (`MANDATE_REMOTE_STEPS=onchain_action:signers`).
 * The agent registers in that pool, then loops: claim steps of the pool under a lease (a long poll: an idle claim
 * waits at the server until a step comes), keep each lease alive with
 * heartbeats while it works, and settle the step (`complete` with the result, or `fail`). The server offers a step
 * only once it is planned, policy-checked and, where policy says so, approved: what the agent signs is exactly the
 * transfer an approver saw. It checks the params itself too (a transfer, nothing else), and signs the transfer bound
 * to the step's idempotency key (the same on every attempt), so a retried step signs the same digest.
 *
 * The result follows `onchain_action`'s result schema (the server decodes it; a result it refuses is a failed
 * attempt): the digest, the Ed25519 signature and the agent's public key, so anyone can check it with nothing but the
 * ledger. The client is derived from the server's own API definition (`HttpApiClient.make(Api)`).
 */
import * as NodeCrypto from "node:crypto"
import { AgentId, Canonical, JobId, Seed } from "@mandate/core"
import { Api } from "@mandate/server"
import { Duration, Effect, Fiber, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"

export interface AgentOptions {
  /** The server, e.g. `http://127.0.0.1:8000`. */
  readonly baseUrl: string
  /** A bearer token with the `agent` role. */
  readonly token: string
  /** `<principal>` or `<principal>.<name>` (the server refuses others); default: one the server assigns. */
  readonly agentId?: string | undefined
  /** The pool the server routes `onchain_action` to (default `signers`). */
  readonly pool?: string | undefined
  /** The agent's Ed25519 private key: it signs, and is never sent anywhere. */
  readonly privateKey: NodeCrypto.KeyObject
  /** Steps worked on at once (default 4). */
  readonly concurrency?: number | undefined
  /** Lease per claim (default 15 s); step heartbeats extend it every third of it. */
  readonly leaseMs?: number | undefined
  /** The agent's own heartbeat interval (default 5 s). */
  readonly heartbeatMs?: number | undefined
  /** Least time spent per step, e.g. to pace a hardware signer (default 0). */
  readonly paceMs?: number | undefined
  /** How long an idle claim waits for a step at the server (long poll; default 10 s, at most 20 s). */
  readonly waitMs?: number | undefined
  /** Pause after a failed claim (default 250 ms). */
  readonly idleMs?: number | undefined
  /** Called with each line the agent would log. */
  readonly log?: ((line: string) => void) | undefined
}

/** What the agent returns for an `onchain_action`: the seed's result schema, with the signature and the key. */
export interface SignedTransfer {
  readonly chain: "ed25519"
  /** The signed transaction's id: the SHA-256 of the signature. */
  readonly txId: string
  readonly tick: number
  /** SHA-256 of the canonical JSON of `{ transfer, idempotencyKey }`. */
  readonly digest: string
  /** Ed25519 over the digest's bytes, base64. */
  readonly signature: string
  /** SPKI PEM. */
  readonly publicKey: string
}

/** The digest an agent signs for a transfer: bound to the step's idempotency key, as the in-process handler's. */
export const digestOf = (transfer: Seed.TransferParams, idempotencyKey: string): string =>
  Canonical.hash({ transfer, idempotencyKey })

/** Signs a transfer with the agent's key. */
export const signTransfer = (
  transfer: Seed.TransferParams,
  idempotencyKey: string,
  privateKey: NodeCrypto.KeyObject
): SignedTransfer => {
  const digest = digestOf(transfer, idempotencyKey)
  const signature = NodeCrypto.sign(null, Buffer.from(digest, "hex"), privateKey)
  return {
    chain: "ed25519",
    txId: NodeCrypto.createHash("sha256").update(signature).digest("hex"),
    tick: 0,
    digest,
    signature: signature.toString("base64"),
    publicKey: NodeCrypto.createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString()
  }
}

/** Checks a signed transfer with nothing but what the ledger holds: the step's params, key and result. */
export const verifyTransfer = (
  transfer: Seed.TransferParams,
  idempotencyKey: string,
  result: Pick<SignedTransfer, "digest" | "signature" | "publicKey">
): boolean =>
  digestOf(transfer, idempotencyKey) === result.digest &&
  NodeCrypto.verify(null, Buffer.from(result.digest, "hex"), result.publicKey, Buffer.from(result.signature, "base64"))

const decodeTransfer = Schema.decodeUnknownOption(Seed.TransferParams)

/**
 * Runs the agent until interrupted; on the way out it deregisters. Needs an `HttpClient`
 * (`FetchHttpClient.layer`).
 */
export const run = (options: AgentOptions) =>
  Effect.gen(function* () {
    const log = options.log ?? ((line: string) => console.log(line))
    const concurrency = options.concurrency ?? 4
    const leaseMs = options.leaseMs ?? 15_000
    const pool = options.pool ?? "signers"
    const client = yield* HttpApiClient.make(Api, {
      baseUrl: options.baseUrl,
      transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
    })
    let busy = 0

    const agent = yield* client.agents.register({
      payload: {
        ...(options.agentId === undefined ? {} : { agent_id: AgentId.make(options.agentId) }),
        pool,
        capabilities: ["onchain_action", "sign:ed25519"]
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
          Effect.andThen(client.agents.heartbeat({ params: { id: agentId }, payload: { load: busy / concurrency } })),
          Effect.ignore
        )
      )
    )

    const work = (step: Claimed) =>
      Effect.gen(function* () {
        const lease = { lease_id: JobId.make(step.lease_id) }
        const holder = { worker_id: agentId }
        // Keep the lease while working
        const beating = yield* Effect.forkChild(
          Effect.forever(
            Effect.sleep(Duration.millis(leaseMs / 3)).pipe(
              Effect.andThen(client.remote.heartbeat({ params: lease, payload: { ...holder, extend_ms: leaseMs } }))
            )
          )
        )
        const transfer = step.type === "onchain_action" ? decodeTransfer(step.params) : undefined
        if (transfer === undefined || transfer._tag === "None") {
          yield* Fiber.interrupt(beating)
          yield* client.remote.fail({
            params: lease,
            payload: { ...holder, error: `this agent signs transfers only, not ${step.type}`, retryable: false }
          })
          log(`step ${step.task_id}/${step.step_id}: refused`)
          return
        }
        const signed = signTransfer(transfer.value, step.idempotency_key, options.privateKey)
        if (options.paceMs !== undefined) yield* Effect.sleep(Duration.millis(options.paceMs))
        yield* Fiber.interrupt(beating)
        const settled = yield* client.remote.complete({ params: lease, payload: { ...holder, result: { ...signed } } })
        log(`step ${step.task_id}/${step.step_id}: signed ${signed.digest.slice(0, 16)}… (${settled.outcome})`)
      }).pipe(
        Effect.ensuring(Effect.sync(() => busy--)),
        // A lost lease (the step was cancelled or taken over) or a failed call: the server offers the step again
        Effect.catchCause((cause) =>
          Effect.sync(() => log(`step ${step.task_id}/${step.step_id}: given up (${String(cause).split("\n")[0]})`))
        )
      )

    while (true) {
      const free = concurrency - busy
      if (free <= 0) {
        yield* Effect.sleep(Duration.millis(20))
        continue
      }
      const claimed = yield* client.remote
        .claim({
          params: { pool },
          payload: { worker_id: agentId, max: free, lease_ms: leaseMs, wait_ms: options.waitMs ?? 10_000 }
        })
        .pipe(
          Effect.map((page) => page.steps),
          Effect.catchCause((cause) =>
            Effect.as(
              Effect.andThen(
                Effect.sync(() => log(`claim failed: ${String(cause).split("\n")[0]}`)),
                Effect.sleep(Duration.millis(options.idleMs ?? 250))
              ),
              [] as ReadonlyArray<Claimed>
            )
          )
        )
      // An empty answer: the wait ended with nothing for the pool; claim again (the server does the waiting)
      if (claimed.length === 0) continue
      busy += claimed.length
      for (const step of claimed) yield* Effect.forkScoped(work(step))
    }
  }).pipe(Effect.scoped)

/** A claimed step as the server sends it. */
interface Claimed {
  readonly lease_id: string
  readonly task_id: string
  readonly step_id: string
  readonly type: string
  readonly attempt: number
  readonly idempotency_key: string
  readonly params: unknown
}
