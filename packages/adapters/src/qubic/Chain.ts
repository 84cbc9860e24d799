/**
 * An in-process simulation of the Qubic network, faithful to the rules an anchoring client depends on.
 *
 * - **Ticks, not blocks.** The network works on one tick at a time; a background fiber advances it every
 *   `tickDuration`, timed by `Clock`, so tests drive it with `TestClock`. When the network moves past tick N,
 *   tick N is final (no confirmations) and holds the transactions that targeted it.
 * - **Target tick.** A broadcast transaction names its tick; it must be ahead of the current tick, or the
 *   gateway refuses it (`400`, the gateway's message).
 * - **One pending transaction per source identity.** A later transaction for a higher tick overwrites the
 *   pending one (which is then never included); one for a lower or the same tick is ignored, though the
 *   broadcast is still answered `200` — as on the real network, acceptance is not inclusion.
 * - **An archive that lags.** The Query API knows a tick only once the archive has processed it,
 *   `archiveLag` ticks behind the network; `getTransactionByHash` answers `404` for a transaction the archive
 *   does not hold — not yet processed, or dropped (never included).
 * - **Epochs.** An epoch transition (`faults.epochTransition`) makes the network unreachable for new
 *   transactions for the outage (tick info and the archive stay up), discards pending transactions, and starts
 *   a new epoch whose ticks begin `epochTickGap` above the last one: a new processed-tick interval.
 * - **Balances.** Optional genesis balances; a transfer moves QU only when the source holds enough
 *   (`moneyFlew`). There are no fees.
 * - **Faults** to inject: failing broadcasts (an error, or `200` with no peer reached), stalled ticks, epoch
 *   outages, and dropped transactions.
 *
 * - **Restarts.** With `stateFile`, the network keeps its state in that file (`StateFile`: one owning process,
 *   whole writes): ticks, epochs, pending and archived transactions, the archive's position, balances. It is
 *   written when a transaction is accepted or included and every 30 ticks otherwise, and when the layer closes.
 *   A restarted network resumes at the saved tick, as if it had stalled while the process was down: pending
 *   transactions are still included in their ticks, archived ones are still found. Ticks that held no
 *   transaction are not kept (their tick data after a restart has timestamp 0), nor are injected faults other
 *   than an epoch transition under way.
 *
 * What it cannot check: SchnorrQ signatures (there is no FourQ implementation here), so any 64 bytes pass as a
 * signature; the transaction's format, lengths and tick rules are checked as the gateway checks them.
 *
 * @since 0.1.0
 */
import { InvalidInput } from "@mandate/core"
import { Clock, Context, Duration, Effect, Layer, Option, Result, Schema } from "effect"
import {
  ArchivedTransaction,
  type Balance,
  type BroadcastTransactionResponse,
  GrpcCode,
  type LastProcessedTick,
  type ProcessedTickInterval,
  QubicApiError,
  QubicNode,
  type TickData,
  type TickInfo
} from "./Api.ts"
import { identityFromPublicKey, identityProblem, k12 } from "./Identity.ts"
import * as StateFile from "./StateFile.ts"
import { decodeTransaction, encodeTransaction, fromBase64, type SignedTransaction, toBase64 } from "./Transaction.ts"

/**
 * @category models
 * @since 0.1.0
 */
export interface ChainOptions {
  /** Time between ticks (default 1 second; the real network ticks every ~0.2–5 s). */
  readonly tickDuration?: Duration.Input | undefined
  /** The first tick of the first epoch (default 20,000,000). */
  readonly initialTick?: number | undefined
  /** The current epoch number (default 160). */
  readonly epoch?: number | undefined
  /** How many ticks the archive (Query API) trails the network (default 2). */
  readonly archiveLag?: number | undefined
  /** How far tick numbers jump when a new epoch starts (default 1,000). */
  readonly epochTickGap?: number | undefined
  /** Genesis balances in QU, by identity. */
  readonly balances?: Readonly<Record<string, bigint | number>> | undefined
  /** `peersBroadcasted` in a successful broadcast answer (default 3, as the public gateway). */
  readonly peers?: number | undefined
  /**
   * A file to keep the network's state in across restarts (see the module docs). When it holds a state, that
   * state wins over `initialTick`, `epoch` and `balances`.
   */
  readonly stateFile?: string | undefined
}

