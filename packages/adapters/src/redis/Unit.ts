/**
 * How a unit of work is made atomic on Redis, for the Redis stores and `layerUnitOfWork` (not part of the public
 * API).
 *
 * Redis has no transaction that reads and then writes, so a unit is optimistic. While it runs, the stores do not
 * write: each write is checked against what Redis holds (and what the unit wrote before it), its result worked out
 * in the client, and the script that would have made it is gathered as an operation, with guards on what the
 * check relied on (a task's stored version, an idempotency key still free, the ledger's head, a job's lease).
 * At commit, one Lua script checks every guard first and, only when all hold, runs every gathered operation:
 * Redis runs a script alone, so other clients see all of the unit or none of it, and a process killed before its
 * commit leaves nothing behind. When a guard no longer holds, another writer got there first: nothing was written,
 * and the unit runs again from the start (its reads see the other writer's commit).
 *
 * The gathered scripts are the stores' own (wrapped as Lua functions whose parameters shadow `KEYS` and `ARGV`),
 * so a write in a unit does exactly what it does alone.
 *
 * @since 0.1.0
 */
import type { Job, LedgerEntry, LedgerHead, TaskRecord } from "@mandate/core"
import { Context, Effect, Semaphore } from "effect"
import { Redis } from "effect/persistence"

/**
 * One gathered write: the named script with its keys and arguments.
 *
 * @category models
 * @since 0.1.0
 */
export interface Operation {
  readonly name: string
  readonly keys: ReadonlyArray<string>
  readonly args: ReadonlyArray<string>
}

/**
 * What an operation relied on: field `field` of hash `key` holds `expected` (`null`: the field is absent). A guard
 * with the field `valueOfKey` is on the string value of `key` itself (the policy store's active pointer).
 *
 * @category models
 * @since 0.1.0
 */
export interface Guard {
  readonly key: string
  readonly field: string
  readonly expected: string | null
}

/**
 * The field of a guard on a string key's own value rather than on a hash field (no hash field is empty).
 *
 * @category models
 * @since 0.1.0
 */
export const valueOfKey = ""

/**
 * The ledger as the unit left it: its head and the nodes it wrote (the ledger reads them for its next append).
 *
 * @category models
 * @since 0.1.0
 */
export interface LedgerOverlay {
  head: LedgerHead
  readonly nodes: Map<string, Uint8Array>
  readonly entries: Array<LedgerEntry>
}

/**
 * A running unit: what it gathered, and what it wrote as its own reads see it.
 *
 * @category models
 * @since 0.1.0
 */
export interface UnitState {
  /** The Redis the unit commits to: a store on another Redis writes directly. */
  readonly redis: Redis.Redis["Service"]
  operations: Array<Operation>
  guards: Map<string, Guard>
  /** Task records created or saved in the unit, by task key. */
  tasks: Map<string, TaskRecord>
  /** Plans stored in the unit, by plan key (JSON). */
  plans: Map<string, string>
  /** Idempotency fields the unit took (jobs' and tasks'), with what they lead to. */
  claimed: Map<string, Job | string>
  ledger: LedgerOverlay | undefined
  /** Policy sets published in the unit (version → stored JSON), and the version it activated, if any. */
  policySets: Map<string, string>
  activePolicy: string | undefined
  /** Whether the unit holds this process's ledger lock (released when the unit ends). */
  ledgerLocked: boolean
}

/**
 * The unit running in this fiber, if any.
 *
 * @category models
 * @since 0.1.0
 */
export const CurrentUnit = Context.Reference<UnitState | undefined>("@mandate/adapters/redis/Unit/CurrentUnit", {
  defaultValue: () => undefined
})

/**
 * A fresh unit over `redis`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeState = (redis: Redis.Redis["Service"]): UnitState => ({
  redis,
  operations: [],
  guards: new Map(),
  tasks: new Map(),
  plans: new Map(),
  claimed: new Map(),
  ledger: undefined,
  policySets: new Map(),
  activePolicy: undefined,
  ledgerLocked: false
})

/**
 * The unit a store on `redis` gathers its writes into, if one runs in this fiber on the same Redis.
 *
 * @category constructors
 * @since 0.1.0
 */
