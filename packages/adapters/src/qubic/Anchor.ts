/**
 * The core `Anchor` service on Qubic: ledger roots published in transactions, confirmed through the archive.
 *
 * One workflow, written once over `QubicNode`, serves both layers: `layerMock` runs it against the in-process
 * simulated chain, `layerRpc` against a gateway over HTTP (a real node, or the mock server), so the two
 * cannot disagree about what a receipt means.
 *
 * **The workflow** (qubic/integration "tx-based workflow"). `publish(root, size)` reads the current tick and
 * broadcasts a zero-amount transaction from the signer's identity (to itself unless `destination` is set)
 * whose `input` is the anchor record: the 32-byte root followed by the tree size as a little-endian u64
 * (`inputSize` 40), with target tick = current tick + `tickOffset` (15, as the docs recommend). Failed
 * broadcasts (no answer, 5xx, or no peer reached) are retried with exponential backoff and jitter. Then the
 * layer polls `getLastProcessedTick` until the archive has processed the target tick and asks
 * `getTransactionByHash`: `200` ⇒ confirmed at that tick (`confirmedAt` = the tick's timestamp); `404` ⇒ the
 * transaction was dropped (not included), so it is broadcast again with a new target tick (a new transaction
 * id; the old receipt says `dropped`), up to `maxRebroadcasts` times.
 *
 * **What `publish` returns.** By default the pending receipt, as soon as the node accepted the broadcast
 * (`status: "pending"`, `tick` = the target tick); confirmation continues in the layer's background (its fibers
 * end with the layer) and `getTx` / `lookup` show it (`status: "confirmed"`, `confirmedAt`). With
 * `awaitConfirmation` set, `publish` waits up to that long for the outcome and returns the latest receipt.
 *
 * **One transaction at a time.** Qubic keeps one pending transaction per source identity (a later one for a
 * higher tick replaces it), so publishes from one layer are serialized: a publish broadcasts only after the
 * previous root's transaction is confirmed or given up. Expect one anchor per ~20 ticks; anchor checkpoints
 * periodically, not every entry. Publishing a root that is pending or confirmed returns its receipt instead of
 * sending another transaction.
 *
 * Receipts live in the layer's memory, and with `stateFile` also in that file (`StateFile`: one owning process,
 * whole writes), written at every change: after a restart the layer knows its receipts again (`lookup` finds
 * them by root), and resumes watching the transactions that were pending — confirmed, or dropped and broadcast
 * again, as if it had never stopped. `getTx` of an id it does not know reads the transaction from the archive
 * and rebuilds the receipt from its input; `lookup` of a root it does not know finds nothing.
 *
 * @since 0.1.0
 */
import { Anchor, AnchorError, AnchorNotFound, AnchorReceipt, InvalidInput } from "@mandate/core"
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Layer,
  Option,
  type Redacted,
  Result,
  Schedule,
  Schema,
  Semaphore
} from "effect"
import { type ArchivedTransaction, isRetryable, type QubicError, QubicNetworkError, QubicNode } from "./Api.ts"
import { type Chain, type ChainOptions, layerChain } from "./Chain.ts"
import { identityProblem, isTxId, publicKeyFromIdentity, txIdFromSignedBytes } from "./Identity.ts"
import { layerRpcNode, type RpcNodeOptions } from "./RpcClient.ts"
import { layerMockSigner, type QubicSignerError, Signer, signTransaction } from "./Signer.ts"
import * as StateFile from "./StateFile.ts"
import { encodeTransaction, fromBase64, toBase64 } from "./Transaction.ts"

/**
 * How the anchor layers behave. Every field is optional.
 *
 * @category models
 * @since 0.1.0
 */
export interface QubicAnchorOptions {
  /** The `chain` of receipts (default `qubic` for `layerRpc`, `qubic-mock` for `layerMock`). */
  readonly chain?: string | undefined
  /** Target tick = current tick + `tickOffset` (default 15). */
  readonly tickOffset?: number | undefined
  /** The identity anchor transactions are sent to (default: the signer's own identity). */
  readonly destination?: string | undefined
  /** `inputType` of anchor transactions (default 0: a plain transfer carrying data). */
  readonly inputType?: number | undefined
  /** How often to poll the archive while a transaction awaits its tick (default 1 second). */
  readonly pollInterval?: Duration.Input | undefined
  /** Make `publish` wait up to this long for confirmation (default: return the pending receipt at once). */
  readonly awaitConfirmation?: Duration.Input | undefined
  /** How many times a dropped root is broadcast again (default 5). */
  readonly maxRebroadcasts?: number | undefined
  /** Retries of a failed broadcast (default 5), with exponential backoff from `retryBase` (default 500 ms). */
  readonly broadcastRetries?: number | undefined
  readonly retryBase?: Duration.Input | undefined
  /** A file to keep the receipts in across restarts (see the module docs). */
  readonly stateFile?: string | undefined
}

