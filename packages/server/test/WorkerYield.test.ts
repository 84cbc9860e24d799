import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { ServerConfig } from "../src/Config.ts"

describe("MANDATE_WORKER_YIELD_OPS", () => {
  const parse = (value: string | undefined) =>
    ServerConfig.parse(ConfigProvider.fromEnvRecord(value === undefined ? {} : { MANDATE_WORKER_YIELD_OPS: value }))

  it.effect("is 64 by default, an integer from 1 to 2048 when given; anything else is refused", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* parse(undefined)).workerYieldOps, 64)
      assert.strictEqual((yield* parse("2048")).workerYieldOps, 2048)
      assert.strictEqual((yield* parse("1")).workerYieldOps, 1)
      for (const bad of ["0", "2049", "-5", "1.5", "many"]) {
        const error = yield* Effect.flip(parse(bad))
        assert.include(String(error), "MANDATE_WORKER_YIELD_OPS", bad)
      }
    })
  )
})
