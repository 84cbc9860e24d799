import { Effect } from "effect"
import { multiProcessProof } from "../utils/multiProcess/proof.ts"
import { config, describePostgres, dropSchemaOnExit, url } from "../utils/TestPostgres.ts"

// Three worker processes and this one over one schema, one worker SIGKILLed mid-run (the proof: proof.ts)
multiProcessProof({
  name: "Postgres",
  describe: describePostgres,
  fresh: Effect.gen(function* () {
    const cfg = config({ poolSize: 6 })
    yield* dropSchemaOnExit(cfg.schema)
    return { place: { store: "postgres", config: cfg }, env: { DATABASE_URL: url, MANDATE_PG_SCHEMA: cfg.schema } }
  })
})
