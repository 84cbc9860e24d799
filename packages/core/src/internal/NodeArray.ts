/**
 * The memory ledger's Merkle node store: every completed perfect subtree, addressed by `(level, index)` as
 * `Merkle` documents, packed per level into one growable byte array (32 bytes per node, node `i` at offset
 * `32 · i`). A million leaves take about two million nodes, 64 MB, with no per-node object.
 *
 * Nodes are written once, in index order within each level (the order `Merkle.append` produces them), and
 * never change — except through `overwrite`, which exists so tests can tamper with a stored node.
 *
 * @since 0.1.0
 */

const HASH_SIZE = 32

/** @internal */
export class NodeArray {
  private readonly levels: Array<Uint8Array> = []
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
    const offset = index * HASH_SIZE
    return this.levels[level]!.slice(offset, offset + HASH_SIZE)
  }

  /** Whether `push(level, index, …)` would be the next write at that level. */
  isNext(level: number, index: number): boolean {
    return index === this.count(level)
  }

  /** Writes the next node of a level (`index` must equal `count(level)`). */
  push(level: number, index: number, hash: Uint8Array): void {
    if (!this.isNext(level, index) || hash.length !== HASH_SIZE) {
      throw new RangeError(`Node (${level}, ${index}) is not the next node of level ${level}`)
    }
    let bytes = this.levels[level]
    if (bytes === undefined) {
      bytes = new Uint8Array(HASH_SIZE * 1024)
      this.levels[level] = bytes
      this.counts[level] = 0
    } else if ((index + 1) * HASH_SIZE > bytes.length) {
      // Doubling keeps appends amortised O(1)
      const grown = new Uint8Array(bytes.length * 2)
      grown.set(bytes)
      bytes = grown
      this.levels[level] = bytes
    }
    bytes.set(hash, index * HASH_SIZE)
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
    this.levels[level]!.set(hash, index * HASH_SIZE)
  }
}
