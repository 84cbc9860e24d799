import { assert, describe, it } from "@effect/vitest"
import { Agents, summarizePools } from "@mandate/core"
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

describe("summarizePools", () => {
  it("counts each pool's agents by status, pools sorted by name, empty pools absent", () => {
    assert.deepStrictEqual(
      summarizePools([
        { pool: "gpu", status: "online" },
        { pool: "cpu", status: "offline" },
        { pool: "gpu", status: "degraded" },
        { pool: "gpu", status: "online" }
      ]),
      [
        { pool: "cpu", agents: 1, online: 0, degraded: 0, offline: 1 },
        { pool: "gpu", agents: 3, online: 2, degraded: 1, offline: 0 }
      ]
    )
    assert.deepStrictEqual(summarizePools([]), [])
  })
})
