/**
 * Branded identifiers and their generators.
 *
 * Generated ids are a type prefix plus a UUIDv7 (time-ordered, so store indexes stay append-mostly and
 * listings sort by creation). The time part comes from `Clock`, so tests under `TestClock` get stable ordering.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Schema } from "effect"

const idCheck = Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, {
  message: "Expected an id: 1-128 characters of letters, digits and _ . : @ -, starting with a letter or digit"
})
const hex64 = Schema.isPattern(/^[0-9a-f]{64}$/, { message: "Expected a SHA-256 hash: 64 lowercase hex digits" })

/**
 * @category ids
 * @since 0.1.0
 */
export const TaskId = Schema.String.check(idCheck).pipe(Schema.brand("TaskId"))
export type TaskId = typeof TaskId.Type
/**
 * @category ids
 * @since 0.1.0
 */
export const PlanId = Schema.String.check(idCheck).pipe(Schema.brand("PlanId"))
export type PlanId = typeof PlanId.Type
/**
 * A step's id is unique within its plan (the template's step key, e.g. `onchain_action`).
 *
 * @category ids
 * @since 0.1.0
 */
export const StepId = Schema.String.check(idCheck).pipe(Schema.brand("StepId"))
export type StepId = typeof StepId.Type
/**
 * @category ids
 * @since 0.1.0
 */
export const JobId = Schema.String.check(idCheck).pipe(Schema.brand("JobId"))
export type JobId = typeof JobId.Type
/**
 * An agent (worker) id: the identity that holds job leases.
 *
 * @category ids
 * @since 0.1.0
 */
export const AgentId = Schema.String.check(idCheck).pipe(Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type
/**
 * The SHA-256 (hex) of a ledger entry.
 *
 * @category ids
 * @since 0.1.0
 */
export const EntryHash = Schema.String.check(hex64).pipe(Schema.brand("EntryHash"))
export type EntryHash = typeof EntryHash.Type
/**
 * A policy set's version: the SHA-256 (hex) of its canonical JSON.
 *
 * @category ids
 * @since 0.1.0
 */
export const PolicyVersion = Schema.String.check(hex64).pipe(Schema.brand("PolicyVersion"))
export type PolicyVersion = typeof PolicyVersion.Type
/**
 * Any SHA-256 digest as 64 lowercase hex digits.
 *
 * @category ids
 * @since 0.1.0
 */
export const Sha256Hex = Schema.String.check(hex64)
export type Sha256Hex = typeof Sha256Hex.Type

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

const hex = (bytes: Uint8Array, from: number, to: number): string => {
  let out = ""
  for (let i = from; i < to; i++) out += HEX[bytes[i]!]!
  return out
}

// Random bytes are drawn 4 KiB at a time: one getRandomValues call per id cost more than the rest of an
// enqueue in the memory queue
const pool = new Uint8Array(4096)
let poolOffset = pool.length

/**
 * A UUIDv7 (RFC 9562) for the given millisecond time.
 *
 * @category constructors
 * @since 0.1.0
 */
export const uuidv7 = (millis: number): string => {
  if (poolOffset + 10 > pool.length) {
    crypto.getRandomValues(pool)
    poolOffset = 0
  }
  const bytes = new Uint8Array(16)
  bytes.set(pool.subarray(poolOffset, poolOffset + 10), 6)
  poolOffset += 10
  let ts = Math.max(0, Math.floor(millis))
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ts % 256
    ts = Math.floor(ts / 256)
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  return `${hex(bytes, 0, 4)}-${hex(bytes, 4, 6)}-${hex(bytes, 6, 8)}-${hex(bytes, 8, 10)}-${hex(bytes, 10, 16)}`
}

const generator = <B>(prefix: string, make: (s: string) => B): Effect.Effect<B> =>
  Effect.map(Clock.currentTimeMillis, (now) => make(`${prefix}_${uuidv7(now)}`))

/**
 * @category constructors
 * @since 0.1.0
 */
export const makeTaskId: Effect.Effect<TaskId> = generator("task", TaskId.make)
/**
 * @category constructors
 * @since 0.1.0
 */
export const makePlanId: Effect.Effect<PlanId> = generator("plan", PlanId.make)
/**
 * @category constructors
 * @since 0.1.0
 */
export const makeJobId: Effect.Effect<JobId> = generator("job", JobId.make)
/**
 * @category constructors
 * @since 0.1.0
 */
export const makeAgentId: Effect.Effect<AgentId> = generator("agent", AgentId.make)
