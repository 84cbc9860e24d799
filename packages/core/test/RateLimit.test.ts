import { RateLimit } from "@mandate/core"
import { suite } from "@mandate/core/conformance/rateLimit"

suite("memory", RateLimit.layerMemory)
// the path stores that keep their own time take: real waits instead of TestClock
suite("memory, real clock", RateLimit.layerMemory, { testClock: false })
