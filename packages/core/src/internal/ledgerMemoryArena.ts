/**
 * How the memory ledger store keeps entries the ledger hands it encoded (`LedgerStore.writeEncoded`): each
 * entry's canonical JSON body as UTF-8 bytes in large shared chunks, its entry hash as 32 bytes in one growable
 * array, and an index by hash in a typed open-addressing table (brought up to date by the first lookup after
 * appends, not by each append). No JavaScript object is kept per entry, so a
 * million entries cost the garbage collector nothing to move or mark; an entry object is rebuilt, by parsing its
 * body, only when someone reads it. The body is exactly the text the entry hash covers, so what is read back is
 * what was hashed.
 *
 * Fresh memory is the dearest part of keeping an entry (every new page is a fault: about as much CPU as the rest
 * of the append on a loaded machine), so a body is kept smaller than its text: its three hex hashes (`payloadHash`,
 * `prevHash`, a task's `taskPrevHash`, 64 digits each with their member names) are lifted out and kept as 32 raw
 * bytes each, and put back, digit for digit, when the body is read.
 *
 * @since 0.1.0
 */

const HASH_SIZE = 32
const CHUNK_SIZE = 4 * 1024 * 1024
const PAGE_BITS = 15
const PAGE_ENTRIES = 1 << PAGE_BITS
const PAGE_MASK = PAGE_ENTRIES - 1

