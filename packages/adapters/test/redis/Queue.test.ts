import { layerQueue } from "@mandate/adapters/redis"
import { suite } from "@mandate/core/conformance/queue"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

describeRedis("Queue on Redis", () => {
  // Time is the caller's Clock, passed to every script: TestClock drives leases, delays and retries
  suite(
    "Queue conformance (redis)",
    TestRedis.layerWith((options) => layerQueue(options))
  )

  // And in real time, as production runs it
  suite(
    "Queue conformance (redis, real time)",
    TestRedis.layerWith((options) => layerQueue({ ...options, backoff: { baseMs: 200 }, requeueIntervalMs: 200 })),
    { testClock: false, backoff: { baseMs: 200 }, requeueIntervalMs: 200 }
  )
})
