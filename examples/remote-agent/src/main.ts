/**
 * Run: `MANDATE_URL=http://127.0.0.1:8000 MANDATE_TOKEN=<an agent token> npm start -w @mandate/example-remote-agent`
 * (with `npm start` serving in another terminal; in development mode, `source .mandate/dev-tokens.env` and use
 * `$MANDATE_TOKEN_AGENT`). Enqueue work with `POST /queue/jobs {"queue":"signing","payload":{"document":"…"}}`.
 * The key is `AGENT_PRIVATE_KEY` (PKCS#8 PEM) or a fresh one. Ctrl-C deregisters and stops.
 */
import * as NodeCrypto from "node:crypto"
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { FetchHttpClient } from "effect/http"
import { run } from "./Agent.ts"

const privateKey = process.env.AGENT_PRIVATE_KEY
  ? NodeCrypto.createPrivateKey(process.env.AGENT_PRIVATE_KEY)
  : NodeCrypto.generateKeyPairSync("ed25519").privateKey

run({
  baseUrl: process.env.MANDATE_URL ?? "http://127.0.0.1:8000",
  token: process.env.MANDATE_TOKEN ?? process.env.MANDATE_TOKEN_AGENT ?? "",
  agentId: process.env.AGENT_ID,
  pool: process.env.AGENT_POOL ?? "default",
  queues: (process.env.AGENT_QUEUES ?? "signing").split(","),
  privateKey
}).pipe(Effect.provide(FetchHttpClient.layer), NodeRuntime.runMain)