// The members lifted out of a body: `,"payloadHash":"<64>","prevHash":"<64>"` (one run, in canonical order the two
// are adjacent) and, for an entry of a task, the last member `,"taskPrevHash":"<64>"`
const PAYLOAD_HASH_KEY = Buffer.from(',"payloadHash":"', "latin1")
const PREV_HASH_KEY = Buffer.from('","prevHash":"', "latin1")
const TASK_PREV_HASH_KEY = Buffer.from(',"taskPrevHash":"', "latin1")
const RUN_LENGTH = PAYLOAD_HASH_KEY.length + 64 + PREV_HASH_KEY.length + 64 + 1
const TASK_RUN_LENGTH = TASK_PREV_HASH_KEY.length + 64 + 1

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
  // Per entry: 2 · chunk + (1 if it has a taskPrevHash), start of its raw hashes, where the lifted run was in its
  // body (-1: the body is kept whole), end of its body
  // Both in arrays of 32,768 entries, added as needed: nothing copied, no page touched twice (a doubling array
  // would copy, and fault fresh pages for, everything it held at each growth). Untouched pages cost nothing.
  private readonly locationPages: Array<Int32Array> = []
  private readonly hashPages: Array<Buffer> = []
  private slots: Int32Array = new Int32Array(2048) // seq + 1 per used slot, 0 for free
  private used = 0
  // Entries below it are in `slots`: appends leave indexing to the next lookup by hash (off the append path, and
  // a random write into a table of megabytes was a cache miss per append)
  private indexed = 0
  count = 0

  mark(): ArenaMark {
    return { count: this.count, chunks: this.chunks.length, position: this.position }
  }

  /**
   * Stores entry `seq` (at least `count`): its body `bytes[start, end)` and its hash `hashes[hashAt, hashAt + 32)`.
   * `payloadHashAt` is where the body's `payloadHash` digits start in `bytes` (-1: unknown, the body is kept
   * whole), `task` whether the body ends with a `taskPrevHash` member. A body whose text is not as announced is
   * kept whole. Entries skipped on the way (the store kept them as objects) get an empty body and a zero hash,
   * never read.
   */
  push(
    seq: number,
    bytes: Uint8Array,
    start: number,
    end: number,
    hashes: Uint8Array,
    hashAt: number,
    payloadHashAt = -1,
    task = false
  ): void {
    while (this.count < seq) this.push(this.count, bytes, start, start, zeroHash, 0)
    const run = payloadHashAt - PAYLOAD_HASH_KEY.length
    const whole = end - start
    let chunk = this.chunks[this.chunks.length - 1]
    // Room for the whole body: a lifted one is shorter, and one whose digits turn out not to be hex is kept whole
    if (chunk === undefined || this.position + whole > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_SIZE, whole))
      this.chunks.push(chunk)
      this.position = 0
    }
    const page = seq >>> PAGE_BITS
    while (this.locationPages.length <= page) {
      this.locationPages.push(new Int32Array(4 * PAGE_ENTRIES))
      this.hashPages.push(Buffer.alloc(HASH_SIZE * PAGE_ENTRIES))
    }
    const at = this.position
    const locations = this.locationPages[page]!
    const l = 4 * (seq & PAGE_MASK)
    // Raw hashes first (decoded and checked in one pass), then the body without the lifted members
    const lifted =
      payloadHashAt >= 0 &&
      liftable(bytes, start, end, run, task) &&
      hexInto(bytes, payloadHashAt, chunk, at) &&
      hexInto(bytes, payloadHashAt + 64 + PREV_HASH_KEY.length, chunk, at + HASH_SIZE) &&
      (!task || hexInto(bytes, end - 1 - 65, chunk, at + 2 * HASH_SIZE))
    let length: number
    if (lifted) {
      let out = at + (task ? 3 : 2) * HASH_SIZE
      out = copy(bytes, start, run, chunk, out)
      locations[l + 2] = out
      out = copy(bytes, run + RUN_LENGTH, task ? end - 1 - TASK_RUN_LENGTH : end - 1, chunk, out)
      chunk[out++] = 0x7d // }
      locations[l + 3] = out
      length = out - at
    } else {
      copy(bytes, start, end, chunk, at)
      locations[l + 2] = -1
      locations[l + 3] = at + whole
      length = whole
    }
    locations[l] = 2 * (this.chunks.length - 1) + (lifted && task ? 1 : 0)
    locations[l + 1] = at
    this.position += length
    copy(hashes, hashAt, hashAt + HASH_SIZE, this.hashPages[page]!, HASH_SIZE * (seq & PAGE_MASK))
    // Not indexed yet: the first lookup by hash indexes every entry appended since the last one
    this.count = seq + 1
  }

  /** Takes back every entry from `mark.count` on (a rolled-back or overwritten write). */
  truncate(mark: ArenaMark): void {
    for (let seq = this.indexed - 1; seq >= mark.count; seq--) this.unindex(seq)
    this.indexed = Math.min(this.indexed, mark.count)
    this.count = Math.min(this.count, mark.count)
    if (mark.chunks <= this.chunks.length) {
      this.chunks.length = mark.chunks
      this.position = mark.position
    }
  }

  /** The entry's canonical JSON body: exactly the bytes it was given. */
  body(seq: number): string {
    const locations = this.locationPages[seq >>> PAGE_BITS]!
    const l = 4 * (seq & PAGE_MASK)
    const chunk = this.chunks[locations[l]! >> 1]!
    const at = locations[l + 1]!
    const cut = locations[l + 2]!
    const end = locations[l + 3]!
    if (cut < 0) return chunk.toString("utf8", at, end)
    const task = (locations[l]! & 1) === 1
    const bodyAt = at + (task ? 3 : 2) * HASH_SIZE
    const hex = (i: number) => chunk.toString("hex", at + i * HASH_SIZE, at + (i + 1) * HASH_SIZE)
    return (
      `${chunk.toString("utf8", bodyAt, cut)},"payloadHash":"${hex(0)}","prevHash":"${hex(1)}"` +
      chunk.toString("utf8", cut, end - 1) +
      (task ? `,"taskPrevHash":"${hex(2)}"}` : "}")
    )
  }

  /** The entry's hash, in hex. */
  hashHex(seq: number): string {
    const at = HASH_SIZE * (seq & PAGE_MASK)
    return this.hashPages[seq >>> PAGE_BITS]!.toString("hex", at, at + HASH_SIZE)
  }

  /** The entries (seq below `count`) whose hash is `hash` (32 bytes), lowest seq first. */
  find(hash: Uint8Array): Array<number> {
    // Indexed in seq order, each entry once (a rehash on the way places the entries before it)
    for (; this.indexed < this.count; this.indexed++) this.index(this.indexed)
    const found: Array<number> = []
    const mask = this.slots.length - 1
    for (let slot = keyOf(hash, 0) & mask; this.slots[slot]! !== 0; slot = (slot + 1) & mask) {
      const seq = this.slots[slot]! - 1
      if (seq < this.count && this.hashEquals(seq, hash)) found.push(seq)
    }
    return found.sort((a, b) => a - b)
  }

  private keyOfEntry(seq: number): number {
    return keyOf(this.hashPages[seq >>> PAGE_BITS]!, HASH_SIZE * (seq & PAGE_MASK))
  }

  private hashEquals(seq: number, hash: Uint8Array): boolean {
    const at = HASH_SIZE * (seq & PAGE_MASK)
    const hashes = this.hashPages[seq >>> PAGE_BITS]!
    for (let i = 0; i < HASH_SIZE; i++) if (hashes[at + i] !== hash[i]) return false
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
    let slot = this.keyOfEntry(seq) & mask
    while (this.slots[slot]! !== 0) slot = (slot + 1) & mask
    this.slots[slot] = seq + 1
  }

  // Entries leave in the reverse order they came (`truncate`), so clearing a slot breaks no probe sequence:
  // every entry still indexed was placed before it
  private unindex(seq: number): void {
    const mask = this.slots.length - 1
    for (let slot = this.keyOfEntry(seq) & mask; this.slots[slot]! !== 0; slot = (slot + 1) & mask) {
      if (this.slots[slot] === seq + 1) {
        this.slots[slot] = 0
        this.used--
        return
      }
    }
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2)
    for (let seq = 0; seq < this.indexed; seq++) this.place(seq)
    this.used = this.indexed
  }
}

