import { Agents } from "@mandate/core"
import { suite } from "@mandate/core/conformance/agents"

suite("Agents.layerMemory (conformance)", Agents.layerMemory())

suite(
  "Agents.layerMemory (conformance, short thresholds, real time)",
  Agents.layerMemory({ degradedAfterMs: 400, offlineAfterMs: 2_000 }),
  {
    testClock: false,
    degradedAfterMs: 400,
    offlineAfterMs: 2_000
  }
)
