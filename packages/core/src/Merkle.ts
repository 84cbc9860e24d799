/**
 * Merkle trees as RFC 9162 §2.1 defines them (identical to RFC 6962 §2.1): hashing, tree heads, inclusion
 * and consistency proofs, and their verifiers. Everything here is pure; the verifiers need nothing but the
 * proof, the leaf hash and the roots, so an auditor can check a ledger's claims offline.
 *
 * **Hashing** (SHA-256, through `Canonical`)
 *
 * - empty tree: `MTH({}) = SHA-256()` (`emptyRoot`)
 * - leaf: `SHA-256(0x00 ‖ data)` (`leafHash`)
 * - interior node: `SHA-256(0x01 ‖ left ‖ right)` (`nodeHash`)
 * - `MTH(D[n]) = nodeHash(MTH(D[0:k]), MTH(D[k:n]))` with `k` the largest power of two smaller than `n`.
 *
 * **Node addressing** (how stores keep a tree so that appends, past roots and proofs cost O(log n) node reads)
 *
 * Node `(level, index)` is the root of the perfect subtree over the leaves
 * `[index · 2^level, (index + 1) · 2^level)`; level 0 holds the leaf hashes. A node exists once the tree has
 * `(index + 1) · 2^level` leaves and never changes afterwards (the tree is append-only), so a store keeps every
 * node it has ever completed — fewer than `2n` for `n` leaves — keyed by `(level, index)`. Appending leaf `i`
 * writes `(0, i)` and then, while the new node is a right child (odd index), its parent: one write per leaf on
 * average, `log2 n` at most (`append`). A tree of any size `s ≤ n` is the perfect subtrees of the binary
 * decomposition of `s`, highest first (`subtreeNodes(0, s)`, at most `log2 s` nodes), folded from the right;
 * every subtree hash a proof needs is such a fold, so proofs are computed from O(log n) stored nodes
 * (`inclusionNodes`, `consistencyNodes` list them, so a database can fetch them in one query).
 *
 * **Proof shape** follows RFC 9162 §2.1.3.1 (`PATH`) and §2.1.4.1 (`PROOF`/`SUBPROOF`): hashes listed from the
 * leaf (or the old tree) upwards. Verification follows §2.1.3.2 and §2.1.4.2. For the edge cases the RFC leaves
 * open, `verifyConsistency` decides as transparency-dev/merkle's `proof.VerifyConsistency` does: an old size of 0
 * is refused whatever the proof and roots (a proof from the empty tree proves nothing, so `(0, 0)` and `(0, n)`
 * are both `false`), and equal non-zero sizes need an empty proof and equal roots.
 *
 * Sizes and indexes are JavaScript numbers and are handled with arithmetic, not 32-bit bitwise operators, so
 * they are exact up to 2^53.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Canonical from "./Canonical.ts"
import { Sha256Hex } from "./Ids.ts"
import * as Sha256 from "./internal/sha256.ts"

const LEAF_PREFIX = Uint8Array.of(0x00)
const NODE_PREFIX = Uint8Array.of(0x01)
const HASH_SIZE = 32

/**
 * The root of the empty tree: SHA-256 of the empty string.
 *
 * @category hashing
 * @since 0.1.0
 */
export const emptyRoot: Uint8Array = Canonical.sha256(new Uint8Array(0))

/**
 * `SHA-256(0x00 ‖ data)`: the hash of a leaf.
 *
 * @category hashing
 * @since 0.1.0
 */
export const leafHash = (data: Uint8Array): Uint8Array =>
  1 + data.length <= Sha256.maxShort ? Sha256.digestPrefixed(0x00, data) : Canonical.sha256Concat([LEAF_PREFIX, data])

// 0x01 ‖ left ‖ right of two hashes, filled and hashed synchronously by `nodeHash`
const nodeInput = Buffer.alloc(1 + 2 * HASH_SIZE, 0x01)

/**
 * `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
 *
 * @category hashing
 * @since 0.1.0
 */
export const nodeHash = (left: Uint8Array, right: Uint8Array): Uint8Array => {
  // Two compression blocks: node:crypto (hex digest) beats JavaScript here, unlike for a one-block leaf
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) return Canonical.sha256Concat([NODE_PREFIX, left, right])
  nodeInput.set(left, 1)
  nodeInput.set(right, 1 + HASH_SIZE)
  return Canonical.sha256(nodeInput)
}

/**
 * The address of a stored node: the root of the perfect subtree over leaves
 * `[index · 2^level, (index + 1) · 2^level)`.
 *
 * @category models
 * @since 0.1.0
 */
