import { layerAgents } from "@mandate/adapters/postgres"
import { suite } from "@mandate/core/conformance/agents"
import { describePostgres, TestPostgres } from "../utils/TestPostgres.ts"

// The database keeps the time: real waits, short thresholds
const thresholds = { degradedAfterMs: 400, offlineAfterMs: 900 }

describePostgres("Agents on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerAgents({ ...options, ...thresholds })),
    { testClock: false, ...thresholds }
  )
})
