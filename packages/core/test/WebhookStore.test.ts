import { describe } from "@effect/vitest"
import { WebhookStore } from "@mandate/core"
import { suite } from "@mandate/core/conformance/webhookStore"

describe("WebhookStore.layerMemory", () => {
  suite("memory", WebhookStore.layerMemory())
})
