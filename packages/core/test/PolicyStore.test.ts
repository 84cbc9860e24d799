import { describe } from "@effect/vitest"
import { PolicyStore } from "@mandate/core"
import { suite } from "@mandate/core/conformance/policyStore"

describe("PolicyStore.layerMemory", () => {
  suite("memory", PolicyStore.layerMemory())
  suite("memory, custom initial set", PolicyStore.layerMemory({ name: "custom", rules: [] }), {
    initial: { name: "custom", rules: [] }
  })
})
