/**
 * Where Mandate's data lives in Redis: the key prefix every Redis layer takes as an option, and the one helper
 * that builds every key from it.
 *
 * All keys start with the prefix (`mandate:` unless configured), so several applications, or several test runs,
 * can share one Redis. The layout is defined here once; services and their Lua scripts receive finished keys.
 * Every family below ends with its variable part, and no family's fixed part extends another's, so two families
 * can never produce the same key (`task:<id>` and `tasks:all` differ at the fifth character).
 *
 * The scripts that walk an index (listing tasks) read the records of the ids they find, so those keys cannot all
 * be declared up front. That is fine on a single Redis (the supported deployment, with replicas for failover);
 * on Redis Cluster, put a hash tag in the prefix (`{mandate}:`) so that every key lands in the same slot.
 *
 * @since 0.1.0
 */
import { decode, type InvalidInput, type Task } from "@mandate/core"
import { type Effect, Schema } from "effect"

/**
 * A key prefix Mandate accepts: 1 to 64 printable characters without whitespace.
 *
 * @category models
 * @since 0.1.0
 */
export const Prefix = Schema.String.check(
  Schema.isPattern(/^[\x21-\x7e]{1,64}$/, {
    message: "Expected a key prefix: 1-64 printable ASCII characters without whitespace"
  })
)

/**
 * The prefix used when none is configured.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultPrefix = "mandate:"

/**
 * Options every per-service Redis layer takes.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisOptions {
  /** Prepended to every key (default `mandate:`), so several applications can share one Redis. */
  readonly prefix?: string | undefined
}

/**
 * The validated prefix of `options`; a bad prefix fails with `InvalidInput` at `$.prefix`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolvePrefix = (options?: RedisOptions): Effect.Effect<string, InvalidInput> =>
  decode(Prefix, "$.prefix")(options?.prefix ?? defaultPrefix)

/**
 * Every key Mandate uses under one prefix.
 *
 * @category models
 * @since 0.1.0
 */
export interface Keys {
  readonly prefix: string
  /** Hash of one task: its record (JSON), version, state, kind, requester and creation sequence. */
  readonly task: (taskId: string) => string
  /** The prefix of `task` keys, for scripts that read the records of the ids an index holds. */
  readonly taskPrefix: string
  /** Counter handing out creation sequence numbers (the score of every task index). */
  readonly taskSequence: string
  /** Sorted set of every task id, scored by creation sequence. */
  readonly tasksAll: string
  /** Sorted set of the task ids in one state (exact: moved by every save). */
  readonly tasksByState: (state: Task.TaskState) => string
  /** Sorted set of task ids of one kind (candidates: a listing checks the record's kind). */
  readonly tasksByKind: (kind: string) => string
  /** Sorted set of task ids one principal requested (candidates, like `tasksByKind`). */
  readonly tasksByRequester: (principalId: string) => string
  /** Hash from (requester, idempotency key) to task id. */
  readonly taskIdempotency: string
  /** One stored plan (JSON). */
  readonly plan: (planId: string) => string
  /** The prefix under which `RateLimiter.layerStoreRedis` keeps its counters. */
  readonly rateLimit: string
  /** Hash of one agent: its registration (JSON), registration and heartbeat times, load. */
  readonly agent: (agentId: string) => string
  /** Set of every agent id. */
  readonly agentsAll: string
  /** Set of the agent ids of one pool. */
  readonly agentsByPool: (pool: string) => string
  /** The queue's keys (see `queueKeyFamilies`). */
  readonly queue: QueueKeys
  /** The ledger's keys. */
  readonly ledger: {
    /** Hash: the head record (`size`, `lastHash`) appends continue from. */
    readonly head: string
    /** Hash from seq to the stored entry (JSON). */
    readonly entries: string
    /** Hash from entry hash to seq. */
    readonly byHash: string
    /** List of the seqs of one task's entries, in append order. */
    readonly byTask: (taskId: string) => string
    /** The prefix of `byTask` keys. */
    readonly byTaskPrefix: string
    /** Hash from `level:index` to a Merkle node's hash (hex). */
    readonly nodes: string
    /** Hash from size to a signed checkpoint (JSON). */
    readonly checkpoints: string
    /** Sorted set of checkpoint sizes. */
    readonly checkpointSizes: string
    /** Hash from size to the anchor receipt of that checkpoint (JSON). */
    readonly anchors: string
  }
  /** The policy store's keys. */
  readonly policy: {
    /** Hash from version to a published set and its publish time (JSON). */
    readonly sets: string
    /** Sorted set of versions by publish sequence. */
    readonly order: string
    /** Counter handing out publish sequence numbers. */
    readonly sequence: string
    /** String: the active version. */
    readonly active: string
  }
}

/**
 * The queue's key layout, once: each family is a fixed part followed by its variable part (a job id, a queue
 * name, or `queue/pool` for a bucket: `/` is outside the alphabet of queue and pool names, so the pair is
 * unambiguous; the pool-less bucket is `queue/`). `makeKeys` renders it as TypeScript functions, and the queue's
 * scripts render it as Lua expressions (a script discovers job ids and their queues as it runs, so it cannot
 * receive every key up front).
 *
 * @category constants
 * @since 0.1.0
 */