export interface NodeId {
  readonly level: number
  readonly index: number
}

/**
 * A stored node: its address and hash.
 *
 * @category models
 * @since 0.1.0
 */
export interface Node extends NodeId {
  readonly hash: Uint8Array
}

/**
 * Reads a stored node. Proof generation calls it only for nodes that exist in the tree it works on.
 *
 * @category models
 * @since 0.1.0
 */
export type NodeReader = (level: number, index: number) => Uint8Array

/** Largest power of two strictly smaller than `n` (n ≥ 2): RFC 9162's `k`. */
const splitPoint = (n: number): number => {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

const isSize = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

const isPowerOfTwo = (n: number): boolean => {
  let k = 1
  while (k < n) k *= 2
  return k === n
}

/**
 * The perfect subtrees whose fold is the hash of leaves `[begin, end)`, left to right: the binary decomposition
 * of `end - begin`, highest power first. The ranges that RFC 9162's recursion visits always start at a multiple
 * of their largest part, so every part is a stored node; `subtreeNodes(0, size)` is a tree's frontier.
 *
 * @category node addressing
 * @since 0.1.0
 */
export const subtreeNodes = (begin: number, end: number): Array<NodeId> => {
  const out: Array<NodeId> = []
  let remaining = end - begin
  let offset = begin
  let size = 1
  let level = 0
  while (size * 2 <= remaining) {
    size *= 2
    level++
  }
  while (remaining > 0) {
    if (size <= remaining) {
      out.push({ level, index: offset / size })
      offset += size
      remaining -= size
    }
    size /= 2
    level--
  }
  return out
}

/**
 * Folds subtree hashes (left to right, as `subtreeNodes` lists them) into the hash of their range.
 *
 * @category hashing
 * @since 0.1.0
 */
export const foldSubtrees = (hashes: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (hashes.length === 0) return emptyRoot
  let acc = hashes[hashes.length - 1]!
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i]!, acc)
  return acc
}

/**
 * The hash of leaves `[begin, end)` read from stored nodes (`MTH(D[begin:end])` for the ranges proofs use).
 *
 * @category hashing
 * @since 0.1.0
 */
export const subtreeHash = (begin: number, end: number, read: NodeReader): Uint8Array =>
  foldSubtrees(subtreeNodes(begin, end).map((id) => read(id.level, id.index)))

/**
 * The leaf ranges whose hashes form the inclusion proof of leaf `index` in a tree of `size` leaves, in proof
 * order (RFC 9162 §2.1.3.1, `PATH(m, D[n])`). Requires `index < size`.
 *
 * @category proofs
 * @since 0.1.0
 */
export const inclusionRanges = (index: number, size: number): Array<readonly [number, number]> => {
  const topDown: Array<readonly [number, number]> = []
  let begin = 0
  let end = size
  while (end - begin > 1) {
    const k = splitPoint(end - begin)
    if (index < begin + k) {
      topDown.push([begin + k, end])
      end = begin + k
    } else {
      topDown.push([begin, begin + k])
      begin += k
    }
  }
  return topDown.reverse()
}

/**
 * The leaf ranges whose hashes form the consistency proof between trees of `oldSize` and `newSize` leaves, in
 * proof order (RFC 9162 §2.1.4.1, `PROOF(m, D[n])`). Empty when `oldSize` equals `newSize`, and when it is 0
 * (no proof exists from the empty tree: `verifyConsistency` refuses that size).
 *
 * @category proofs
 * @since 0.1.0
 */
export const consistencyRanges = (oldSize: number, newSize: number): Array<readonly [number, number]> => {
  if (oldSize === 0 || oldSize >= newSize) return []
  const topDown: Array<readonly [number, number]> = []
  let begin = 0
  let end = newSize
  let complete = true // SUBPROOF's b: is the old tree's root a node of the current range's proof?
  while (true) {
    const m = oldSize - begin
    if (m === end - begin) {
      if (!complete) topDown.push([begin, end])
      break
    }
    const k = splitPoint(end - begin)
    if (m <= k) {
      topDown.push([begin + k, end])
      end = begin + k
    } else {
      topDown.push([begin, begin + k])
      begin += k
      complete = false
    }
  }
  return topDown.reverse()
}

const distinctNodes = (ranges: ReadonlyArray<readonly [number, number]>): Array<NodeId> => {
  const seen = new Set<string>()
  const out: Array<NodeId> = []
  for (const [begin, end] of ranges) {
    for (const id of subtreeNodes(begin, end)) {
      const key = `${id.level}:${id.index}`
      if (!seen.has(key)) {
        seen.add(key)
        out.push(id)
      }
    }
  }
  return out
}