/**
 * Faults to inject into the simulated network.
 *
 * @category models
 * @since 0.1.0
 */
export interface ChainFaults {
  /**
   * The next `count` broadcasts fail: `"error"` (default) answers `500`; `"unpropagated"` answers `200` with
   * `peersBroadcasted: 0` and the transaction goes nowhere.
   */
  readonly failBroadcasts: (
    count: number,
    options?: { readonly mode?: "error" | "unpropagated" }
  ) => Effect.Effect<void>
  /** Ticks stop advancing, for `duration` or until `resumeTicks`. Broadcasts are still accepted. */
  readonly stallTicks: (duration?: Duration.Input) => Effect.Effect<void>
  readonly resumeTicks: Effect.Effect<void>
  /** Starts an epoch transition now: no new transactions for `outage`, pending ones discarded, then a new epoch. */
  readonly epochTransition: (outage: Duration.Input) => Effect.Effect<void>
  /** The next `count` transactions whose tick arrives are not included in it (as when a tick ends up empty). */
  readonly dropTransactions: (count: number) => Effect.Effect<void>
}

/**
 * The simulated network: a `QubicNode` (the Live and Query APIs) plus fault injection and inspection.
 *
 * @category services
 * @since 0.1.0
 */
export class Chain extends Context.Service<
  Chain,
  QubicNode["Service"] & {
    readonly faults: ChainFaults
    /** The transaction id in the pending slot of a source identity, if any. */
    readonly pending: (identity: string) => Effect.Effect<Option.Option<string>>
  }
>()("@mandate/adapters/qubic/Chain") {}

interface Interval {
  readonly epoch: number
  readonly firstTick: number
  lastTick: number | undefined
}

interface Pending {
  readonly txId: string
  readonly tx: SignedTransaction
  readonly source: string
  readonly destination: string
}

interface Account {
  incoming: bigint
  outgoing: bigint
  incomingCount: number
  outgoingCount: number
  lastIncomingTick: number
  lastOutgoingTick: number
}

