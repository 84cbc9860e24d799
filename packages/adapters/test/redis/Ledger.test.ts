import { layerLedgerStoreWithTamper, layerUnitOfWork } from "@mandate/adapters/redis"
import { Anchor, Ledger } from "@mandate/core"
import { suite } from "@mandate/core/conformance/ledger"
import { Layer } from "effect"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

describeRedis("Ledger on Redis", () => {
  suite(
    "redis",
    TestRedis.layerWith((options) =>
      Ledger.layer().pipe(
        Layer.provideMerge(layerLedgerStoreWithTamper(options)),
        Layer.provide(Anchor.layerMemory),
        Layer.merge(layerUnitOfWork)
      )
    )
  )
})
