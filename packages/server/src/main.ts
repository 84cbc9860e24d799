/**
 * The server's entry point: `npm start`. SIGTERM or SIGINT shuts it down gracefully and exits with 0.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Exit, Layer } from "effect"
import * as Server from "./Server.ts"

Layer.launch(Server.layerConfig).pipe(
  NodeRuntime.runMain({
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
)
