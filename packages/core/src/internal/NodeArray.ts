/**
 * The memory ledger's Merkle node store: every completed perfect subtree, addressed by `(level, index)` as
 * `Merkle` documents, packed per level into byte arrays of 32,768 nodes (1 MiB; 32 bytes per node). A level's
 * first array grows by doubling up to that size, then the level adds arrays: nothing is copied again once a level
 * is large, and no memory is touched twice (fresh pages are the dear part of keeping a node). A million leaves take
 * about two million nodes, 64 MB, with no per-node object.
 *
 * Nodes are written once, in index order within each level (the order `Merkle.append` produces them), and
 * never change — except through `overwrite`, which exists so tests can tamper with a stored node.
 *
 * @since 0.1.0
 */

const HASH_SIZE = 32
const CHUNK_BITS = 15
const CHUNK_NODES = 1 << CHUNK_BITS
const CHUNK_MASK = CHUNK_NODES - 1

/** @internal */
export class NodeArray {
  // Per level, its arrays: node `i` is in array `i >> CHUNK_BITS` at `32 · (i & CHUNK_MASK)`
  private readonly levels: Array<Array<Uint8Array>> = []
  private readonly counts: Array<number> = []

  /** How many nodes level `level` holds (level 0: the number of leaves). */
  count(level: number): number {
    return this.counts[level] ?? 0
  }

  /**
   * A copy of the node's hash, or `undefined` when it was never written. A copy, like a database read: a caller
   * that keeps it (the ledger caches its frontier) must not see later writes to the array.
   */
  get(level: number, index: number): Uint8Array | undefined {
    if (index < 0 || index >= this.count(level) || !Number.isInteger(index)) return undefined
    const offset = (index & CHUNK_MASK) * HASH_SIZE
    return this.levels[level]![index >>> CHUNK_BITS]!.slice(offset, offset + HASH_SIZE)
  }

  /** Whether `push(level, index, …)` would be the next write at that level. */
  isNext(level: number, index: number): boolean {
    return index === this.count(level)
  }

  /** Writes the next node of a level (`index` must equal `count(level)`). */
  push(level: number, index: number, hash: Uint8Array): void {
    if (hash.length !== HASH_SIZE) throw new RangeError(`Node (${level}, ${index}) is not ${HASH_SIZE} bytes`)
    this.pushFrom(level, index, hash, 0)
  }

  /** `push` of the hash at `from[at, at + 32)`: copied byte by byte, no view made per node. */
  pushFrom(level: number, index: number, from: Uint8Array, at: number): void {
    if (!this.isNext(level, index) || at < 0 || at + HASH_SIZE > from.length) {
      throw new RangeError(`Node (${level}, ${index}) is not the next node of level ${level}`)
    }
    let chunks = this.levels[level]
    if (chunks === undefined) {
      chunks = [new Uint8Array(HASH_SIZE * 1024)]
      this.levels[level] = chunks
      this.counts[level] = 0
    }
    const c = index >>> CHUNK_BITS
    let bytes = chunks[c]
    if (bytes === undefined) {
      bytes = new Uint8Array(HASH_SIZE * CHUNK_NODES)
      chunks[c] = bytes
    } else if (((index & CHUNK_MASK) + 1) * HASH_SIZE > bytes.length) {
      // The first array doubles (amortised O(1)) until it is full size
      const grown = new Uint8Array(Math.min(bytes.length * 2, HASH_SIZE * CHUNK_NODES))
      grown.set(bytes)
      bytes = grown
      chunks[c] = bytes
    }
    const to = (index & CHUNK_MASK) * HASH_SIZE
    for (let i = 0; i < HASH_SIZE; i++) bytes[to + i] = from[at + i]!
    this.counts[level] = index + 1
  }

  /** Takes back the last node of a level (`index` must be that node): a rolled-back write. */
  pop(level: number, index: number): void {
    if (index !== this.count(level) - 1) throw new RangeError(`Node (${level}, ${index}) is not the last node`)
    this.counts[level] = index
  }

  /** Replaces a stored node (tamper tests only). */
  overwrite(level: number, index: number, hash: Uint8Array): void {
    if (index < 0 || index >= this.count(level) || hash.length !== HASH_SIZE) {
      throw new RangeError(`Node (${level}, ${index}) does not exist`)
    }
    this.levels[level]![index >>> CHUNK_BITS]!.set(hash, (index & CHUNK_MASK) * HASH_SIZE)
  }
}
