import { Principal } from "@mandate/core"

/** Qubic-format wallets for tests (60 uppercase letters). */
export const walletA = `${"A".repeat(56)}FXIB`
export const walletB = "B".repeat(60)
export const walletC = "C".repeat(60)

export const alice = Principal.make("alice", ["submitter"])
export const bob = Principal.make("bob", ["approver"])
export const carol = Principal.make("carol", ["approver"])
export const admin = Principal.make("root", ["admin"])