/**
 * Every stored node an inclusion proof needs (at most about `2 log2 size`), for a single batched read.
 *
 * @category node addressing
 * @since 0.1.0
 */
export const inclusionNodes = (index: number, size: number): Array<NodeId> =>
  distinctNodes(inclusionRanges(index, size))

/**
 * Every stored node a consistency proof needs, for a single batched read.
 *
 * @category node addressing
 * @since 0.1.0
 */
export const consistencyNodes = (oldSize: number, newSize: number): Array<NodeId> =>
  distinctNodes(consistencyRanges(oldSize, newSize))

/**
 * The inclusion proof (audit path) of leaf `index` in the tree of `size` leaves, from stored nodes.
 *
 * @category proofs
 * @since 0.1.0
 */
export const inclusionPath = (index: number, size: number, read: NodeReader): Array<Uint8Array> =>
  inclusionRanges(index, size).map(([begin, end]) => subtreeHash(begin, end, read))

/**
 * The consistency proof between the trees of `oldSize` and `newSize` leaves, from stored nodes.
 *
 * @category proofs
 * @since 0.1.0
 */
export const consistencyPath = (oldSize: number, newSize: number, read: NodeReader): Array<Uint8Array> =>
  consistencyRanges(oldSize, newSize).map(([begin, end]) => subtreeHash(begin, end, read))

/**
 * The root of the tree of `size` leaves, from stored nodes (at most `log2 size` reads).
 *
 * @category hashing
 * @since 0.1.0
 */
export const rootAt = (size: number, read: NodeReader): Uint8Array => subtreeHash(0, size, read)

/**
 * The result of appending leaves: every node they complete (leaves included, in creation order, each parent
 * after its children) and the new frontier. The new root is `foldSubtrees(frontier)`, left to callers that
 * need it: folding costs one hash per frontier node, more than the append itself.
 *
 * @category models
 * @since 0.1.0
 */
export interface Appended {
  readonly nodes: Array<Node>
  /** The hashes of `subtreeNodes(0, newSize)`. */
  readonly frontier: Array<Uint8Array>
}

/**
 * Appends leaf hashes to a tree of `size` leaves given its frontier (the hashes of `subtreeNodes(0, size)`).
 * Costs one node hash per leaf on average: the incremental update that keeps appends O(log n).
 *
 * @category constructors
 * @since 0.1.0
 */
export const append = (
  size: number,
  frontier: ReadonlyArray<Uint8Array>,
  leaves: ReadonlyArray<Uint8Array>
): Appended => {
  // The frontier has one subtree per binary digit 1 of `size` (arithmetic, not bitwise: sizes beyond 2^32)
  let expected = 0
  for (let rest = size; rest > 0; rest = Math.floor(rest / 2)) expected += rest % 2
  if (expected !== frontier.length) {
    throw new RangeError(`A tree of ${size} leaves has a frontier of ${expected} nodes, got ${frontier.length}`)
  }
  // The subtrees' hashes, highest first; their levels are implied by `size` and never needed here
  const stack = frontier.slice()
  const nodes: Array<Node> = []
  for (let j = 0; j < leaves.length; j++) {
    let index = size + j
    let level = 0
    let hash = leaves[j]!
    nodes.push({ level, index, hash })
    // A right child (odd index) completes its parent; the left sibling is the frontier's last subtree
    while (index % 2 === 1) {
      hash = nodeHash(stack.pop()!, hash)
      index = (index - 1) / 2
      level++
      nodes.push({ level, index, hash })
    }
    stack.push(hash)
  }
  return { nodes, frontier: stack }
}

/**
 * `MTH` over a list of leaf hashes (RFC 9162 §2.1.1), in one pass.
 *
 * @category hashing
 * @since 0.1.0
 */
export const rootOf = (leafHashes: ReadonlyArray<Uint8Array>): Uint8Array =>
  foldSubtrees(append(0, [], leafHashes).frontier)

const isHash = (bytes: Uint8Array): boolean => bytes.length === HASH_SIZE

const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–4), or `undefined` when the proof cannot be
 * an inclusion proof of leaf `index` in a tree of `size` leaves (wrong length, index out of range).
 *
 * @category verification
 * @since 0.1.0
 */
