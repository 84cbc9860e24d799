/**
 * A self-contained Mandate for the demo: the reference server on memory with the LLM planner, whose model is a
 * real OpenAI-compatible endpoint when `llm` is given, else a scripted one on a local port (no network needed).
 * Its policy is the seed policy plus one rule: on-chain steps a model planned need one human approval.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { ChatCompletions, FakeServer } from "@mandate/adapters/openai"
import { type PolicySet, Principal, Seed } from "@mandate/core"
import { Authenticator } from "@mandate/server/http/Auth"
import * as Server from "@mandate/server/Server"
import * as Stores from "@mandate/server/Stores"
import { Effect, Layer, Redacted, type Redacted as RedactedType, References } from "effect"
import { FetchHttpClient } from "effect/http"

/** The demo's bearer tokens: the agent submits, a human approves. */
export const tokens = { agent: "agent.demo-token", approver: "bob.demo-approver-token" } as const

export const walletA = "A".repeat(60)
export const walletB = "B".repeat(60)

export const policy: PolicySet.PolicySet = {
  ...Seed.defaultPolicySet,
  name: "ai-agent-demo",
  rules: [
    ...Seed.defaultPolicySet.rules,
    {
      id: "goal-onchain",
      effect: "require_approval",
      match: { task: "goal", action: "onchain_action" },
      reason: "transfers an AI planned need a human approver",
      approvals: { required: 1 }
    }
  ]
}

export interface DemoOptions {
  readonly port?: number | undefined
  /** A real model (OpenAI-compatible); default: the scripted one. */
  readonly llm?:
    | { readonly url: string; readonly model: string; readonly apiKey?: RedactedType.Redacted<string> | undefined }
    | undefined
  readonly console?: false | undefined
}

export const layer = (options?: DemoOptions) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const llm = options?.llm ?? {
        url: (yield* FakeServer.make(FakeServer.transferScript)).url,
        model: "scripted-planner"
      }
      const services = Stores.Readiness.layer({ store: "memory", anchor: "memory" }).pipe(
        Layer.provideMerge(
          Stores.layerMemory({
            policy,
            anchor: Stores.layerAnchor("memory"),
            llm: {
              model: llm.model,
              languageModel: ChatCompletions.layer(llm).pipe(Layer.provide(FetchHttpClient.layer))
            }
          })
        )
      )
      const apiKeys = [
        { token: Redacted.make(tokens.agent), principal: Principal.make("agent", ["submitter"]) },
        { token: Redacted.make(tokens.approver), principal: Principal.make("bob", ["approver"]) }
      ]
      return Server.layerApp(options?.console === false ? { console: false } : {}).pipe(
        Layer.provide(Layer.mergeAll(Authenticator.layer({ apiKeys }), services)),
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options?.port ?? 0, host: "127.0.0.1" })),
        // Access logs would bury the agent's report
        Layer.provide(Layer.succeed(References.MinimumLogLevel, "Warn"))
      )
    })
  )
