/**
 * The runtime with the seed workflow as every process of the multi-process proof builds it (`proof.ts` in the
 * test process, `worker.ts` in each worker process): the same stores (one Postgres schema or one Redis key
 * prefix), the same checkpoint-signing key, each process its own connections, queue fibers, ledger instance and
 * runtime. Every store is on the backend, the ledger and the unit of work included.
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import * as Redis from "@mandate/adapters/redis"
import {
  type Agents,
  Anchor,
  Ledger,
  type LedgerStore,
  Planner,
  Policy,
  type PolicyStore,
  type Queue,
  Runtime,
  type RuntimeOptions,
  Seed,
  SeedHandlers,
  StepHandlers,
  type StepType,
  type TaskStore,
  type UnitOfWork,
  Wallets
} from "@mandate/core"
import { Layer } from "effect"

/** Where the processes share their stores. */
export type Place =
  | { readonly store: "postgres"; readonly config: Postgres.PostgresConfig }
  | { readonly store: "redis"; readonly config: Redis.RedisConfig }

/** The queue's settings: a killed worker's leases are swept back within a quarter second of expiring. */
export const queueOptions = { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 250 }

/**
 * What every worker process runs with: a lease a dead worker held comes back within seconds; heartbeats keep a
 * live worker's well inside it even on a loaded machine (it loses a lease only if its heartbeats stall for 9 s).
 * Recovery must come from lease expiry alone, not from the periodic reconcile.
 */
export const workerOptions = {
  leaseMs: 10_000,
  heartbeatIntervalMs: 1_000,
  pollIntervalMs: 100,
  shutdownGraceMs: 1_000,
  reconcileIntervalMs: 0
} satisfies RuntimeOptions

const stores = (
  place: Place
): Layer.Layer<Queue | Agents | TaskStore | LedgerStore | PolicyStore | UnitOfWork, unknown> =>
  place.store === "postgres"
    ? Postgres.layer(place.config, { queue: queueOptions })
    : Redis.layer(place.config, { queue: queueOptions })

/**
 * The whole runtime over `place`.
 *
 * @since 0.1.0
 */
export const stack = (place: Place, signingKey: string, runtime: RuntimeOptions) => {
  const handlers = SeedHandlers.handlers()
  const stepTypes: Array<StepType> = [...Seed.stepTypes, ...handlers]
  const services = Layer.mergeAll(
    Ledger.layer({ signingKey }),
    StepHandlers.layer(handlers),
    Planner.layerTemplates({ stepTypes }).pipe(Layer.provideMerge(Policy.layer))
  ).pipe(
    Layer.provideMerge(
      Layer.mergeAll(stores(place), Wallets.layerMemory({ defaultBalance: 1_000_000 }), Anchor.layerMemory)
    )
  )
  return Runtime.layer(runtime).pipe(Layer.provideMerge(services))
}
