/**
 * The `mandate` CLI's entry point: runs the command tree on `process.argv`, prints a failure on stderr and exits
 * with its code (`Output.ExitCode`).
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Effect, Exit } from "effect"
import { Command } from "effect/cli"
import { FetchHttpClient } from "effect/http"
import { command } from "./Commands.ts"
import { CliFailure, ExitCode } from "./Output.ts"

const program = Command.run(command, { version: "0.1.0" }).pipe(
  Effect.as(ExitCode.ok as number),
  Effect.catch((error) =>
    error instanceof CliFailure
      ? Effect.as(
          Console.error([`error: ${error.message}`, ...(error.details ?? []).map((d) => `  ${d}`)].join("\n")),
          error.code
        )
      : // A command-line error: the CLI module has already printed it with the help
        Effect.succeed(error._tag === "ShowHelp" && error.errors.length === 0 ? ExitCode.ok : ExitCode.usage)
  ),
  Effect.provide([NodeServices.layer, FetchHttpClient.layer])
)

NodeRuntime.runMain(program, {
  disableErrorReporting: false,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit) ? (exit.value as number) : Cause.hasInterruptsOnly(exit.cause) ? 0 : ExitCode.unavailable
    )
})