/**
 * Size of the anchor record in a transaction's input: the 32-byte root and the tree size (u64 LE).
 *
 * @category constants
 * @since 0.1.0
 */
export const ANCHOR_INPUT_SIZE = 40

/**
 * The anchor record a transaction carries: root (64 hex digits) and tree size.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encodeAnchorInput = (root: string, size: number): Uint8Array => {
  const out = new Uint8Array(ANCHOR_INPUT_SIZE)
  out.set(Buffer.from(root, "hex"), 0)
  new DataView(out.buffer).setBigUint64(32, BigInt(size), true)
  return out
}

/**
 * Reads an anchor record back; `None` when the input is not one.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeAnchorInput = (
  input: Uint8Array
): Option.Option<{ readonly root: string; readonly size: number }> => {
  if (input.length !== ANCHOR_INPUT_SIZE) return Option.none()
  const size = new DataView(input.buffer, input.byteOffset, input.byteLength).getBigUint64(32, true)
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return Option.none()
  return Option.some({ root: Buffer.from(input.subarray(0, 32)).toString("hex"), size: Number(size) })
}

const isRoot = (root: unknown): root is string => typeof root === "string" && /^[0-9a-f]{64}$/.test(root)

// What the state file holds: every receipt, and each root's latest transaction
const AnchorState = Schema.Struct({
  version: Schema.Literal(1),
  receipts: Schema.Array(AnchorReceipt),
  roots: Schema.Array(Schema.Tuple([Schema.String, Schema.String]))
})
type AnchorState = typeof AnchorState.Encoded
const decodeState = Schema.decodeUnknownEffect(AnchorState)

interface Attempt {
  readonly txId: string
  readonly tick: number
}

interface Flight {
  readonly started: Deferred.Deferred<void, AnchorError>
  readonly done: Deferred.Deferred<void>
}

type Outcome = { readonly _tag: "confirmed"; readonly tx: ArchivedTransaction } | { readonly _tag: "dropped" }

// The archive has not processed the target tick yet: poll again
class NotYetArchived {
  readonly _tag = "NotYetArchived"
}

// The network passed the target tick before the broadcast arrived: build the transaction again
class TickPassed {
  readonly _tag = "TickPassed"
  readonly tick: number
  constructor(options: { readonly tick: number }) {
    this.tick = options.tick
  }
  get message(): string {
    return `the network passed target tick ${this.tick} before the broadcast arrived`
  }
}

const validateOptions = (options: QubicAnchorOptions | undefined): Effect.Effect<void, InvalidInput> => {
  const count = (value: number | undefined, path: string, min: number, max: number) =>
    value === undefined || (Number.isInteger(value) && value >= min && value <= max)
      ? undefined
      : InvalidInput.at(path, `Expected an integer between ${min} and ${max}`)
  const problem =
    count(options?.tickOffset, "$.tickOffset", 1, 100_000) ??
    count(options?.inputType, "$.inputType", 0, 0xffff) ??
    count(options?.maxRebroadcasts, "$.maxRebroadcasts", 0, 1_000) ??
    count(options?.broadcastRetries, "$.broadcastRetries", 0, 1_000)
  if (problem !== undefined) return Effect.fail(problem)
  if (options?.destination !== undefined) {
    const reason = identityProblem(options.destination)
    if (reason !== undefined)
      return Effect.fail(InvalidInput.at("$.destination", `Expected a Qubic identity: ${reason}`))
  }
  for (const key of ["pollInterval", "awaitConfirmation", "retryBase"] as const) {
    const value = options?.[key]
    if (value !== undefined && Option.isNone(Duration.fromInput(value))) {
      return Effect.fail(InvalidInput.at(`$.${key}`, "Expected a duration"))
    }
  }
  return Effect.void
}

/**
 * Builds the Qubic `Anchor` over the `QubicNode` and `Signer` in context; its confirmation fibers run in the
 * enclosing scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeAnchor = Effect.fnUntraced(function* (options?: QubicAnchorOptions) {
  yield* validateOptions(options)
  const node = yield* QubicNode
  const signer = yield* Signer
  const scope = yield* Effect.scope
  const chain = options?.chain ?? "qubic"
  const tickOffset = options?.tickOffset ?? 15
  const inputType = options?.inputType ?? 0
  const pollInterval = options?.pollInterval ?? "1 second"
  const maxRebroadcasts = options?.maxRebroadcasts ?? 5
  const destination =
    options?.destination === undefined
      ? signer.publicKey
      : Option.getOrThrow(publicKeyFromIdentity(options.destination))
  const retrySchedule = Schedule.exponential(options?.retryBase ?? "500 millis").pipe(
    Schedule.jittered,
    Schedule.upTo({ times: options?.broadcastRetries ?? 5 })
  )

  // Qubic holds one pending transaction per source: one anchoring workflow at a time
  const slot = yield* Semaphore.make(1)
  const byTx = new Map<string, AnchorReceipt>()
  const byRoot = new Map<string, string>()
  const inFlight = new Map<string, Flight>()

  const file = options?.stateFile === undefined ? Option.none() : yield* StateFile.acquire(options.stateFile)
  if (options?.stateFile !== undefined && Option.isNone(file)) {
    yield* Effect.logWarning(
      `Qubic anchor: ${options.stateFile} belongs to another running process; receipts are kept in memory only`
    )
  }
  if (Option.isSome(file)) {
    const saved = yield* file.value.read
    if (saved !== undefined) {
      const state = yield* decodeState(saved).pipe(
        Effect.mapError(
          (error) =>
            new StateFile.StateFileError({
              path: file.value.path,
              message: `not a Qubic anchor state: ${error.message}`
            })
        )
      )
      for (const receipt of state.receipts) byTx.set(receipt.txId, receipt)
      for (const [root, txId] of state.roots) byRoot.set(root, txId)
    }
  }
  // Written at every change of a receipt; a failed write is logged and the next change writes everything again
  const persist: Effect.Effect<void> = Effect.suspend(() =>
    Option.isNone(file)
      ? Effect.void
      : file.value
          .write({ version: 1, receipts: [...byTx.values()], roots: [...byRoot] } satisfies AnchorState)
          .pipe(Effect.catch((error) => Effect.logWarning(`Qubic anchor: ${error.message}`)))
  )

  const broadcastOnce = (
    root: string,
    size: number
  ): Effect.Effect<Attempt, QubicError | QubicSignerError | AnchorError | TickPassed> =>
    Effect.gen(function* () {
      const info = yield* node.tickInfo
      const tick = info.tick + tickOffset
      const signed = yield* Effect.provideService(
        signTransaction({
          sourcePublicKey: signer.publicKey,
          destinationPublicKey: destination,
          amount: 0n,
          tick,
          inputType,
          input: encodeAnchorInput(root, size)
        }),
        Signer,
        signer
      )
      const bytes = encodeTransaction(signed)
      const txId = txIdFromSignedBytes(bytes)
      const answer = yield* node.broadcastTransaction(toBase64(bytes)).pipe(
        Effect.catchIf(
          (error) => error._tag === "QubicApiError" && error.status === 400,
          (error) =>
            // Refused because the network reached the target tick first (the gateway's view of the tick can
            // be ahead of tick-info's): that is worth another attempt with a new target; other refusals are not
            Effect.flatMap(node.tickInfo, (now) => Effect.fail(now.tick >= tick ? new TickPassed({ tick }) : error))
        )
      )
      if (answer.peersBroadcasted <= 0) {
        return yield* new QubicNetworkError({
          operation: "broadcastTransaction",
          message: "the gateway reached no peer with the transaction"
        })
      }
      if (answer.transactionId !== txId) {
        return yield* new AnchorError({
          operation: "publish",
          message: `the node reports transaction id ${answer.transactionId}, expected ${txId}`
        })
      }
      return { txId, tick }
    })

  const broadcast = (root: string, size: number): Effect.Effect<Attempt, AnchorError> =>
    broadcastOnce(root, size).pipe(
      Effect.retry({
        schedule: retrySchedule,
        while: (error) =>
          error._tag === "TickPassed" ||
          ((error._tag === "QubicApiError" || error._tag === "QubicNetworkError") && isRetryable(error))
      }),
      Effect.mapError((error) =>
        error._tag === "AnchorError"
          ? error
          : new AnchorError({ operation: "publish", message: `broadcast failed: ${error.message}`, cause: error })
      )
    )

  // Poll the archive until it has processed the target tick, then ask for the transaction
  const outcome = (attempt: Attempt): Effect.Effect<Outcome> =>
    Effect.gen(function* () {
      const last = yield* node.lastProcessedTick
      if (last.tickNumber < attempt.tick) return yield* Effect.fail(new NotYetArchived())
      return yield* node.transactionByHash(attempt.txId).pipe(
        Effect.map((tx): Outcome => ({ _tag: "confirmed", tx })),
        Effect.catchIf(
          (error) => error._tag === "QubicApiError" && error.status === 404,
          () => Effect.succeed<Outcome>({ _tag: "dropped" })
        )
      )
    }).pipe(
      Effect.tapError((error) =>
        error._tag === "NotYetArchived"
          ? Effect.void
          : Effect.logWarning(`Qubic anchor: checking ${attempt.txId} failed, retrying: ${error.message}`)
      ),
      Effect.retry(Schedule.spaced(pollInterval)),
      Effect.orDie // the schedule never ends: only interruption (the layer closing) stops the poll
    )

  // Records a new attempt as the root's receipt; the attempt it replaces (if any) becomes `dropped` in the same
  // step, so `lookup` never shows a dropped receipt while a rebroadcast is under way
  const recordPending = (root: string, size: number, attempt: Attempt, replaces?: Attempt) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (replaces !== undefined) markDropped(replaces)
      byTx.set(attempt.txId, {
        chain,
        txId: attempt.txId,
        tick: attempt.tick,
        root,
        size,
        status: "pending",
        publishedAt: now
      })
      byRoot.set(root, attempt.txId)
    }).pipe(Effect.andThen(persist))

  const markDropped = (attempt: Attempt) => {
    const receipt = byTx.get(attempt.txId)
    if (receipt !== undefined) byTx.set(attempt.txId, { ...receipt, status: "dropped" })
  }

  // `resumed`: a pending transaction of a previous run of the layer (from the state file), watched again
  const workflow = (root: string, size: number, flight: Flight, resumed?: Attempt) =>
    Effect.gen(function* () {
      let attempt: Attempt
      if (resumed === undefined) {
        const first = yield* Effect.result(broadcast(root, size))
        if (Result.isFailure(first)) return yield* Deferred.fail(flight.started, first.failure)
        attempt = first.success
        yield* recordPending(root, size, attempt)
      } else {
        attempt = resumed
      }
      yield* Deferred.succeed(flight.started, undefined)
      for (let rebroadcasts = 0; ; rebroadcasts++) {
        const result = yield* outcome(attempt)
        if (result._tag === "confirmed") {
          const confirmedAt = Number(result.tx.timestamp)
          return yield* Effect.sync(() => {
            const receipt = byTx.get(attempt.txId)
            if (receipt !== undefined) byTx.set(attempt.txId, { ...receipt, status: "confirmed", confirmedAt })
          }).pipe(Effect.andThen(persist))
        }
        if (rebroadcasts >= maxRebroadcasts) {
          yield* Effect.sync(() => markDropped(attempt)).pipe(Effect.andThen(persist))
          return yield* Effect.logWarning(`Qubic anchor: root ${root} dropped ${rebroadcasts + 1} times, giving up`)
        }
        yield* Effect.logInfo(`Qubic anchor: ${attempt.txId} was not included in tick ${attempt.tick}, rebroadcasting`)
        const next = yield* Effect.result(broadcast(root, size))
        if (Result.isFailure(next)) {
          yield* Effect.sync(() => markDropped(attempt)).pipe(Effect.andThen(persist))
          return yield* Effect.logWarning(`Qubic anchor: rebroadcast of root ${root} failed: ${next.failure.message}`)
        }
        yield* recordPending(root, size, next.success, attempt)
        attempt = next.success
      }
    }).pipe(
      slot.withPermits(1),
      Effect.ensuring(
        Effect.andThen(
          Effect.sync(() => inFlight.delete(root)),
          Effect.all([
            Deferred.fail(
              flight.started,
              new AnchorError({ operation: "publish", message: "the anchor layer closed before the broadcast" })
            ),
            Deferred.succeed(flight.done, undefined)
          ])
        )
      )
    )

  const latest = (root: string): AnchorReceipt | undefined => {
    const txId = byRoot.get(root)
    return txId === undefined ? undefined : byTx.get(txId)
  }

  const receiptFromChain = (tx: ArchivedTransaction): Option.Option<AnchorReceipt> => {
    const input = fromBase64(tx.inputData)
    const record = input === undefined ? Option.none() : decodeAnchorInput(input)
    return Option.map(record, ({ root, size }) => {
      const at = Number(tx.timestamp)
      // the archive does not know when the transaction was sent: its tick's time is the earliest evidence
      return {
        chain,
        txId: tx.hash,
        tick: tx.tickNumber,
        root,
        size,
        status: "confirmed",
        publishedAt: at,
        confirmedAt: at
      }
    })
  }

  // Watch again what a previous run left pending: the root's latest attempt, one workflow per root
  for (const [root, txId] of byRoot) {
    const receipt = byTx.get(txId)
    if (receipt?.status !== "pending") continue
    const flight: Flight = { started: Deferred.makeUnsafe(), done: Deferred.makeUnsafe() }
    inFlight.set(root, flight)
    yield* Effect.forkIn(workflow(root, receipt.size, flight, { txId, tick: receipt.tick }), scope)
  }

  return Anchor.of({
    publish: Effect.fn("QubicAnchor.publish")(function* (root: string, size: number) {
      if (!isRoot(root)) {
        return yield* new AnchorError({ operation: "publish", message: "the root must be 64 lowercase hex digits" })
      }
      if (!Number.isSafeInteger(size) || size < 0) {
        return yield* new AnchorError({ operation: "publish", message: "the size must be a non-negative integer" })
      }
      const known = latest(root)
      if (known?.status === "confirmed") return known
      // One workflow per root: a publish of a root already under way joins it
      let flight = inFlight.get(root)
      if (flight === undefined) {
        flight = { started: Deferred.makeUnsafe(), done: Deferred.makeUnsafe() }
        inFlight.set(root, flight)
        yield* Effect.forkIn(workflow(root, size, flight), scope)
      }
      yield* Deferred.await(flight.started)
      if (options?.awaitConfirmation !== undefined) {
        yield* Effect.timeoutOption(Deferred.await(flight.done), options.awaitConfirmation)
      }
      return latest(root)!
    }),
    lookup: (root) => Effect.sync(() => Option.fromNullishOr(latest(root))),
    getTx: Effect.fn("QubicAnchor.getTx")(function* (txId: string) {
      const known = byTx.get(txId)
      if (known !== undefined) return known
      if (!isTxId(txId)) return yield* new AnchorNotFound({ id: txId })
      // Not sent by this layer (or before a restart): read it from the archive
      const tx = yield* node.transactionByHash(txId).pipe(
        Effect.catchIf(
          (error) => error._tag === "QubicApiError" && error.status === 404,
          () => Effect.fail(new AnchorNotFound({ id: txId }))
        ),
        Effect.mapError((error) =>
          error._tag === "AnchorNotFound"
            ? error
            : new AnchorError({ operation: "getTx", message: error.message, cause: error })
        )
      )
      const receipt = receiptFromChain(tx)
      if (Option.isNone(receipt)) return yield* new AnchorNotFound({ id: txId })
      byTx.set(txId, receipt.value)
      if (!byRoot.has(receipt.value.root)) byRoot.set(receipt.value.root, txId)
      yield* persist
      return receipt.value
    })
  })
})

/**
 * The Qubic `Anchor` over any `QubicNode` and `Signer`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAnchor = (
  options?: QubicAnchorOptions
): Layer.Layer<Anchor, InvalidInput | StateFile.StateFileError, QubicNode | Signer> =>
  Layer.effect(Anchor, makeAnchor(options))

/**
 * A fixed seed for the mock: the simulated chain needs an identity, not a secret.
 *
 * @category constants
 * @since 0.1.0
 */
