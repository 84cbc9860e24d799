import { layerQueue } from "@mandate/adapters/postgres"
import { suite } from "@mandate/core/conformance/queue"
import { describePostgres, TestPostgres } from "../utils/TestPostgres.ts"

// The database keeps the time: real waits, short durations
const backoff = { baseMs: 100, capMs: 5_000 }
const requeueIntervalMs = 200

describePostgres("Queue on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerQueue({ ...options, backoff, requeueIntervalMs })),
    { testClock: false, backoff, requeueIntervalMs }
  )
})
