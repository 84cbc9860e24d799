/**
 * A worker process of the multi-process proof (`proof.ts`): the runtime with its step workers on the test's
 * stores, run as `node --conditions=mandate-source --import tsx worker.ts` with an IPC channel to the test.
 *
 * Environment: `MANDATE_STORE` (`postgres` with `DATABASE_URL` and `MANDATE_PG_SCHEMA`, or `redis` with
 * `REDIS_URL` and `MANDATE_REDIS_PREFIX`), `MANDATE_WORKER_ID`, `MANDATE_SIGNING_KEY` (PKCS#8 PEM),
 * `MANDATE_CONCURRENCY`. Sends `{ type: "ready" }` once its runtime runs. It exits when the test process goes
 * away (the IPC channel closes), so a test that dies leaves no worker behind; SIGTERM stops it gracefully.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Postgres from "@mandate/adapters/postgres"
import * as Redis from "@mandate/adapters/redis"
import { Cause, Effect, Exit, Layer } from "effect"
import { type Place, stack, workerOptions } from "./stack.ts"

const required = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is required`)
  return value
}

const workerId = required("MANDATE_WORKER_ID")
const concurrency = Number(process.env.MANDATE_CONCURRENCY ?? "8")
const store = required("MANDATE_STORE")
const place: Place =
  store === "postgres"
    ? {
        store,
        config: Postgres.makeConfig(required("DATABASE_URL"), {
          schema: required("MANDATE_PG_SCHEMA"),
          // a connection per running step, plus heartbeats, the LISTEN connection and the queue's sweeps
          poolSize: concurrency + 3
        })
      }
    : store === "redis"
      ? {
          store,
          config: Redis.makeConfig(required("REDIS_URL"), {
            prefix: required("MANDATE_REDIS_PREFIX"),
            reservedConnections: 2,
            clientName: `mandate-mp-${workerId}`
          })
        }
      : (() => {
          throw new Error(`MANDATE_STORE must be postgres or redis, not ${store}`)
        })()

// The parent is gone (exited, killed, or its test failed without cleaning up): so is this worker
process.on("disconnect", () => process.exit(0))

const program = Effect.gen(function* () {
  yield* Layer.build(stack(place, required("MANDATE_SIGNING_KEY"), { workerId, concurrency, ...workerOptions }))
  process.send?.({ type: "ready", workerId })
  return yield* Effect.never
}).pipe(Effect.scoped)

program.pipe(
  NodeRuntime.runMain({
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
)
