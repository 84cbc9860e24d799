/**
 * Run the server with `onchain_action` routed to pool `signers`:
 * `MANDATE_REMOTE_STEPS=onchain_action:signers npm start`; then, in another terminal (development mode:
 * `. .mandate/dev-tokens.env`), `MANDATE_TOKEN=$MANDATE_TOKEN_AGENT npm start -w @mandate/example-remote-agent`.
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
  pool: process.env.AGENT_POOL ?? "signers",
  privateKey
}).pipe(Effect.provide(FetchHttpClient.layer), NodeRuntime.runMain)
