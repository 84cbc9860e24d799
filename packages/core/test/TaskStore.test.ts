import { TaskStore } from "@mandate/core"
import { suite } from "@mandate/core/conformance/taskStore"

suite("memory", TaskStore.layerMemory)
