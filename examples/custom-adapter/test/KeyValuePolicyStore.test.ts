import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { suite } from "@mandate/core/conformance/policyStore"
import { Layer } from "effect"
import { KeyValueStore } from "effect/persistence"
import * as KeyValuePolicyStore from "../src/KeyValuePolicyStore.ts"

// The same suite that proves Mandate's own memory and Postgres stores proves this one
suite("custom: KeyValueStore in memory", KeyValuePolicyStore.layer().pipe(Layer.provide(KeyValueStore.layerMemory)))

suite(
  "custom: KeyValueStore in a directory of files",
  KeyValuePolicyStore.layer().pipe(
    Layer.provide(KeyValueStore.layerFileSystem(mkdtempSync(join(tmpdir(), "mandate-kv-")))),
    Layer.provide(NodeServices.layer)
  )
)
