import { Queue } from "@mandate/core"
import { suite } from "@mandate/core/conformance/queue"

suite("Queue.layerMemory (conformance)", Queue.layerMemory())