export const rootFromInclusion = (
  index: number,
  size: number,
  leaf: Uint8Array,
  path: ReadonlyArray<Uint8Array>
): Uint8Array | undefined => {
  if (!isSize(index) || !isSize(size) || index >= size || !isHash(leaf)) return undefined
  let fn = index
  let sn = size - 1
  let r = leaf
  for (const p of path) {
    if (sn === 0 || !isHash(p)) return undefined
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? r : undefined
}

/**
 * Verifies an inclusion proof (RFC 9162 §2.1.3.2): is `leaf` the hash of leaf `index` in the tree of `size`
 * leaves whose root is `root`?
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyInclusion = (
  index: number,
  size: number,
  leaf: Uint8Array,
  path: ReadonlyArray<Uint8Array>,
  root: Uint8Array
): boolean => {
  const computed = rootFromInclusion(index, size, leaf, path)
  return computed !== undefined && equal(computed, root)
}

/**
 * Verifies a consistency proof (RFC 9162 §2.1.4.2): is the tree of `oldSize` leaves with root `oldRoot` a prefix
 * of the tree of `newSize` leaves with root `newRoot`? Requires `0 < oldSize <= newSize`, as transparency-dev/merkle
 * does: `false` for an old size of 0, and for equal sizes unless the proof is empty and the roots are equal.
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyConsistency = (
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  path: ReadonlyArray<Uint8Array>
): boolean => {
  if (!isSize(oldSize) || !isSize(newSize) || newSize < oldSize || oldSize === 0) return false
  if (oldSize === newSize) return path.length === 0 && equal(oldRoot, newRoot)
  if (path.length === 0 || !path.every(isHash) || !isHash(oldRoot) || !isHash(newRoot)) return false
  // Step 2: when the old tree is a perfect subtree, its root is the proof's implicit first element
  const nodes = isPowerOfTwo(oldSize) ? [oldRoot, ...path] : path
  let fn = oldSize - 1
  let sn = newSize - 1
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2
    sn = Math.floor(sn / 2)
  }
  let fr = nodes[0]!
  let sr = nodes[0]!
  for (let i = 1; i < nodes.length; i++) {
    const c = nodes[i]!
    if (sn === 0) return false
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr)
      sr = nodeHash(c, sr)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      sr = nodeHash(sr, c)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot)
}

/**
 * An inclusion proof as JSON: leaf `leafIndex` is in the tree of `treeSize` leaves (hashes in hex).
 *
 * @category models
 * @since 0.1.0
 */
export const InclusionProof = Schema.Struct({
  leafIndex: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  treeSize: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  path: Schema.Array(Sha256Hex)
})
export type InclusionProof = typeof InclusionProof.Type

/**
 * A consistency proof as JSON: the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves.
 *
 * @category models
 * @since 0.1.0
 */
export const ConsistencyProof = Schema.Struct({
  oldSize: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  newSize: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  path: Schema.Array(Sha256Hex)
})
export type ConsistencyProof = typeof ConsistencyProof.Type

const hashFromHex = (hex: string): Uint8Array | undefined => {
  const bytes = typeof hex === "string" && hex.length === 2 * HASH_SIZE ? Canonical.fromHex(hex) : undefined
  return bytes && bytes.length === HASH_SIZE ? bytes : undefined
}

const pathFromHex = (path: ReadonlyArray<string>): Array<Uint8Array> | undefined => {
  const out: Array<Uint8Array> = []
  for (const hex of path) {
    const bytes = hashFromHex(hex)
    if (!bytes) return undefined
    out.push(bytes)
  }
  return out
}

/**
 * `verifyInclusion` on the JSON form: the proof, the leaf hash and the root, in hex.
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyInclusionProof = (proof: InclusionProof, leafHashHex: string, rootHex: string): boolean => {
  const leaf = hashFromHex(leafHashHex)
  const root = hashFromHex(rootHex)
  const path = Array.isArray(proof.path) ? pathFromHex(proof.path) : undefined
  return (
    leaf !== undefined &&
    root !== undefined &&
    path !== undefined &&
    verifyInclusion(proof.leafIndex, proof.treeSize, leaf, path, root)
  )
}

/**
 * `verifyConsistency` on the JSON form: the proof and both roots, in hex.
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyConsistencyProof = (proof: ConsistencyProof, oldRootHex: string, newRootHex: string): boolean => {
  const oldRoot = hashFromHex(oldRootHex)
  const newRoot = hashFromHex(newRootHex)
  const path = Array.isArray(proof.path) ? pathFromHex(proof.path) : undefined
  return (
    oldRoot !== undefined &&
    newRoot !== undefined &&
    path !== undefined &&
    verifyConsistency(proof.oldSize, proof.newSize, oldRoot, newRoot, path)
  )
}
