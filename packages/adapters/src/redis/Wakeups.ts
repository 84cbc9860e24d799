/**
 * The Redis queue's wake-ups: one fiber per layer blocks on the queues' signal streams (`XREAD BLOCK`) on a
 * reserved connection of its own, and opens the latches of the subscribers whose streams moved. Every script that
 * makes work claimable appends to its queue's stream, so idle workers do not poll.
 *
 * A stream's last entry is taken when its first subscriber comes, so no signal between two waits is lost; after a
 * lost connection the fiber reconnects (backing off) and reads what it missed.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Effect, Exit, Latch, type Scope } from "effect"
import type { Redis } from "effect/persistence"

/**
 * Watches signal streams for a layer.
 *
 * @category models
 * @since 0.1.0
 */
export interface SignalReader {
  /** A latch that opens whenever one of `streams` gets an entry, until the current scope closes. */
  readonly watch: (streams: ReadonlyArray<string>) => Effect.Effect<Latch.Latch, Redis.RedisError, Scope.Scope>
  /**
   * Opens the latches watching `stream` in this process at once, for a write this process made that it also
   * signalled in Redis: a subscriber here need not wait for the signal's round trip through the reader.
   */
  readonly notify: (stream: string) => void
  /**
   * This reader's token: a script that signals with it as its entries' origin (`'w'`) is one whose writer
   * `notify`s this process's subscribers itself, so the reader does not open their latches again for it (that
   * second wake-up cost an idle worker an empty claim and a due-time read per job).
   */
  readonly origin: string
}

// The streams watched, the last entry seen in each, and whose latches to open
interface Watched {
  lastId: string
  readonly latches: Set<Latch.Latch>
}

// An entry's origin (its 'w' field): RESP2 gives the fields as [field, value, …], RESP3 may give a map
const originOf = (fields: unknown): unknown => {
  if (Array.isArray(fields)) {
    for (let i = 0; i + 1 < fields.length; i += 2) if (String(fields[i]) === "w") return fields[i + 1]
    return undefined
  }
  if (fields instanceof Map) return fields.get("w")
  return typeof fields === "object" && fields !== null ? (fields as Record<string, unknown>).w : undefined
}

// The last entry of each stream an XREAD reply has entries for, and whether any of them came from elsewhere than
// `origin`: RESP3 answers with a map of stream → entries, RESP2 with [[stream, entries], …]
const entriesOf = (reply: unknown, origin: string): Array<readonly [string, string, boolean]> => {
  const pairs: Array<readonly [unknown, unknown]> =
    reply === null || reply === undefined
      ? []
      : Array.isArray(reply)
        ? reply.map((pair) => [pair[0], pair[1]] as const)
        : reply instanceof Map
          ? [...reply.entries()]
          : Object.entries(reply as Record<string, unknown>)
  const out: Array<readonly [string, string, boolean]> = []
  for (const [stream, entries] of pairs) {
    if (!Array.isArray(entries) || entries.length === 0) continue
    const last = entries[entries.length - 1]
    if (!Array.isArray(last)) continue
    let foreign = false
    for (const entry of entries) {
      if (!Array.isArray(entry) || String(originOf(entry[1])) !== origin) {
        foreign = true
        break
      }
    }
    out.push([String(stream), String(last[0]), foreign])
  }
  return out
}

/**
 * The signal reader of one layer; its fiber starts with the first subscriber, in `scope`, and runs on the real
 * clock (a `TestClock` must not stall the blocking reads).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeSignalReader = (redis: Redis.Redis["Service"], scope: Scope.Scope): SignalReader => {
  const watched = new Map<string, Watched>()
  const watchersChanged = Latch.makeUnsafe(false)
  const realClock = Clock.Clock.defaultValue()
  // Unique per reader (per layer), not secret: a signal with it was already delivered here by `notify`
  const origin = crypto.randomUUID()
  let started = false

  const readLoop = Effect.gen(function* () {
    let failures = 0
    while (true) {
      if (watched.size === 0) {
        yield* watchersChanged.await
        watchersChanged.closeUnsafe()
        continue
      }
      const exit = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            const connection = yield* redis.reserve
            failures = 0
            while (true) {
              watchersChanged.closeUnsafe()
              const streams = [...watched.keys()]
              if (streams.length === 0) return
              const ids = streams.map((stream) => watched.get(stream)!.lastId)
              // BLOCK 1 s: a stream a new subscriber added is watched from the next call on (its last id was
              // taken when it subscribed, so nothing it should see is lost meanwhile)
              const reply = yield* connection.send(
                "XREAD",
                "COUNT",
                "100",
                "BLOCK",
                "1000",
                "STREAMS",
                ...streams,
                ...ids
              )
              // A signal of this process' own enqueue is answered together with that enqueue, and the claim of
              // the worker it woke, on the layer's connection: yield, so that their answers are read first and the
              // job starts before this fiber handles the signal (the next XREAD waits a turn, nothing is lost)
              yield* Effect.yieldNow
              for (const [stream, lastId, foreign] of entriesOf(reply, origin)) {
                const entry = watched.get(stream)
                if (entry === undefined) continue
                entry.lastId = lastId
                if (foreign) for (const latch of entry.latches) latch.openUnsafe()
              }
            }
          })
        )
      )
      if (Exit.isFailure(exit)) {
        if (Cause.hasInterruptsOnly(exit.cause)) return
        // The connection was lost or refused: wait (growing) and reserve a new one; subscribers poll meanwhile
        failures++
        yield* Effect.logDebug(`queue wake-up reader: ${Cause.pretty(exit.cause)}`)
        yield* Effect.sleep(Math.min(1_000, 25 * 2 ** Math.min(failures, 6)))
      }
    }
  }).pipe(Effect.provideService(Clock.Clock, realClock))

  const lastIdOf = (stream: string) =>
    redis
      .send<ReadonlyArray<ReadonlyArray<unknown>>>("XREVRANGE", stream, "+", "-", "COUNT", "1")
      .pipe(Effect.map((entries) => (entries.length > 0 ? String(entries[0]![0]) : "0-0")))

  const watch = (streams: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const latch = Latch.makeUnsafe(false)
      for (const stream of streams) {
        let entry = watched.get(stream)
        if (entry === undefined) {
          const lastId = yield* lastIdOf(stream)
          entry = watched.get(stream) ?? { lastId, latches: new Set() }
          watched.set(stream, entry)
          watchersChanged.openUnsafe()
        }
        entry.latches.add(latch)
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const stream of streams) {
            const entry = watched.get(stream)
            if (entry === undefined) continue
            entry.latches.delete(latch)
            if (entry.latches.size === 0) watched.delete(stream)
          }
        })
      )
      if (!started) {
        started = true
        yield* Effect.forkIn(readLoop, scope)
      }
      return latch
    })

  const notify = (stream: string) => {
    const entry = watched.get(stream)
    if (entry !== undefined) for (const latch of entry.latches) latch.openUnsafe()
  }

  return { watch, notify, origin }
}