const zeroHash = new Uint8Array(HASH_SIZE)

const copy = (from: Uint8Array, start: number, end: number, to: Uint8Array, at: number): number => {
  // A view, not `Buffer#subarray` (a Buffer per call costs more than copying a short body)
  to.set(new Uint8Array(from.buffer, from.byteOffset + start, end - start), at)
  return at + end - start
}

const matches = (bytes: Uint8Array, at: number, literal: Uint8Array): boolean => {
  for (let i = 0; i < literal.length; i++) if (bytes[at + i] !== literal[i]) return false
  return true
}

// Pairs of lowercase hex digits (first << 8 | second) to their byte; -1 for anything else (such a body is kept whole)
const HEX_PAIRS = new Int16Array(1 << 16).fill(-1)
for (let hi = 0; hi < 16; hi++) {
  for (let lo = 0; lo < 16; lo++) {
    HEX_PAIRS[("0123456789abcdef".charCodeAt(hi) << 8) | "0123456789abcdef".charCodeAt(lo)] = (hi << 4) | lo
  }
}

// Whether the body has the lifted members where announced (their digits are checked as they are decoded, by
// `hexInto`): then putting them back gives its bytes exactly
const liftable = (bytes: Uint8Array, start: number, end: number, run: number, task: boolean): boolean => {
  const digits = run + PAYLOAD_HASH_KEY.length
  const prev = digits + 64 + PREV_HASH_KEY.length
  const taskRun = end - 1 - TASK_RUN_LENGTH
  return (
    run > start &&
    prev + 65 <= (task ? taskRun : end - 1) &&
    bytes[end - 1] === 0x7d &&
    matches(bytes, run, PAYLOAD_HASH_KEY) &&
    matches(bytes, digits + 64, PREV_HASH_KEY) &&
    bytes[prev + 64] === 0x22 &&
    (!task || (matches(bytes, taskRun, TASK_PREV_HASH_KEY) && bytes[end - 2] === 0x22))
  )
}

/**
 * Decodes the 64 lowercase hex digits at `from[at]` into `to[out, out + 32)`, a table lookup per pair of digits;
 * `false` (with `to` partly written) when they are not such digits.
 */
const hexInto = (from: Uint8Array, at: number, to: Uint8Array, out: number): boolean => {
  let bad = 0
  for (let i = 0; i < HASH_SIZE; i++) {
    const value = HEX_PAIRS[(from[at + 2 * i]! << 8) | from[at + 2 * i + 1]!]!
    bad |= value
    to[out + i] = value
  }
  return bad >= 0
}

const keyOf = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!