interface State {
  tick: number
  epoch: number
  readonly intervals: Array<Interval>
  readonly pending: Map<string, Pending>
  readonly txs: Map<string, ArchivedTransaction>
  readonly ticks: Map<number, { readonly timestamp: number; readonly epoch: number; readonly hashes: Array<string> }>
  readonly accounts: Map<string, Account>
  readonly history: Array<number>
  archived: number
  failBroadcasts: number
  failMode: "error" | "unpropagated"
  stalledUntil: number | undefined
  outageUntil: number | undefined
  drop: number
  /** Something worth saving changed since the last save (a transaction, an epoch, a balance). */
  dirty: boolean
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0

const account = (state: State, identity: string): Account => {
  let found = state.accounts.get(identity)
  if (found === undefined) {
    found = { incoming: 0n, outgoing: 0n, incomingCount: 0, outgoingCount: 0, lastIncomingTick: 0, lastOutgoingTick: 0 }
    state.accounts.set(identity, found)
  }
  return found
}

const currentInterval = (state: State): Interval => state.intervals[state.intervals.length - 1]!

// The newest tick that is final: the one before the current tick, or the end of the previous interval when the
// current interval has not finished a tick yet
const lastFinished = (state: State): number => {
  const current = currentInterval(state)
  if (state.tick > current.firstTick) return state.tick - 1
  const previous = state.intervals[state.intervals.length - 2]
  return previous?.lastTick ?? current.firstTick - 1
}

const transfer = (state: State, p: Pending, tick: number): boolean => {
  const amount = p.tx.amount
  if (amount === 0n) return false
  const source = account(state, p.source)
  if (source.incoming - source.outgoing < amount) return false
  const destination = account(state, p.destination)
  source.outgoing += amount
  source.outgoingCount += 1
  source.lastOutgoingTick = tick
  destination.incoming += amount
  destination.incomingCount += 1
  destination.lastIncomingTick = tick
  return true
}

const processTick = (state: State, now: number): void => {
  const tick = state.tick
  const hashes: Array<string> = []
  for (const [source, p] of state.pending) {
    if (p.tx.tick > tick) continue
    state.pending.delete(source)
    if (p.tx.tick < tick) continue
    if (state.drop > 0) {
      state.drop -= 1
      continue
    }
    const moneyFlew = transfer(state, p, tick)
    state.txs.set(p.txId, {
      hash: p.txId,
      amount: p.tx.amount.toString(),
      source: p.source,
      destination: p.destination,
      tickNumber: tick,
      timestamp: String(now),
      inputType: p.tx.inputType,
      inputSize: p.tx.input.length,
      inputData: toBase64(p.tx.input),
      signature: toBase64(p.tx.signature),
      moneyFlew
    })
    hashes.push(p.txId)
  }
  state.ticks.set(tick, { timestamp: now, epoch: state.epoch, hashes })
  state.tick = tick + 1
  if (hashes.length > 0) state.dirty = true
}

const startNewEpoch = (state: State, gap: number): void => {
  const current = currentInterval(state)
  current.lastTick = lastFinished(state)
  state.epoch += 1
  const firstTick = state.tick + gap
  state.intervals.push({ epoch: state.epoch, firstTick, lastTick: undefined })
  state.tick = firstTick
  state.outageUntil = undefined
  state.pending.clear()
  state.dirty = true
}

const step = (state: State, now: number, lag: number, gap: number): void => {
  if (state.outageUntil !== undefined) {
    if (now >= state.outageUntil) startNewEpoch(state, gap)
  } else if (state.stalledUntil !== undefined && now < state.stalledUntil) {
    // stalled: the network stays on its tick
  } else {
    state.stalledUntil = undefined
    processTick(state, now)
  }
  // The archive processes what was final `lag` steps ago, so it trails a moving network and catches up with a
  // stalled one
  state.history.push(lastFinished(state))
  if (state.history.length > lag + 1) state.history.shift()
  state.archived = Math.max(state.archived, state.history[0]!)
}

const bytesOfTick = (tick: number, epoch: number): Uint8Array => {
  const out = new Uint8Array(8)
  const view = new DataView(out.buffer)
  view.setUint32(0, tick, true)
  view.setUint32(4, epoch, true)
  return out
}

// ---- the state file ------------------------------------------------------------------------------------------

const Snapshot = Schema.Struct({
  version: Schema.Literal(1),
  tick: Schema.Int,
  epoch: Schema.Int,
  intervals: Schema.Array(
    Schema.Struct({ epoch: Schema.Int, firstTick: Schema.Int, lastTick: Schema.NullOr(Schema.Int) })
  ),
  /** Pending transactions by source: the signed bytes, base64. */
  pending: Schema.Array(Schema.Struct({ txId: Schema.String, encoded: Schema.String })),
  txs: Schema.Array(ArchivedTransaction),
  /** Only the ticks that included transactions. */
  ticks: Schema.Array(
    Schema.Struct({
      tick: Schema.Int,
      timestamp: Schema.Number,
      epoch: Schema.Int,
      hashes: Schema.Array(Schema.String)
    })
  ),
  accounts: Schema.Array(
    Schema.Struct({
      identity: Schema.String,
      incoming: Schema.String,
      outgoing: Schema.String,
      incomingCount: Schema.Int,
      outgoingCount: Schema.Int,
      lastIncomingTick: Schema.Int,
      lastOutgoingTick: Schema.Int
    })
  ),
  history: Schema.Array(Schema.Int),
  archived: Schema.Int,
  /** An epoch transition under way (the network's own state, unlike the other injected faults). */
  outageUntil: Schema.NullOr(Schema.Number)
})
type Snapshot = typeof Snapshot.Type

const snapshotOf = (state: State): Snapshot => ({
  version: 1,
  tick: state.tick,
  epoch: state.epoch,
  intervals: state.intervals.map((i) => ({ epoch: i.epoch, firstTick: i.firstTick, lastTick: i.lastTick ?? null })),
  pending: [...state.pending.values()].map((p) => ({ txId: p.txId, encoded: toBase64(encodeTransaction(p.tx)) })),
  txs: [...state.txs.values()],
  ticks: [...state.ticks]
    .filter(([, t]) => t.hashes.length > 0)
    .map(([tick, t]) => ({ tick, timestamp: t.timestamp, epoch: t.epoch, hashes: t.hashes })),
  accounts: [...state.accounts].map(([identity, a]) => ({
    identity,
    incoming: a.incoming.toString(),
    outgoing: a.outgoing.toString(),
    incomingCount: a.incomingCount,
    outgoingCount: a.outgoingCount,
    lastIncomingTick: a.lastIncomingTick,
    lastOutgoingTick: a.lastOutgoingTick
  })),
  history: state.history,
  archived: state.archived,
  outageUntil: state.outageUntil ?? null
})

const decodeSnapshot = Schema.decodeUnknownEffect(Snapshot)

const restore = (state: State, saved: unknown, path: string): Effect.Effect<void, StateFile.StateFileError> =>
  Effect.gen(function* () {
    const snapshot = yield* decodeSnapshot(saved).pipe(
      Effect.mapError(
        (error) => new StateFile.StateFileError({ path, message: `not a Qubic mock state: ${error.message}` })
      )
    )
    state.tick = snapshot.tick
    state.epoch = snapshot.epoch
    state.intervals.length = 0
    for (const i of snapshot.intervals) {
      state.intervals.push({ epoch: i.epoch, firstTick: i.firstTick, lastTick: i.lastTick ?? undefined })
    }
    for (const p of snapshot.pending) {
      const bytes = fromBase64(p.encoded)
      const decoded = bytes === undefined ? undefined : decodeTransaction(bytes)
      if (decoded === undefined || Result.isFailure(decoded)) {
        return yield* new StateFile.StateFileError({ path, message: `pending transaction ${p.txId} does not decode` })
      }
      const tx = decoded.success
      const source = identityFromPublicKey(tx.sourcePublicKey)
      state.pending.set(source, {
        txId: p.txId,
        tx,
        source,
        destination: identityFromPublicKey(tx.destinationPublicKey)
      })
    }
    for (const tx of snapshot.txs) state.txs.set(tx.hash, tx)
    for (const t of snapshot.ticks)
      state.ticks.set(t.tick, { timestamp: t.timestamp, epoch: t.epoch, hashes: [...t.hashes] })
    for (const a of snapshot.accounts) {
      state.accounts.set(a.identity, {
        incoming: BigInt(a.incoming),
        outgoing: BigInt(a.outgoing),
        incomingCount: a.incomingCount,
        outgoingCount: a.outgoingCount,
        lastIncomingTick: a.lastIncomingTick,
        lastOutgoingTick: a.lastOutgoingTick
      })
    }
    state.history.push(...snapshot.history)
    state.archived = snapshot.archived
    state.outageUntil = snapshot.outageUntil ?? undefined
  })

const validateOptions = (options: ChainOptions | undefined): Effect.Effect<void, InvalidInput> => {
  const positiveInt = (value: unknown, path: string, max = 0xffffffff): InvalidInput | undefined =>
    value === undefined || (isCount(value) && value <= max)
      ? undefined
      : InvalidInput.at(path, `Expected an integer between 0 and ${max}`)
  const problem =
    positiveInt(options?.initialTick, "$.initialTick", 0xf0000000) ??
    positiveInt(options?.epoch, "$.epoch", 0xffff) ??
    positiveInt(options?.archiveLag, "$.archiveLag", 10_000) ??
    positiveInt(options?.epochTickGap, "$.epochTickGap", 1_000_000) ??
    positiveInt(options?.peers, "$.peers", 1_000)
  if (problem !== undefined) return Effect.fail(problem)
  if (options?.tickDuration !== undefined) {
    const duration = Duration.fromInput(options.tickDuration)
    if (Option.isNone(duration) || Duration.toMillis(duration.value) <= 0) {
      return Effect.fail(InvalidInput.at("$.tickDuration", "Expected a positive duration"))
    }
  }
  for (const [identity, amount] of Object.entries(options?.balances ?? {})) {
    const path = `$.balances.${identity}`
    const reason = identityProblem(identity)
    if (reason !== undefined) return Effect.fail(InvalidInput.at(path, `Expected a Qubic identity: ${reason}`))
    const ok = typeof amount === "bigint" ? amount >= 0n : Number.isSafeInteger(amount) && amount >= 0
    if (!ok) return Effect.fail(InvalidInput.at(path, "Expected a non-negative integer amount of QU"))
  }
  return Effect.void
}

/**
 * Builds the simulated network; its tick fiber runs in the enclosing scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeChain = Effect.fnUntraced(function* (options?: ChainOptions) {
  yield* validateOptions(options)
  const tickMillis = Duration.toMillis(options?.tickDuration ?? "1 second")
  const lag = options?.archiveLag ?? 2
  const gap = options?.epochTickGap ?? 1000
  const peers = options?.peers ?? 3
  const initialTick = options?.initialTick ?? 20_000_000
  const state: State = {
    tick: initialTick,
    epoch: options?.epoch ?? 160,
    intervals: [{ epoch: options?.epoch ?? 160, firstTick: initialTick, lastTick: undefined }],
    pending: new Map(),
    txs: new Map(),
    ticks: new Map(),
    accounts: new Map(),
    history: [],
    archived: initialTick - 1,
    failBroadcasts: 0,
    failMode: "error",
    stalledUntil: undefined,
    outageUntil: undefined,
    drop: 0,
    dirty: false
  }

  const file = options?.stateFile === undefined ? Option.none() : yield* StateFile.acquire(options.stateFile)
  if (options?.stateFile !== undefined && Option.isNone(file)) {
    yield* Effect.logWarning(
      `Qubic mock: ${options.stateFile} belongs to another running process; this network keeps its state in memory only`
    )
  }
  const saved = Option.isSome(file) ? yield* file.value.read : undefined
  if (saved !== undefined) {
    yield* restore(state, saved, options?.stateFile ?? "")
  } else {
    for (const [identity, amount] of Object.entries(options?.balances ?? {})) {
      account(state, identity).incoming = BigInt(amount)
    }
    // Start as a network that has been running: enough finished ticks for the archive to hold some
    const startedAt = yield* Clock.currentTimeMillis
    for (let i = 0; i <= lag; i++) step(state, startedAt, lag, gap)
    state.dirty = true
  }

  // Saves when something worth keeping changed, and every 30 ticks for the tick itself; a failed save is logged
  // and retried at the next one
  let sinceSave = 0
  const save = (force: boolean): Effect.Effect<void> => {
    if (Option.isNone(file) || !(force || state.dirty || sinceSave >= 30)) return Effect.void
    const snapshot = snapshotOf(state)
    state.dirty = false
    sinceSave = 0
    return file.value.write(snapshot).pipe(
      Effect.catch((error) =>
        Effect.sync(() => {
          state.dirty = true
        }).pipe(Effect.andThen(Effect.logWarning(`Qubic mock: ${error.message}`)))
      )
    )
  }
  yield* save(false)
  yield* Effect.addFinalizer(() => save(true))

  yield* Effect.sleep(tickMillis).pipe(
    Effect.andThen(Clock.currentTimeMillis),
    Effect.flatMap((now) =>
      Effect.sync(() => {
        step(state, now, lag, gap)
        sinceSave++
      })
    ),
    Effect.andThen(Effect.suspend(() => save(false))),
    Effect.forever,
    Effect.forkScoped
  )

  const fail = (operation: string, code: GrpcCode, message: string) =>
    Effect.fail(QubicApiError.of(operation, code, message))

  // Tick checks of the archive (qubic/archive-query-service TickWithinBoundsInterceptor)
  const checkArchivedTick = (operation: string, tick: number): Effect.Effect<void, QubicApiError> => {
    if (tick > state.archived) {
      return fail(
        operation,
        GrpcCode.FailedPrecondition,
        `requested tick number ${tick} is greater than last processed tick ${state.archived}`
      )
    }
    for (const interval of state.intervals) {
      if (tick < interval.firstTick) {
        return fail(
          operation,
          GrpcCode.OutOfRange,
          `provided tick number ${tick} was skipped by the system, next available tick is ${interval.firstTick}`
        )
      }
      if (tick <= (interval.lastTick ?? state.archived)) return Effect.void
    }
    return Effect.void
  }

  const tickInfo: Effect.Effect<TickInfo> = Effect.sync(() => ({
    tick: state.tick,
    duration: Math.round(tickMillis / 1000),
    epoch: state.epoch,
    initialTick: currentInterval(state).firstTick
  }))

  const broadcastTransaction = (
    encodedTransaction: string
  ): Effect.Effect<BroadcastTransactionResponse, QubicApiError> =>
    Effect.suspend(() => {
      const operation = "broadcastTransaction"
      const bytes = fromBase64(encodedTransaction)
      if (bytes === undefined)
        return fail(operation, GrpcCode.InvalidArgument, "illegal base64 data in encodedTransaction")
      // The gateway answers a short read with 500 (its unmarshalling error), other malformed bytes with 400
      if (bytes.length < 144 || bytes.length < 144 + (bytes[78]! | (bytes[79]! << 8))) {
        return fail(operation, GrpcCode.Internal, "unmarshalling transaction: unexpected EOF")
      }
      const decoded = decodeTransaction(bytes)
      if (Result.isFailure(decoded)) {
        return fail(operation, GrpcCode.InvalidArgument, `invalid transaction: ${decoded.failure}`)
      }
      const tx = decoded.success
      if (state.outageUntil !== undefined) {
        return fail(operation, GrpcCode.Unavailable, "network unreachable: epoch transition in progress")
      }
      if (tx.tick <= state.tick) {
        return fail(
          operation,
          GrpcCode.InvalidArgument,
          `Target tick: ${tx.tick} for the transaction should be greater than max tick: ${state.tick}`
        )
      }
      const txId = identityFromPublicKey(k12(bytes), { lowercase: true })
      if (state.failBroadcasts > 0) {
        state.failBroadcasts -= 1
        if (state.failMode === "error") return fail(operation, GrpcCode.Internal, "broadcasting tx: no peer reachable")
        return Effect.succeed({ peersBroadcasted: 0, encodedTransaction, transactionId: txId })
      }
      const source = identityFromPublicKey(tx.sourcePublicKey)
      const existing = state.pending.get(source)
      // One pending transaction per source: a higher tick overwrites it, a lower or equal one is ignored
      if (existing === undefined || tx.tick > existing.tx.tick) {
        state.pending.set(source, { txId, tx, source, destination: identityFromPublicKey(tx.destinationPublicKey) })
        state.dirty = true
      }
      // Saved before the answer, so an accepted transaction survives a crash right after it
      return Effect.as(save(false), { peersBroadcasted: peers, encodedTransaction, transactionId: txId })
    })

  const balance = (identity: string): Effect.Effect<Balance, QubicApiError> =>
    Effect.suspend(() => {
      const reason = identityProblem(identity)
      if (reason !== undefined) return fail("balance", GrpcCode.InvalidArgument, `invalid identity: ${reason}`)
      const a = state.accounts.get(identity)
      return Effect.succeed({
        id: identity,
        balance: ((a?.incoming ?? 0n) - (a?.outgoing ?? 0n)).toString(),
        validForTick: state.tick,
        latestIncomingTransferTick: a?.lastIncomingTick ?? 0,
        latestOutgoingTransferTick: a?.lastOutgoingTick ?? 0,
        incomingAmount: (a?.incoming ?? 0n).toString(),
        outgoingAmount: (a?.outgoing ?? 0n).toString(),
        numberOfIncomingTransfers: a?.incomingCount ?? 0,
        numberOfOutgoingTransfers: a?.outgoingCount ?? 0
      })
    })

  const lastProcessedTick: Effect.Effect<LastProcessedTick> = Effect.sync(() => {
    const interval = state.intervals.findLast((i) => i.firstTick <= state.archived) ?? (state.intervals[0] as Interval)
    return { tickNumber: state.archived, epoch: interval.epoch, intervalInitialTick: interval.firstTick }
  })

  const processedTickIntervals: Effect.Effect<ReadonlyArray<ProcessedTickInterval>> = Effect.sync(() =>
    state.intervals
      .filter((i) => i.firstTick <= state.archived)
      .map((i) => ({
        epoch: i.epoch,
        firstTick: i.firstTick,
        lastTick: Math.min(i.lastTick ?? state.archived, state.archived)
      }))
      .filter((i) => i.lastTick >= i.firstTick)
  )

  const transactionByHash = (hash: string): Effect.Effect<ArchivedTransaction, QubicApiError> =>
    Effect.suspend(() => {
      const operation = "transactionByHash"
      const reason = identityProblem(hash, { lowercase: true })
      if (reason !== undefined) return fail(operation, GrpcCode.InvalidArgument, `invalid id format: ${reason}`)
      const tx = state.txs.get(hash)
      // The archive answers only for ticks it has processed
      if (tx === undefined || tx.tickNumber > state.archived) {
        return fail(operation, GrpcCode.NotFound, "transaction not found")
      }
      return Effect.succeed(tx)
    })

  const tickData = (tickNumber: number): Effect.Effect<TickData, QubicApiError> =>
    Effect.map(checkArchivedTick("tickData", tickNumber), () => {
      const tick = state.ticks.get(tickNumber)
      const epoch = tick?.epoch ?? state.epoch
      const seed = bytesOfTick(tickNumber, epoch)
      return {
        tickNumber,
        epoch,
        computorIndex: tickNumber % 676,
        timestamp: String(tick?.timestamp ?? 0),
        varStruct: "",
        timeLock: toBase64(k12(seed)),
        transactionHashes: [...(tick?.hashes ?? [])],
        contractFees: [],
        signature: toBase64(k12(seed, 64))
      }
    })

  const transactionsForTick = (tickNumber: number): Effect.Effect<ReadonlyArray<ArchivedTransaction>, QubicApiError> =>
    Effect.map(checkArchivedTick("transactionsForTick", tickNumber), () =>
      (state.ticks.get(tickNumber)?.hashes ?? []).map((hash) => state.txs.get(hash)!)
    )

  const faults: ChainFaults = {
    failBroadcasts: (count, opts) =>
      Effect.sync(() => {
        state.failBroadcasts = Math.max(0, Math.floor(count))
        state.failMode = opts?.mode ?? "error"
      }),
    stallTicks: (duration) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        state.stalledUntil = duration === undefined ? Number.POSITIVE_INFINITY : now + Duration.toMillis(duration)
      }),
    resumeTicks: Effect.sync(() => {
      state.stalledUntil = undefined
    }),
    epochTransition: (outage) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        state.outageUntil = now + Duration.toMillis(outage)
        state.pending.clear()
        state.dirty = true
      }),
    dropTransactions: (count) =>
      Effect.sync(() => {
        state.drop = Math.max(0, Math.floor(count))
      })
  }

  return Chain.of({
    tickInfo,
    broadcastTransaction,
    balance,
    lastProcessedTick,
    processedTickIntervals,
    transactionByHash,
    tickData,
    transactionsForTick,
    faults,
    pending: (identity) =>
      Effect.sync(() => Option.map(Option.fromNullishOr(state.pending.get(identity)), (p) => p.txId))
  })
})

/**
 * The simulated network as a layer. It provides both `Chain` (with its faults) and `QubicNode`, so the anchor
 * layers and the mock server run on it unchanged.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerChain = (
  options?: ChainOptions
): Layer.Layer<Chain | QubicNode, InvalidInput | StateFile.StateFileError> =>
  Layer.effectContext(
    Effect.map(makeChain(options), (chain) => Context.make(Chain, chain).pipe(Context.add(QubicNode, chain)))
  )
