/**
 * The boundary error: input that does not decode. Every decode at a boundary (HTTP body, config or
 * policy file, step params, adapter rows) fails with `InvalidInput`, naming each bad field by its JSON path.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema, SchemaIssue } from "effect"

/**
 * One problem with the input: where (a JSON path such as `$.rules[2].effect`) and what.
 *
 * @category models
 * @since 0.1.0
 */
export const InputIssue = Schema.Struct({ path: Schema.String, message: Schema.String })
export type InputIssue = typeof InputIssue.Type

/**
 * Input that failed to decode. `path` and `message` describe the first problem, `issues` all of them.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  message: Schema.String,
  path: Schema.String,
  issues: Schema.Array(InputIssue)
}) {
  /**
   * A single problem at one path.
   */
  static at(path: string, message: string): InvalidInput {
    return new InvalidInput({ message, path, issues: [{ path, message }] })
  }
}

/**
 * Renders a property path as a JSON path: `["rules", 2, "effect"]` → `$.rules[2].effect`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const jsonPath = (segments: ReadonlyArray<PropertyKey>, root = "$"): string => {
  let out = root
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`
    else if (typeof segment === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += `.${segment}`
    else out += `[${JSON.stringify(String(segment))}]`
  }
  return out
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Converts a `Schema.SchemaError` into an `InvalidInput`, every issue with its JSON path under `root`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromSchemaError = (error: Schema.SchemaError, root = "$"): InvalidInput => {
  const issues = formatter(error.issue).issues.map((issue) => ({
    path: jsonPath(
      (issue.path ?? []).map((p) => (typeof p === "object" && p !== null ? p.key : p)),
      root
    ),
    message: issue.message
  }))
  const first = issues[0] ?? { path: root, message: error.message }
  return new InvalidInput({ message: first.message, path: first.path, issues })
}

/**
 * Decodes unknown input with a schema, reporting every bad field (not just the first) as an `InvalidInput`.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decode =
  <S extends Schema.Decoder<unknown>>(schema: S, root = "$") =>
  (input: unknown): Effect.Effect<S["Type"], InvalidInput, S["DecodingServices"]> =>
    Schema.decodeUnknownEffect(schema)(input, { errors: "all", onExcessProperty: "ignore" }).pipe(
      Effect.mapError((error) => fromSchemaError(error, root))
    )

/**
 * `decode` without a fiber, for schemas that need no services and run no effects (the runtime's own request and
 * principal checks, on every start): the same issues and paths, as a `Result`.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeResult = <S extends Schema.Decoder<unknown>>(schema: S, root = "$") => {
  const run = Schema.decodeUnknownResult(schema as Schema.Decoder<S["Type"]>, {
    errors: "all",
    onExcessProperty: "ignore"
  })
  return (input: unknown): Result.Result<S["Type"], InvalidInput> =>
    Result.mapError(run(input), (error) => fromSchemaError(error, root))
}