export const unitOf = (redis: Redis.Redis["Service"]): Effect.Effect<UnitState | undefined> =>
  Effect.map(CurrentUnit, (unit) => (unit !== undefined && unit.redis === redis ? unit : undefined))

/**
 * A gathered operation running `script` with these parameters (split into keys and arguments as the script says).
 *
 * @category constructors
 * @since 0.1.0
 */
export const operation = <Params extends ReadonlyArray<any>>(
  name: string,
  script: Redis.Script<{ readonly params: Params; readonly result: unknown }>,
  ...params: Params
): Operation => {
  const all = script.params(...params).map(String)
  const keys = script.numberOfKeys(...params)
  return { name, keys: all.slice(0, keys), args: all.slice(keys) }
}

/**
 * Records a guard; the first guard on a field wins (later ones rely on the unit's own writes).
 *
 * @category constructors
 * @since 0.1.0
 */
export const guard = (unit: UnitState, key: string, field: string, expected: string | null): void => {
  const id = `${key}\u0000${field}`
  if (!unit.guards.has(id)) unit.guards.set(id, { key, field, expected })
}

/**
 * What a nested unit restores when it fails: the state as it was when it began.
 *
 * @category constructors
 * @since 0.1.0
 */
export const savepoint = (unit: UnitState): (() => void) => {
  const operations = unit.operations.slice()
  const guards = new Map(unit.guards)
  const tasks = new Map(unit.tasks)
  const plans = new Map(unit.plans)
  const claimed = new Map(unit.claimed)
  const policySets = new Map(unit.policySets)
  const activePolicy = unit.activePolicy
  const ledger =
    unit.ledger === undefined
      ? undefined
      : { head: unit.ledger.head, nodes: new Map(unit.ledger.nodes), entries: unit.ledger.entries.slice() }
  return () => {
    unit.operations = operations
    unit.guards = guards
    unit.tasks = tasks
    unit.plans = plans
    unit.claimed = claimed
    unit.ledger = ledger
    unit.policySets = policySets
    unit.activePolicy = activePolicy
  }
}

/**
 * The commit found a guard that no longer holds: nothing was written.
 *
 * @category errors
 * @since 0.1.0
 */
export class CommitConflict {
  readonly _tag = "CommitConflict"
  readonly key: string
  readonly field: string
  constructor(key: string, field: string) {
    this.key = key
    this.field = field
  }
}

// The commit script over a set of named operation scripts. ARGV: guard count, then key, field, mode ("=" or
// "absent"; on a string key's value: "value=" or "valueabsent"), value per guard; operation count, then name, key count, argument count, keys…, arguments… per
// operation. Returns {'conflict', key, field} or {'committed', reply per operation}
const commitLua = (operations: Readonly<Record<string, string>>): string => {
  const functions = Object.entries(operations)
    .map(([name, lua]) => `ops[${JSON.stringify(name)}] = function(KEYS, ARGV)\n${lua}\nend`)
    .join("\n")
  return `
local ops = {}
${functions}
local a = 1
local guards = tonumber(ARGV[a]); a = a + 1
for i = 1, guards do
  local key, field, mode, value = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]; a = a + 4
  local found
  if mode == 'value=' or mode == 'valueabsent' then found = redis.call('GET', key) else found = redis.call('HGET', key, field) end
  if mode == 'absent' or mode == 'valueabsent' then
    if found then return {'conflict', key, field} end
  elseif found ~= value then return {'conflict', key, field} end
end
local count = tonumber(ARGV[a]); a = a + 1
local replies = {}
for i = 1, count do
  local name, nkeys, nargs = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]); a = a + 3
  local keys, args = {}, {}
  for j = 1, nkeys do keys[j] = ARGV[a]; a = a + 1 end
  for j = 1, nargs do args[j] = ARGV[a]; a = a + 1 end
  replies[i] = ops[name](keys, args)
end
return {'committed', replies}
`
}