export const MOCK_SEED = "mandatemockanchorseedmandatemockanchorseedmandatemockan"

/**
 * `Anchor` on the in-process simulated chain (`layerChain`) with the mock signer. The layer also provides
 * `Chain` (to inject faults) and `QubicNode`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMock = (
  options?: QubicAnchorOptions & {
    /** Options of the simulated chain. */
    readonly network?: ChainOptions | undefined
    /** Seed of the mock signer (default `MOCK_SEED`). */
    readonly seed?: string | Redacted.Redacted<string> | undefined
  }
): Layer.Layer<Anchor | Chain | QubicNode, InvalidInput | QubicSignerError | StateFile.StateFileError> =>
  layerAnchor({ chain: "qubic-mock", ...options }).pipe(
    Layer.provideMerge(layerChain(options?.network)),
    Layer.provide(layerMockSigner(options?.seed ?? MOCK_SEED))
  )

/**
 * `Anchor` over a Qubic gateway at `url` (e.g. `https://rpc.qubic.org`, or the mock server). Requires a
 * `Signer` whose key the network accepts (see `Signer.ts`); `layerMockSigner` only works with the mock.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRpc = (
  options: QubicAnchorOptions & RpcNodeOptions
): Layer.Layer<Anchor, InvalidInput | StateFile.StateFileError, Signer> =>
  layerAnchor(options).pipe(Layer.provide(layerRpcNode(options)))
