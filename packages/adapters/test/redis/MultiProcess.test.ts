import { Effect } from "effect"
import { multiProcessProof } from "../utils/multiProcess/proof.ts"
import { config, deleteKeysOnExit, describeRedis, url } from "../utils/TestRedis.ts"

// Three worker processes and this one over one key prefix, one worker SIGKILLed mid-run (the proof: proof.ts)
multiProcessProof({
  name: "Redis",
  describe: describeRedis,
  fresh: Effect.gen(function* () {
    const cfg = config({ reservedConnections: 2 })
    yield* deleteKeysOnExit(cfg.prefix)
    return { place: { store: "redis", config: cfg }, env: { REDIS_URL: url, MANDATE_REDIS_PREFIX: cfg.prefix } }
  })
})
