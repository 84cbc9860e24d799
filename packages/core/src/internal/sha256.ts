/**
 * SHA-256 (FIPS 180-4) in JavaScript, for short inputs only: Merkle leaves (33 bytes, one compression block).
 * A node:crypto call costs about half a microsecond with a hex digest (and several times that with a "buffer"
 * one, which allocates in C++); one block in JavaScript costs a little less, two blocks (an interior node, 65
 * bytes) already more, so `Merkle.nodeHash` and everything longer go to node:crypto. The output is SHA-256, byte
 * for byte (checked against node:crypto at every length 0..200 in `Merkle.test.ts`).
 *
 * @since 0.1.0
 */

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])

/** The longest input hashed here: what fits two blocks with the padding (1 byte) and the length (8 bytes). */
export const maxShort = 128 - 9

// Synchronous and re-entrant-free: every call fills and reads these before returning
const W = new Int32Array(64)
const H = new Int32Array(8)
/** The message, padded: callers write their input at offset 0 (see `digestScratch`). */
const M = new Uint8Array(128)

const compress = (p: number): void => {
  for (let i = 0; i < 16; i++) {
    const q = p + 4 * i
    W[i] = (M[q]! << 24) | (M[q + 1]! << 16) | (M[q + 2]! << 8) | M[q + 3]!
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15]!
    const w2 = W[i - 2]!
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3)
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10)
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0
  }
  let a = H[0]!
  let b = H[1]!
  let c = H[2]!
  let d = H[3]!
  let e = H[4]!
  let f = H[5]!
  let g = H[6]!
  let h = H[7]!
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  H[0] = (H[0]! + a) | 0
  H[1] = (H[1]! + b) | 0
  H[2] = (H[2]! + c) | 0
  H[3] = (H[3]! + d) | 0
  H[4] = (H[4]! + e) | 0
  H[5] = (H[5]! + f) | 0
  H[6] = (H[6]! + g) | 0
  H[7] = (H[7]! + h) | 0
}

/** SHA-256 of the first `n` bytes (`n <= maxShort`) of the scratch message, which it pads in place, into `out[at, at + 32)`. */
const digestScratchInto = (n: number, out: Uint8Array, at: number): void => {
  const blocks = n + 9 <= 64 ? 1 : 2
  const end = blocks * 64
  M[n] = 0x80
  M.fill(0, n + 1, end - 4)
  const bits = n * 8 // below 2^32: the top four length bytes are the zeros just written
  M[end - 4] = bits >>> 24
  M[end - 3] = bits >>> 16
  M[end - 2] = bits >>> 8
  M[end - 1] = bits
  H[0] = 0x6a09e667
  H[1] = 0xbb67ae85 | 0
  H[2] = 0x3c6ef372
  H[3] = 0xa54ff53a | 0
  H[4] = 0x510e527f
  H[5] = 0x9b05688c | 0
  H[6] = 0x1f83d9ab
  H[7] = 0x5be0cd19
  compress(0)
  if (blocks === 2) compress(64)
  for (let i = 0; i < 8; i++) {
    const v = H[i]!
    out[at + 4 * i] = v >>> 24
    out[at + 4 * i + 1] = v >>> 16
    out[at + 4 * i + 2] = v >>> 8
    out[at + 4 * i + 3] = v
  }
}

const digestScratch = (n: number): Buffer => {
  const out = Buffer.allocUnsafe(32)
  digestScratchInto(n, out, 0)
  return out
}

/**
 * SHA-256 of `prefix ‖ a[aAt, aAt + 32)` (a Merkle leaf over a 32-byte hash), or of `prefix ‖ a[aAt, aAt + 32) ‖
 * b[bAt, bAt + 32)` when `b` is given (a Merkle node), written to `out[outAt, outAt + 32)`: no view, no
 * allocation (the ledger's append path hashes packed arrays of hashes). `out` may overlap the inputs.
 */
export const digestHashesInto = (
  prefix: number,
  a: Uint8Array,
  aAt: number,
  b: Uint8Array | undefined,
  bAt: number,
  out: Uint8Array,
  outAt: number
): void => {
  M[0] = prefix
  for (let i = 0; i < 32; i++) M[1 + i] = a[aAt + i]!
  if (b === undefined) {
    digestScratchInto(33, out, outAt)
  } else {
    for (let i = 0; i < 32; i++) M[33 + i] = b[bAt + i]!
    digestScratchInto(65, out, outAt)
  }
}

/** SHA-256 of `prefix ‖ a ‖ b` (`b` optional); the caller checks `1 + a.length + b.length <= maxShort`. */
export const digestPrefixed = (prefix: number, a: Uint8Array, b?: Uint8Array): Buffer => {
  M[0] = prefix
  M.set(a, 1)
  let n = 1 + a.length
  if (b !== undefined) {
    M.set(b, n)
    n += b.length
  }
  return digestScratch(n)
}
