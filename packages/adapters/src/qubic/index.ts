/**
 * `@mandate/adapters/qubic`: anchoring ledger roots on Qubic — a faithful simulation of the network, the same
 * network served over HTTP with the gateway's API, and the `Anchor` layers over either.
 *
 * @since 0.1.0
 */
export * from "./Anchor.ts"
export * from "./Api.ts"
export * from "./Chain.ts"
export * from "./Identity.ts"
export * from "./MockServer.ts"
export * from "./RpcClient.ts"
export * from "./Signer.ts"
export * as StateFile from "./StateFile.ts"
export * from "./Transaction.ts"
