/**
 * A `LanguageModel` over any OpenAI-compatible `POST {url}/chat/completions` endpoint (OpenAI, a local Ollama or
 * vLLM, a hosted gateway), written over `effect/http`'s `HttpClient`: effect 4.1 ships `LanguageModel` but no
 * provider, and the `@effect/ai-openai` 4.0 betas import `effect/unstable/*`, which 4.1 does not export.
 *
 * Structured output (`LanguageModel.generateObject`) is sent as `response_format: { type: "json_schema" }` with
 * the schema's JSON Schema in non-strict mode: strict mode rewrites optional fields as nullable, and the caller
 * (the LLM planner) validates the raw answer itself anyway. Streaming is not supported (the planner does not
 * stream): `streamText` fails.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Redacted, Schema, Stream } from "effect"
import { AiError, LanguageModel, type Prompt, type Response } from "effect/ai"
import { HttpClient, HttpClientRequest } from "effect/http"

/**
 * @category models
 * @since 0.1.0
 */
export interface ChatCompletionsOptions {
  /** The API's base URL, up to and including `/v1`, e.g. `http://127.0.0.1:11434/v1`. */
  readonly url: string
  /** The model's name, sent as `model`. */
  readonly model: string
  /** Sent as `Authorization: Bearer …` when given. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Sampling temperature (default 0: plans should be reproducible). */
  readonly temperature?: number | undefined
  /** Largest response body read, in bytes (default 1 MiB); a larger one is an invalid response. */
  readonly maxResponseBytes?: number | undefined
}

/**
 * The part of a chat completion answer read here.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ChatCompletion = Schema.Struct({
  id: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  choices: Schema.Array(
    Schema.Struct({
      message: Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }),
      finish_reason: Schema.optional(Schema.NullOr(Schema.String))
    })
  ).check(Schema.isMinLength(1)),
  usage: Schema.optional(
    Schema.Struct({ prompt_tokens: Schema.optional(Schema.Int), completion_tokens: Schema.optional(Schema.Int) })
  )
})

const finishReasons = new Set(["stop", "length", "content-filter", "tool-calls"])
const finishReasonOf = (reason: string | null | undefined): Response.FinishReason => {
  const mapped = reason === "content_filter" ? "content-filter" : reason === "tool_calls" ? "tool-calls" : reason
  return (
    mapped !== null && mapped !== undefined && finishReasons.has(mapped) ? mapped : "unknown"
  ) as Response.FinishReason
}

const tokens = (total: number | undefined) => (total === undefined ? {} : { total })

/** Prompt messages as chat messages: text parts joined; files, tool calls and reasoning are not sent. */
const messagesOf = (prompt: Prompt.Prompt) =>
  prompt.content.flatMap((message) => {
    if (message.role === "system") return [{ role: "system", content: message.content }]
    if (message.role === "tool") return []
    const text = message.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("")
    return [{ role: message.role, content: text }]
  })

/**
 * The request body for one completion.
 *
 * @category constructors
 * @since 0.1.0
 */
export const requestBody = (options: ChatCompletionsOptions, provider: LanguageModel.ProviderOptions) => ({
  model: options.model,
  temperature: options.temperature ?? 0,
  messages: messagesOf(provider.prompt),
  ...(provider.responseFormat.type === "json"
    ? {
        response_format: {
          type: "json_schema",
          json_schema: {
            name: provider.responseFormat.objectName.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "output",
            schema: LanguageModel.defaultCodecTransformer(provider.responseFormat.schema as never).jsonSchema,
            strict: false
          }
        }
      }
    : {})
})

/**
 * The service over the `HttpClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: ChatCompletionsOptions) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const url = `${options.url.replace(/\/+$/, "")}/chat/completions`
    const maxResponseBytes = options.maxResponseBytes ?? 1_048_576
    const fail = (reason: AiError.AiErrorReason) =>
      AiError.make({ module: "ChatCompletions", method: "generateText", reason })

    const complete = (provider: LanguageModel.ProviderOptions) =>
      Effect.gen(function* () {
        let request = HttpClientRequest.post(url).pipe(
          HttpClientRequest.bodyJsonUnsafe(requestBody(options, provider)),
          HttpClientRequest.setHeader("accept", "application/json")
        )
        if (options.apiKey !== undefined) {
          request = HttpClientRequest.bearerToken(request, Redacted.value(options.apiKey))
        }
        const response = yield* client
          .execute(request)
          .pipe(
            Effect.mapError((error) =>
              fail(
                new AiError.NetworkError({ reason: "TransportError", method: "POST", url, description: error.message })
              )
            )
          )
        // Read at most `maxResponseBytes`: the endpoint's answer is input like any other
        const chunks: Array<Uint8Array> = []
        let size = 0
        yield* response.stream.pipe(
          Stream.mapError((error) =>
            fail(
              new AiError.NetworkError({ reason: "TransportError", method: "POST", url, description: error.message })
            )
          ),
          Stream.runForEach((chunk) => {
            size += chunk.length
            if (size > maxResponseBytes) {
              return Effect.fail(
                fail(
                  new AiError.InvalidResponseError({
                    description: `the response exceeds ${maxResponseBytes} bytes`
                  })
                )
              )
            }
            chunks.push(chunk)
            return Effect.void
          })
        )
        const text = Buffer.concat(chunks).toString("utf8")
        if (response.status < 200 || response.status >= 300) {
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {}
          return yield* fail(AiError.reasonFromHttpStatus({ status: response.status, body }))
        }
        const completion = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(ChatCompletion))(text).pipe(
          Effect.mapError((error) => fail(AiError.InvalidResponseError.fromSchemaError(error)))
        )
        const choice = completion.choices[0]!
        const parts: Array<Response.PartEncoded> = [
          { type: "text", text: choice.message.content ?? "" },
          {
            type: "finish",
            reason: finishReasonOf(choice.finish_reason),
            usage: {
              inputTokens: tokens(completion.usage?.prompt_tokens),
              outputTokens: tokens(completion.usage?.completion_tokens)
            }
          } as Response.PartEncoded
        ]
        return parts
      })

    return yield* LanguageModel.make({
      generateText: complete,
      streamText: () =>
        Stream.fail(
          AiError.make({
            module: "ChatCompletions",
            method: "streamText",
            reason: new AiError.UnknownError({ description: "streaming is not supported by this client" })
          })
        )
    })
  })

/**
 * A `LanguageModel` over an OpenAI-compatible endpoint (needs an `HttpClient`, e.g. `FetchHttpClient.layer`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: ChatCompletionsOptions
): Layer.Layer<LanguageModel.LanguageModel, never, HttpClient.HttpClient> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))
