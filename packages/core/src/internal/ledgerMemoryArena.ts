/**
 * How the memory ledger store keeps entries the ledger hands it encoded (`LedgerStore.writeEncoded`): each
 * entry's canonical JSON body as UTF-8 bytes in large shared chunks, its entry hash as 32 bytes in one growable
 * array, and an index by hash in a typed open-addressing table. No JavaScript object is kept per entry, so a
 * million entries cost the garbage collector nothing to move or mark; an entry object is rebuilt, by parsing its
 * body, only when someone reads it. The body is exactly the text the entry hash covers, so what is read back is
 * what was hashed.
 *
 * @since 0.1.0
 */

const HASH_SIZE = 32
const CHUNK_SIZE = 4 * 1024 * 1024

/** Where the bytes written since a `mark` end: `truncate` takes them back. */
export interface ArenaMark {
  readonly count: number
  readonly chunks: number
  readonly position: number
}

/** @internal */
export class EntryArena {
  private readonly chunks: Array<Buffer> = []
  private position = 0
  // Per entry: chunk, start, end of its body
  private locations: Int32Array = new Int32Array(3 * 1024)
  private hashes: Buffer = Buffer.alloc(HASH_SIZE * 1024)
  private slots: Int32Array = new Int32Array(2048) // seq + 1 per used slot, 0 for free
  private used = 0
  count = 0

  mark(): ArenaMark {
    return { count: this.count, chunks: this.chunks.length, position: this.position }
  }

  /**
   * Stores entry `seq` (at least `count`): its body `bytes[start, end)` and its hash `hashes[hashAt, hashAt + 32)`.
   * Entries skipped on the way (the store kept them as objects) get an empty body and a zero hash, never read.
   */
  push(seq: number, bytes: Uint8Array, start: number, end: number, hashes: Uint8Array, hashAt: number): void {
    while (this.count < seq) this.push(this.count, bytes, start, start, zeroHash, 0)
    const length = end - start
    let chunk = this.chunks[this.chunks.length - 1]
    if (chunk === undefined || this.position + length > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_SIZE, length))
      this.chunks.push(chunk)
      this.position = 0
    }
    chunk.set(bytes.subarray(start, end), this.position)
    if (3 * seq + 3 > this.locations.length) this.locations = grow(this.locations, 3 * seq + 3)
    this.locations[3 * seq] = this.chunks.length - 1
    this.locations[3 * seq + 1] = this.position
    this.locations[3 * seq + 2] = this.position + length
    this.position += length
    if (HASH_SIZE * (seq + 1) > this.hashes.length) {
      const grown = Buffer.alloc(this.hashes.length * 2)
      grown.set(this.hashes)
      this.hashes = grown
    }
    this.hashes.set(hashes.subarray(hashAt, hashAt + HASH_SIZE), HASH_SIZE * seq)
    // Indexed before it counts: a rehash on the way places the entries before it, then it is placed once
    this.index(seq)
    this.count = seq + 1
  }

  /** Takes back every entry from `mark.count` on (a rolled-back or overwritten write). */
  truncate(mark: ArenaMark): void {
    for (let seq = this.count - 1; seq >= mark.count; seq--) this.unindex(seq)
    this.count = Math.min(this.count, mark.count)
    if (mark.chunks <= this.chunks.length) {
      this.chunks.length = mark.chunks
      this.position = mark.position
    }
  }

  /** The entry's canonical JSON body. */
  body(seq: number): string {
    const at = 3 * seq
    return this.chunks[this.locations[at]!]!.toString("utf8", this.locations[at + 1]!, this.locations[at + 2]!)
  }

  /** The entry's hash, in hex. */
  hashHex(seq: number): string {
    return this.hashes.toString("hex", HASH_SIZE * seq, HASH_SIZE * (seq + 1))
  }

  /** The entries (seq below `count`) whose hash is `hash` (32 bytes), lowest seq first. */
  find(hash: Uint8Array): Array<number> {
    const found: Array<number> = []
    const mask = this.slots.length - 1
    for (let slot = keyOf(hash, 0) & mask; this.slots[slot]! !== 0; slot = (slot + 1) & mask) {
      const seq = this.slots[slot]! - 1
      if (seq < this.count && this.hashEquals(seq, hash)) found.push(seq)
    }
    return found.sort((a, b) => a - b)
  }

  private hashEquals(seq: number, hash: Uint8Array): boolean {
    const at = HASH_SIZE * seq
    for (let i = 0; i < HASH_SIZE; i++) if (this.hashes[at + i] !== hash[i]) return false
    return true
  }

  // Linear probing keyed by the hash's first four bytes (uniform: they are SHA-256 output)
  private index(seq: number): void {
    if (2 * (this.used + 1) > this.slots.length) this.rehash()
    this.place(seq)
    this.used++
  }

  private place(seq: number): void {
    const mask = this.slots.length - 1
    let slot = keyOf(this.hashes, HASH_SIZE * seq) & mask
    while (this.slots[slot]! !== 0) slot = (slot + 1) & mask
    this.slots[slot] = seq + 1
  }

  // Entries leave in the reverse order they came (`truncate`), so clearing a slot breaks no probe sequence:
  // every entry still indexed was placed before it
  private unindex(seq: number): void {
    const mask = this.slots.length - 1
    for (let slot = keyOf(this.hashes, HASH_SIZE * seq) & mask; this.slots[slot]! !== 0; slot = (slot + 1) & mask) {
      if (this.slots[slot] === seq + 1) {
        this.slots[slot] = 0
        this.used--
        return
      }
    }
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2)
    for (let seq = 0; seq < this.count; seq++) this.place(seq)
    this.used = this.count
  }
}

const zeroHash = new Uint8Array(HASH_SIZE)

const keyOf = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!

const grow = (array: Int32Array, atLeast: number): Int32Array => {
  const grown = new Int32Array(Math.max(atLeast, array.length * 2))
  grown.set(array)
  return grown
}