export const queueKeyFamilies = {
  /** Hash of one job's fields. */
  job: "job:",
  /** Sorted set of a bucket's ready jobs, scored by priority rank · 2^42 + runAt. */
  ready: "jobs:ready:",
  /** Sorted set of a bucket's delayed jobs (and failed ones waiting to retry), scored by runAt. */
  delayed: "jobs:delayed:",
  /** Set of a queue's pools that have a bucket ("" for the pool-less one). */
  pools: "jobs:pools:",
  /** Sorted set of a queue's job ids by creation sequence (for `list`). */
  list: "jobs:list:",
  /** Hash of a queue's counters: jobs per state, pending jobs per priority, failed attempts. */
  counts: "jobs:counts:",
  /** Sorted set of the enqueue-to-claim wait of a queue's jobs (for the percentiles of `stats`). */
  waits: "jobs:waits:",
  /** Stream an idle worker blocks on: an entry whenever a queue's work may have become claimable. */
  signal: "jobs:signal:"
} as const

/**
 * The queue's keys that are one per prefix.
 *
 * @category constants
 * @since 0.1.0
 */
export const queueSingleKeys = {
  /** Counter handing out job sequence numbers (creation order, ready-set ties, list cursors). */
  sequence: "jobs:seq",
  /**
   * Sorted set of every job id by sequence: written by earlier layouts only, now only cleared by pruning (a listing
   * across queues merges the queues' `list` indexes, which hold every job too).
   */
  all: "jobs:all",
  /** Sorted set of leased job ids, scored by lease expiry. */
  leases: "jobs:leases",
  /** Hash from (queue, idempotency key) to job id. */
  idempotency: "jobs:idempotency",
  /** Set of the queue names that have jobs. */
  queues: "jobs:queues",
  /** Where `stats` over every queue merges the queues' waits for a moment (deleted in the same script). */
  statsScratch: "jobs:stats-scratch",
  /** Sorted set of completed and cancelled job ids by finish time, for pruning. */
  finished: "jobs:finished"
} as const

/**
 * Every queue key under one prefix.
 *
 * @category models
 * @since 0.1.0
 */
export type QueueKeys = { readonly [K in keyof typeof queueKeyFamilies]: (name: string) => string } & {
  readonly [K in keyof typeof queueSingleKeys]: string
} & {
  /** The bucket (`queue/pool`) part of `ready` and `delayed` keys. */
  readonly bucket: (queue: string, pool: string | undefined) => string
}

/**
 * The keys under `prefix`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeKeys = (prefix: string): Keys => ({
  prefix,
  task: (taskId) => `${prefix}task:${taskId}`,
  taskPrefix: `${prefix}task:`,
  taskSequence: `${prefix}tasks:seq`,
  tasksAll: `${prefix}tasks:all`,
  tasksByState: (state) => `${prefix}tasks:state:${state}`,
  tasksByKind: (kind) => `${prefix}tasks:kind:${kind}`,
  tasksByRequester: (principalId) => `${prefix}tasks:by:${principalId}`,
  taskIdempotency: `${prefix}tasks:idempotency`,
  plan: (planId) => `${prefix}plan:${planId}`,
  rateLimit: `${prefix}ratelimit:`,
  agent: (agentId) => `${prefix}agent:${agentId}`,
  agentsAll: `${prefix}agents:all`,
  agentsByPool: (pool) => `${prefix}agents:pool:${pool}`,
  queue: {
    ...(Object.fromEntries(
      Object.entries(queueKeyFamilies).map(([name, fixed]) => [name, (v: string) => `${prefix}${fixed}${v}`])
    ) as { readonly [K in keyof typeof queueKeyFamilies]: (name: string) => string }),
    ...(Object.fromEntries(Object.entries(queueSingleKeys).map(([name, key]) => [name, `${prefix}${key}`])) as {
      readonly [K in keyof typeof queueSingleKeys]: string
    }),
    bucket: (queue, pool) => `${queue}/${pool ?? ""}`
  },
  ledger: {
    head: `${prefix}ledger:head`,
    entries: `${prefix}ledger:entries`,
    byHash: `${prefix}ledger:by-hash`,
    byTask: (taskId) => `${prefix}ledger:task:${taskId}`,
    byTaskPrefix: `${prefix}ledger:task:`,
    nodes: `${prefix}ledger:nodes`,
    checkpoints: `${prefix}ledger:checkpoints`,
    checkpointSizes: `${prefix}ledger:checkpoint-sizes`,
    anchors: `${prefix}ledger:anchors`
  },
  policy: {
    sets: `${prefix}policy:sets`,
    order: `${prefix}policy:order`,
    sequence: `${prefix}policy:seq`,
    active: `${prefix}policy:active`
  }
})

/**
 * The field of `taskIdempotency` for one requester's key: both parts, unambiguously (JSON of the pair).
 *
 * @category constructors
 * @since 0.1.0
 */
export const idempotencyField = (principalId: string, key: string): string => JSON.stringify([principalId, key])
