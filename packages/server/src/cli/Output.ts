/**
 * What the `mandate` CLI prints and how it exits: tables for people, JSON for scripts (`--json`), and one exit
 * code per kind of outcome, so a script can tell "the answer is no" from "the server is down".
 *
 * @since 0.1.0
 */
import { Console, type Effect, Schema } from "effect"
import {
  BadRequest,
  Conflict,
  Forbidden,
  NotFound,
  PayloadTooLarge,
  PolicyDenied,
  TooManyRequests,
  Unauthorized,
  Unavailable,
  Unprocessable
} from "../api/Errors.ts"

/**
 * The exit codes.
 *
 * @category constants
 * @since 0.1.0
 */
export const ExitCode = {
  ok: 0,
  /** The command ran and the answer is no: a check failed, policy denied, a watched task did not complete. */
  failed: 1,
  /** The command line is wrong (unknown flag, missing argument, a file or JSON that does not parse). */
  usage: 2,
  /** The server refused the request as invalid (400, 413, 422). */
  invalid: 3,
  /** Not authenticated or not allowed (401, 403). */
  denied: 4,
  /** No such task, plan, job, version (404). */
  notFound: 5,
  /** The resource's state does not allow it (409: a stale plan, an illegal transition). */
  conflict: 6,
  /** The server could not be reached or is unavailable (503, 429, a network error). */
  unavailable: 7
} as const

/**
 * A command's failure: what to print on stderr and the exit code.
 *
 * @category errors
 * @since 0.1.0
 */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  message: Schema.String,
  code: Schema.Int,
  details: Schema.optionalKey(Schema.Array(Schema.String))
}) {}

/**
 * Maps whatever the typed client failed with to a `CliFailure`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromError = (error: unknown): CliFailure => {
  if (error instanceof CliFailure) return error
  if (error instanceof BadRequest) {
    return new CliFailure({
      message: error.message,
      code: ExitCode.invalid,
      details: error.issues.map((i) => `${i.path}: ${i.message}`)
    })
  }
  if (error instanceof PolicyDenied) {
    return new CliFailure({ message: error.message, code: ExitCode.failed, details: error.reasons })
  }
  if (error instanceof Unprocessable || error instanceof PayloadTooLarge) {
    return new CliFailure({ message: error.message, code: ExitCode.invalid })
  }
  if (error instanceof Unauthorized || error instanceof Forbidden) {
    return new CliFailure({ message: error.message, code: ExitCode.denied })
  }
  if (error instanceof NotFound) return new CliFailure({ message: error.message, code: ExitCode.notFound })
  if (error instanceof Conflict) {
    return new CliFailure({ message: `${error.message} (${error.reason})`, code: ExitCode.conflict })
  }
  if (error instanceof Unavailable || error instanceof TooManyRequests) {
    return new CliFailure({ message: error.message, code: ExitCode.unavailable })
  }
  const tag = (error as { readonly _tag?: unknown })?._tag
  if (tag === "HttpClientError") {
    return new CliFailure({
      message: `Cannot reach the server: ${(error as { readonly message?: string }).message ?? String(error)}`,
      code: ExitCode.unavailable
    })
  }
  if (tag === "InvalidInput") {
    const e = error as unknown as {
      readonly message: string
      readonly issues: ReadonlyArray<{ path: string; message: string }>
    }
    return new CliFailure({
      message: e.message,
      code: ExitCode.usage,
      details: e.issues.map((i) => `${i.path}: ${i.message}`)
    })
  }
  const message = (error as { readonly message?: unknown })?.message
  return new CliFailure({
    message: typeof message === "string" && message.length > 0 ? message : String(error),
    code: ExitCode.unavailable
  })
}

/**
 * Prints `rows` as a table with a header; columns as wide as their widest cell.
 *
 * @category output
 * @since 0.1.0
 */
export const table = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string | number | undefined>>
): Effect.Effect<void> => {
  if (rows.length === 0) return Console.log("(none)")
  const cells = rows.map((row) => row.map((cell) => (cell === undefined ? "-" : String(cell))))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0)))
  const line = (row: ReadonlyArray<string>) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return Console.log([line(headers), ...cells.map(line)].join("\n"))
}

/**
 * Prints `value` as indented JSON.
 *
 * @category output
 * @since 0.1.0
 */
export const json = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

/**
 * Prints key: value lines, aligned.
 *
 * @category output
 * @since 0.1.0
 */
export const fields = (pairs: ReadonlyArray<readonly [string, string | number | boolean | undefined]>) => {
  const width = Math.max(...pairs.map(([k]) => k.length))
  return Console.log(
    pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === undefined ? "-" : String(v)}`).join("\n")
  )
}

/**
 * The first 12 characters of a hash or version.
 *
 * @category output
 * @since 0.1.0
 */
export const short = (hash: string | undefined): string | undefined =>
  hash === undefined ? undefined : hash.length > 14 ? `${hash.slice(0, 12)}…` : hash

/**
 * Epoch milliseconds as an ISO time without milliseconds.
 *
 * @category output
 * @since 0.1.0
 */
export const time = (millis: number | undefined): string | undefined =>
  millis === undefined ? undefined : new Date(millis).toISOString().replace(/\.\d{3}Z$/, "Z")
