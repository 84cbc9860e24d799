/**
 * Reading the stored Merkle tree: the nodes a proof, a root or the append frontier needs, fetched in one
 * `LedgerStore.nodes` call each. A node the store lacks is a `LedgerStoreError` naming it (never a wrong proof).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Canonical from "../Canonical.ts"
import { type LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"

/** The tree reads `Ledger` serves proofs and roots from. */
export interface LedgerTree {
  /** A reader over exactly these nodes, read in one call; fails when one is missing. */
  readonly readNodes: (
    operation: string,
    ids: ReadonlyArray<Merkle.NodeId>
  ) => Effect.Effect<Merkle.NodeReader, LedgerStoreError>
  /** The frontier (the maximal subtrees' roots, left to right) of the tree of the first `size` entries. */
  readonly frontier: (size: number) => Effect.Effect<ReadonlyArray<Uint8Array>, LedgerStoreError>
  /** The root of the stored tree of the first `size` entries. */
  readonly rootAt: (size: number) => Effect.Effect<Uint8Array, LedgerStoreError>
  /** Inclusion proof of leaf `index` in the tree of `treeSize` leaves (both already checked). */
  readonly inclusion: (index: number, treeSize: number) => Effect.Effect<Merkle.InclusionProof, LedgerStoreError>
  /** Consistency proof between the trees of `oldSize` and `newSize` leaves (both already checked). */
  readonly consistency: (oldSize: number, newSize: number) => Effect.Effect<Merkle.ConsistencyProof, LedgerStoreError>
}

const missingNode = (operation: string, id: Merkle.NodeId): LedgerStoreError =>
  new LedgerStoreError({
    operation,
    cause: new Error(`Merkle node (level ${id.level}, index ${id.index}) is missing from the store`)
  })

/** The tree reads over `store`. */
export const make = (store: LedgerStore["Service"]): LedgerTree => {
  const readNodes = (operation: string, ids: ReadonlyArray<Merkle.NodeId>) =>
    Effect.flatMap(store.nodes(ids), (hashes) => {
      const byId = new Map<string, Uint8Array>()
      for (let i = 0; i < ids.length; i++) {
        const hash = hashes[i]
        if (hash === undefined) {
          return Effect.fail(missingNode(operation, ids[i]!))
        }
        byId.set(`${ids[i]!.level}:${ids[i]!.index}`, hash)
      }
      const read: Merkle.NodeReader = (level, index) => byId.get(`${level}:${index}`)!
      return Effect.succeed(read)
    })

  return {
    readNodes,
    frontier: (size) => {
      const ids = Merkle.subtreeNodes(0, size)
      return Effect.map(readNodes("append", ids), (read) => ids.map((id) => read(id.level, id.index)))
    },
    rootAt: (size) => Effect.map(readNodes("root", Merkle.subtreeNodes(0, size)), (read) => Merkle.rootAt(size, read)),
    inclusion: (index, treeSize) =>
      Effect.map(readNodes("inclusionProof", Merkle.inclusionNodes(index, treeSize)), (read) => ({
        leafIndex: index,
        treeSize,
        path: Merkle.inclusionPath(index, treeSize, read).map(Canonical.toHex)
      })),
    consistency: (oldSize, newSize) =>
      Effect.map(readNodes("consistencyProof", Merkle.consistencyNodes(oldSize, newSize)), (read) => ({
        oldSize,
        newSize,
        path: Merkle.consistencyPath(oldSize, newSize, read).map(Canonical.toHex)
      }))
  }
}