/**
 * Commits gathered units: one script call per unit, guards first.
 *
 * @category models
 * @since 0.1.0
 */
export interface Committer {
  readonly commit: (unit: UnitState) => Effect.Effect<ReadonlyArray<unknown>, CommitConflict | Redis.RedisError>
}

/**
 * A committer for units whose operations are among `operations` (name → the operation's Lua script).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeCommitter = (
  redis: Redis.Redis["Service"],
  operations: Readonly<Record<string, string>>
): Committer => {
  const lua = commitLua(operations)
  // A distinct script per set of operations (the SHA-1 names it on the server). KEYS[1] is one of the unit's keys,
  // unused by the script: like every script of ours it names one key, so a cluster routes it to the prefix's slot
  const script = Redis.script((...args: ReadonlyArray<string>) => args, { lua, numberOfKeys: 1 }).withReturnType<
    readonly ["conflict", string, string] | readonly ["committed", ReadonlyArray<unknown>]
  >()
  const run = redis.eval(script)
  return {
    commit: (unit) =>
      Effect.suspend(() => {
        if (unit.operations.length === 0) return Effect.succeed([])
        const args: Array<string> = [unit.operations[0]!.keys[0] ?? "", String(unit.guards.size)]
        for (const g of unit.guards.values()) {
          const mode = g.field === valueOfKey ? "value" : ""
          args.push(g.key, g.field, g.expected === null ? `${mode}absent` : `${mode}=`, g.expected ?? "")
        }
        args.push(String(unit.operations.length))
        for (const op of unit.operations) {
          if (operations[op.name] === undefined) {
            return Effect.die(new Error(`Redis unit: no operation "${op.name}" in this committer`))
          }
          args.push(op.name, String(op.keys.length), String(op.args.length), ...op.keys, ...op.args)
        }
        return Effect.flatMap(run(...args), (reply) =>
          reply[0] === "conflict"
            ? Effect.fail(new CommitConflict(String(reply[1]), String(reply[2])))
            : Effect.succeed(reply[1])
        )
      })
  }
}

// One ledger lock per Redis client in this process: units that append hold it until they end, so appenders in one
// process queue instead of conflicting at commit (appenders in other processes are caught by the head's guard)
const ledgerLocks = new WeakMap<object, Semaphore.Semaphore>()

/**
 * This process's ledger lock for `redis`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ledgerLockOf = (redis: Redis.Redis["Service"]): Semaphore.Semaphore => {
  let lock = ledgerLocks.get(redis)
  if (lock === undefined) {
    lock = Semaphore.makeUnsafe(1)
    ledgerLocks.set(redis, lock)
  }
  return lock
}

/**
 * Takes this process's ledger lock for the unit (once), to be released by `releaseLedgerLock` when it ends.
 *
 * @category constructors
 * @since 0.1.0
 */
export const lockLedger = (unit: UnitState): Effect.Effect<void> =>
  unit.ledgerLocked
    ? Effect.void
    : Effect.uninterruptibleMask((restore) =>
        Effect.map(restore(ledgerLockOf(unit.redis).take(1)), () => {
          unit.ledgerLocked = true
        })
      )

/**
 * Releases the ledger lock if the unit holds it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const releaseLedgerLock = (unit: UnitState): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!unit.ledgerLocked) return Effect.void
    unit.ledgerLocked = false
    return Effect.asVoid(ledgerLockOf(unit.redis).release(1))
  })

/**
 * Runs `effect` as a unit of its own on `redis` and commits it with `committer`: gathered, then written at once.
 * Fails with `CommitConflict` when a guard no longer held (nothing was written; run it again).
 *
 * @category constructors
 * @since 0.1.0
 */
export const runUnit = <A, E, R>(
  redis: Redis.Redis["Service"],
  committer: Committer,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CommitConflict | Redis.RedisError, R> =>
  Effect.suspend(() => {
    const unit = makeState(redis)
    return Effect.provideService(effect, CurrentUnit, unit).pipe(
      Effect.tap(() => committer.commit(unit)),
      Effect.ensuring(releaseLedgerLock(unit))
    )
  })
