/**
 * `@mandate/adapters/openai`: a `LanguageModel` over any OpenAI-compatible chat completions endpoint (for the
 * LLM planner, `Planner.layerLlm`), and a scripted fake of such an endpoint for tests and demos.
 *
 * @since 0.1.0
 */
export * as ChatCompletions from "./ChatCompletions.ts"
export * as FakeServer from "./FakeServer.ts"
