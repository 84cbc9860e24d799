import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Canonical, Merkle } from "@mandate/core"
import { Schema } from "effect"

// ---- A straightforward recursive reference, transcribed from RFC 9162 §2.1 --------------------------------
const sha256 = (...parts: Array<Uint8Array>) => Canonical.sha256(Buffer.concat(parts))
const refLeaf = (d: Uint8Array) => sha256(Uint8Array.of(0), d)
const refNode = (l: Uint8Array, r: Uint8Array) => sha256(Uint8Array.of(1), l, r)
const k = (n: number) => {
  let p = 1
  while (p * 2 < n) p *= 2
  return p
}
// §2.1.1 MTH
const MTH = (D: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (D.length === 0) return sha256()
  if (D.length === 1) return refLeaf(D[0]!)
  const split = k(D.length)
  return refNode(MTH(D.slice(0, split)), MTH(D.slice(split)))
}
// §2.1.3.1 PATH
const PATH = (m: number, D: ReadonlyArray<Uint8Array>): Array<Uint8Array> => {
  if (D.length === 1) return []
  const split = k(D.length)
  return m < split
    ? [...PATH(m, D.slice(0, split)), MTH(D.slice(split))]
    : [...PATH(m - split, D.slice(split)), MTH(D.slice(0, split))]
}
// §2.1.4.1 PROOF / SUBPROOF
const SUBPROOF = (m: number, D: ReadonlyArray<Uint8Array>, b: boolean): Array<Uint8Array> => {
  if (m === D.length) return b ? [] : [MTH(D)]
  const split = k(D.length)
  return m <= split
    ? [...SUBPROOF(m, D.slice(0, split), b), MTH(D.slice(split))]
    : [...SUBPROOF(m - split, D.slice(split), false), MTH(D.slice(0, split))]
}
const PROOF = (m: number, D: ReadonlyArray<Uint8Array>) => SUBPROOF(m, D, true)

const hex = (b: Uint8Array) => Canonical.toHex(b)
const bytes = (h: string) => Canonical.fromHex(h)!
const hexes = (list: ReadonlyArray<Uint8Array>) => list.map(hex)

// A stored tree built incrementally, one leaf at a time, the way a ledger builds it
const MAX = 64
const data = Array.from({ length: MAX }, (_, i) => new TextEncoder().encode(`leaf-${i}`))
const stored = new Map<string, Uint8Array>()
{
  let frontier: ReadonlyArray<Uint8Array> = []
  for (let i = 0; i < MAX; i++) {
    const appended = Merkle.append(i, frontier, [Merkle.leafHash(data[i]!)])
    for (const node of appended.nodes) {
      assert.isFalse(stored.has(`${node.level}:${node.index}`), "a node is written once")
      stored.set(`${node.level}:${node.index}`, node.hash)
    }
    frontier = appended.frontier
  }
}
// MTH of every prefix, from the reference
const refRoots = Array.from({ length: MAX + 1 }, (_, n) => MTH(data.slice(0, n)))
const read: Merkle.NodeReader = (level, index) => {
  const hash = stored.get(`${level}:${index}`)
  if (!hash) throw new Error(`read a node that does not exist: (${level}, ${index})`)
  return hash
}

const flip = (proof: ReadonlyArray<Uint8Array>, i: number) =>
  proof.map((h, j) => (j === i ? Uint8Array.from(h, (b, n) => (n === 0 ? b ^ 8 : b)) : h))

describe("Merkle hashing (RFC 9162 §2.1, transparency-dev/merkle rfc6962 vectors)", () => {
  it("hashes the empty tree, leaves and nodes with the 0x00 / 0x01 prefixes", () => {
    assert.strictEqual(hex(Merkle.emptyRoot), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert.strictEqual(
      hex(Merkle.leafHash(new Uint8Array(0))),
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert.strictEqual(
      hex(Merkle.leafHash(new TextEncoder().encode("L123456"))),
      "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert.strictEqual(
      hex(Merkle.nodeHash(new TextEncoder().encode("N123"), new TextEncoder().encode("N456"))),
      "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    assert.strictEqual(hex(Merkle.rootOf([])), hex(Merkle.emptyRoot))
  })
})

describe("Merkle leaf and node hashes against node:crypto", () => {
  // Short inputs are hashed by a JavaScript SHA-256 (one or two blocks), longer ones by node:crypto: both must be
  // SHA-256 at every length, across the one-block / two-block / node:crypto boundaries (55, 119 bytes)
  const nodeSha = (...parts: Array<Uint8Array>) => NodeCrypto.createHash("sha256").update(Buffer.concat(parts)).digest()
  it("leafHash(data) is SHA-256(0x00 ‖ data) for every data length 0..200", () => {
    for (let n = 0; n <= 200; n++) {
      const data = NodeCrypto.randomBytes(n)
      assert.deepStrictEqual(Buffer.from(Merkle.leafHash(data)), nodeSha(Uint8Array.of(0), data), `length ${n}`)
    }
  })
  it("nodeHash(l, r) is SHA-256(0x01 ‖ l ‖ r) for 32-byte children and other lengths", () => {
    for (let i = 0; i < 500; i++) {
      const l = NodeCrypto.randomBytes(i < 400 ? 32 : i - 400)
      const r = NodeCrypto.randomBytes(i < 400 ? 32 : 100 - (i - 400))
      assert.deepStrictEqual(Buffer.from(Merkle.nodeHash(l, r)), nodeSha(Uint8Array.of(1), l, r))
    }
  })
  it("interleaved leaf and node hashes do not disturb one another", () => {
    const a = NodeCrypto.randomBytes(32)
    const b = NodeCrypto.randomBytes(32)
    const leaf = Merkle.leafHash(a)
    const node = Merkle.nodeHash(a, b)
    assert.deepStrictEqual(Buffer.from(leaf), nodeSha(Uint8Array.of(0), a))
    assert.deepStrictEqual(Buffer.from(node), nodeSha(Uint8Array.of(1), a, b))
  })
})

describe("Merkle trees against the RFC 9162 reference, every size 1..64", () => {
  it("root(size) of every past size, read from the incrementally stored nodes, is MTH", () => {
    for (let n = 1; n <= MAX; n++) {
      const expected = hex(refRoots[n]!)
      assert.strictEqual(hex(Merkle.rootAt(n, read)), expected, `size ${n}`)
      assert.strictEqual(hex(Merkle.rootOf(data.slice(0, n).map(Merkle.leafHash))), expected, `rootOf ${n}`)
      // root(size) costs at most log2(size) node reads
      assert.isAtMost(Merkle.subtreeNodes(0, n).length, Math.ceil(Math.log2(n)) + 1)
    }
  })

  it("appending in batches stores the same nodes as appending one leaf at a time", () => {
    for (const cut of [1, 5, 16, 33]) {
      const first = Merkle.append(0, [], data.slice(0, cut).map(Merkle.leafHash))
      const second = Merkle.append(cut, first.frontier, data.slice(cut).map(Merkle.leafHash))
      const nodes = [...first.nodes, ...second.nodes]
      assert.strictEqual(nodes.length, stored.size)
      for (const node of nodes) assert.strictEqual(hex(node.hash), hex(read(node.level, node.index)))
      assert.strictEqual(hex(Merkle.foldSubtrees(second.frontier)), hex(MTH(data)))
    }
  })

  it("generates PATH(m, D[n]) for every leaf of every size, and verifies it", () => {
    for (let n = 1; n <= MAX; n++) {
      const root = refRoots[n]!
      for (let m = 0; m < n; m++) {
        const path = Merkle.inclusionPath(m, n, read)
        assert.deepStrictEqual(hexes(path), hexes(PATH(m, data.slice(0, n))), `PATH(${m}, ${n})`)
        const leaf = refLeaf(data[m]!)
        assert.isTrue(Merkle.verifyInclusion(m, n, leaf, path, root), `verify(${m}, ${n})`)
        assert.isAtMost(Merkle.inclusionNodes(m, n).length, 2 * Math.ceil(Math.log2(n)) + 1)
      }
    }
  })

  it("generates PROOF(m, D[n]) for every pair of sizes, and verifies it", () => {
    for (let n = 1; n <= MAX; n++) {
      const newRoot = refRoots[n]!
      for (let m = 1; m <= n; m++) {
        const path = Merkle.consistencyPath(m, n, read)
        assert.deepStrictEqual(hexes(path), hexes(m === n ? [] : PROOF(m, data.slice(0, n))), `PROOF(${m}, ${n})`)
        assert.isTrue(Merkle.verifyConsistency(m, n, refRoots[m]!, newRoot, path), `verify(${m}, ${n})`)
      }
    }
  })

  it("rejects tampered inclusion proofs, wrong indexes and wrong sizes", () => {
    const someHash = bytes("abacaba000000000000000000000000000000000000000000060061e00123456")
    for (let n = 1; n <= MAX; n++) {
      const root = refRoots[n]!
      for (let m = 0; m < n; m++) {
        const leaf = refLeaf(data[m]!)
        const path = Merkle.inclusionPath(m, n, read)
        const probes: Array<[string, number, number, Uint8Array, ReadonlyArray<Uint8Array>, Uint8Array]> = [
          ["index - 1", m - 1, n, leaf, path, root],
          ["index + 1", m + 1, n, leaf, path, root],
          ["index ^ 2", m ^ 2, n, leaf, path, root],
          ["size * 2", m, n * 2, leaf, path, root],
          ["size / 2", m, Math.floor(n / 2), leaf, path, root],
          ["wrong leaf", m, n, refLeaf(new TextEncoder().encode("WrongLeaf")), path, root],
          ["empty root", m, n, leaf, path, Merkle.emptyRoot],
          ["random root", m, n, leaf, path, someHash],
          ["trailing garbage", m, n, leaf, [...path, new Uint8Array(0)], root],
          ["trailing root", m, n, leaf, [...path, root], root],
          ["preceding garbage", m, n, leaf, [new Uint8Array(0), ...path], root],
          ["preceding root", m, n, leaf, [root, ...path], root],
          ...path.map(
            (_, i) =>
              [`modified proof[${i}]`, m, n, leaf, flip(path, i), root] as [
                string,
                number,
                number,
                Uint8Array,
                ReadonlyArray<Uint8Array>,
                Uint8Array
              ]
          )
        ]
        if (path.length > 0) probes.push(["removed component", m, n, leaf, path.slice(0, -1), root])
        if (path.length > 1)
          probes.push(["inserted component", m, n, leaf, [path[0]!, someHash, ...path.slice(1)], root])
        for (const [desc, index, size, l, p, r] of probes) {
          if (desc === "index ^ 2" && index === m) continue
          assert.isFalse(Merkle.verifyInclusion(index, size, l, p, r), `(${m}, ${n}) accepted ${desc}`)
        }
      }
    }
  })

  it("rejects tampered consistency proofs, wrong sizes and wrong roots", () => {
    for (let n = 2; n <= MAX; n++) {
      const newRoot = refRoots[n]!
      for (let m = 1; m < n; m++) {
        const oldRoot = refRoots[m]!
        const path = Merkle.consistencyPath(m, n, read)
        const wrong = new TextEncoder().encode("WrongRoot")
        const probes: Array<[string, number, number, Uint8Array, Uint8Array, ReadonlyArray<Uint8Array>]> = [
          ["size1 - 1", m - 1, n, oldRoot, newRoot, path],
          ["size1 + 1", m + 1, n, oldRoot, newRoot, path],
          ["size1 ^ 2", m ^ 2, n, oldRoot, newRoot, path],
          ["size2 * 2", m, n * 2, oldRoot, newRoot, path],
          ["size2 / 2", m, Math.floor(n / 2), oldRoot, newRoot, path],
          ["wrong root1", m, n, wrong, newRoot, path],
          ["wrong root2", m, n, oldRoot, wrong, path],
          ["swapped roots", m, n, newRoot, oldRoot, path],
          ["empty proof", m, n, oldRoot, newRoot, []],
          ["trailing garbage", m, n, oldRoot, newRoot, [...path, new Uint8Array(0)]],
          ["trailing root1", m, n, oldRoot, newRoot, [...path, oldRoot]],
          ["trailing root2", m, n, oldRoot, newRoot, [...path, newRoot]],
          ["preceding garbage", m, n, oldRoot, newRoot, [new Uint8Array(0), ...path]],
          ["preceding root1", m, n, oldRoot, newRoot, [oldRoot, ...path]],
          ["preceding root2", m, n, oldRoot, newRoot, [newRoot, ...path]],
          ["preceding proof[0]", m, n, oldRoot, newRoot, [path[0]!, ...path]],
          ["truncated proof", m, n, oldRoot, newRoot, path.slice(0, -1)],
          ...path.map(
            (_, i) =>
              [`modified proof[${i}]`, m, n, oldRoot, newRoot, flip(path, i)] as [
                string,
                number,
                number,
                Uint8Array,
                Uint8Array,
                ReadonlyArray<Uint8Array>
              ]
          )
        ]
        for (const [desc, s1, s2, r1, r2, p] of probes) {
          if (desc === "size1 ^ 2" && s1 === m) continue
          assert.isFalse(Merkle.verifyConsistency(s1, s2, r1, r2, p), `(${m}, ${n}) accepted ${desc}`)
        }
      }
    }
  })

  it("handles the trivial consistency cases like transparency-dev/merkle", () => {
    const r1 = new TextEncoder().encode("don't care 1")
    const r2 = new TextEncoder().encode("don't care 2")
    const cases: Array<[number, number, Uint8Array, Uint8Array, ReadonlyArray<Uint8Array>, boolean]> = [
      [0, 0, r1, r2, [], false],
      [1, 1, r1, r2, [], false],
      // transparency-dev/merkle refuses a proof from the empty tree, even (0, 0) with equal roots
      [0, 0, r1, r1, [], false],
      [0, 1, r1, r2, [], false],
      [0, 0, Merkle.emptyRoot, Merkle.emptyRoot, [], false],
      [0, 5, Merkle.emptyRoot, r2, [], false],
      [1, 1, r2, r2, [], true],
      [1, 0, r1, r2, [], false],
      [2, 1, r1, r2, [], false],
      [1, 2, r1, r2, [], false],
      [0, 0, Merkle.emptyRoot, r2, [], false],
      [0, 0, Merkle.emptyRoot, Merkle.emptyRoot, [Merkle.emptyRoot], false],
      [0, 1, Merkle.emptyRoot, Merkle.emptyRoot, [Merkle.emptyRoot], false],
      [1, 1, Merkle.emptyRoot, Merkle.emptyRoot, [Merkle.emptyRoot], false]
    ]
    for (const [m, n, a, b, p, ok] of cases) {
      assert.strictEqual(Merkle.verifyConsistency(m, n, a, b, p), ok, `(${m}, ${n})`)
    }
    assert.deepStrictEqual(Merkle.consistencyRanges(0, 5), [])
    assert.deepStrictEqual(Merkle.consistencyRanges(5, 5), [])
  })
})

describe("Merkle known-answer vectors (transparency-dev/merkle proof/verify_test.go)", () => {
  const leaves = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f"
  ].map((h) => Buffer.from(h, "hex"))
  const roots = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
  ]
  // leaf is 1-based in the source vectors
  const inclusion: Array<[number, number, Array<string>]> = [
    [
      1,
      8,
      [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
      ]
    ],
    [
      6,
      8,
      [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
      ]
    ],
    [3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
    [
      2,
      5,
      [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
      ]
    ]
  ]
  const consistency: Array<[number, number, Array<string>]> = [
    [1, 1, []],
    [
      1,
      8,
      [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
      ]
    ],
    [
      6,
      8,
      [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
      ]
    ],
    [
      2,
      5,
      [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
      ]
    ],
    [
      6,
      7,
      [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
      ]
    ]
  ]
  const tree = new Map<string, Uint8Array>()
  for (const node of Merkle.append(0, [], leaves.map(Merkle.leafHash)).nodes) {
    tree.set(`${node.level}:${node.index}`, node.hash)
  }
  const readKat: Merkle.NodeReader = (level, index) => tree.get(`${level}:${index}`)!

  it("computes the roots of the 8-leaf tree at every size", () => {
    for (let n = 1; n <= 8; n++) {
      assert.strictEqual(hex(Merkle.rootOf(leaves.slice(0, n).map(Merkle.leafHash))), roots[n - 1])
      assert.strictEqual(hex(Merkle.rootAt(n, readKat)), roots[n - 1])
    }
  })

  it("generates and verifies the inclusion proofs", () => {
    for (const [leaf, size, path] of inclusion) {
      assert.deepStrictEqual(hexes(Merkle.inclusionPath(leaf - 1, size, readKat)), path)
      const proof = { leafIndex: leaf - 1, treeSize: size, path }
      assert.isTrue(Merkle.verifyInclusionProof(proof, hex(Merkle.leafHash(leaves[leaf - 1]!)), roots[size - 1]!))
      assert.isFalse(Merkle.verifyInclusionProof(proof, hex(Merkle.leafHash(leaves[leaf - 1]!)), roots[size - 2] ?? ""))
    }
  })

  it("generates and verifies the consistency proofs", () => {
    for (const [m, n, path] of consistency) {
      assert.deepStrictEqual(hexes(Merkle.consistencyPath(m, n, readKat)), path)
      const proof = { oldSize: m, newSize: n, path }
      assert.isTrue(Merkle.verifyConsistencyProof(proof, roots[m - 1]!, roots[n - 1]!))
      if (m !== n) assert.isFalse(Merkle.verifyConsistencyProof(proof, roots[n - 1]!, roots[m - 1]!))
    }
  })

  it("reads the same stored nodes as transparency-dev's proof node lists", () => {
    // (level, index) lists from proof/proof_test.go; a rehashed run there is one range here (left to right)
    const id = (level: number, index: number) => ({ level, index })
    const byRange = (ranges: ReadonlyArray<readonly [number, number]>) =>
      ranges.map(([b, e]) => Merkle.subtreeNodes(b, e))
    assert.deepStrictEqual(byRange(Merkle.inclusionRanges(0, 7)), [[id(0, 1)], [id(1, 1)], [id(1, 2), id(0, 6)]])
    assert.deepStrictEqual(byRange(Merkle.inclusionRanges(6, 7)), [[id(1, 2)], [id(2, 0)]])
    assert.deepStrictEqual(byRange(Merkle.inclusionRanges(3, 5)), [[id(0, 2)], [id(1, 0)], [id(0, 4)]])
    assert.deepStrictEqual(byRange(Merkle.inclusionRanges(10, 15)), [
      [id(0, 11)],
      [id(1, 4)],
      [id(1, 6), id(0, 14)],
      [id(3, 0)]
    ])
    assert.deepStrictEqual(byRange(Merkle.inclusionRanges(81, 95)), [
      [id(0, 80)],
      [id(1, 41)],
      [id(2, 21)],
      [id(2, 22), id(1, 46), id(0, 94)],
      [id(4, 4)],
      [id(6, 0)]
    ])
    assert.deepStrictEqual(byRange(Merkle.consistencyRanges(5, 7)), [[id(0, 4)], [id(0, 5)], [id(0, 6)], [id(2, 0)]])
    assert.deepStrictEqual(byRange(Merkle.consistencyRanges(3, 7)), [
      [id(0, 2)],
      [id(0, 3)],
      [id(1, 0)],
      [id(1, 2), id(0, 6)]
    ])
    assert.deepStrictEqual(byRange(Merkle.consistencyRanges(24, 31)), [
      [id(3, 2)],
      [id(2, 6), id(1, 14), id(0, 30)],
      [id(4, 0)]
    ])
    assert.deepStrictEqual(byRange(Merkle.consistencyRanges(81, 95)), [
      [id(0, 80)],
      [id(0, 81)],
      [id(1, 41)],
      [id(2, 21)],
      [id(2, 22), id(1, 46), id(0, 94)],
      [id(4, 4)],
      [id(6, 0)]
    ])
  })
})

describe("Merkle arithmetic beyond 32 bits", () => {
  // A tree whose leaves are all equal: a perfect subtree's hash depends only on its level, so proofs over
  // trillions of leaves can be computed and checked without building the tree
  const leaf = Merkle.leafHash(new TextEncoder().encode("same"))
  const perfect: Array<Uint8Array> = [leaf]
  for (let level = 1; level <= 52; level++) perfect.push(Merkle.nodeHash(perfect[level - 1]!, perfect[level - 1]!))
  const uniform: Merkle.NodeReader = (level) => perfect[level]!

  it("proves and verifies inclusion and consistency at sizes above 2^32", () => {
    for (const [m, n] of [
      [2 ** 32 + 7, 2 ** 33 + 3],
      [0, 2 ** 40 + 1],
      [2 ** 45 - 1, 2 ** 45],
      [3 * 2 ** 40 + 12345, 2 ** 50 - 3]
    ] as const) {
      const root = Merkle.rootAt(n, uniform)
      const path = Merkle.inclusionPath(m, n, uniform)
      assert.isTrue(Merkle.verifyInclusion(m, n, leaf, path, root), `inclusion (${m}, ${n})`)
      assert.isFalse(Merkle.verifyInclusion(m, n * 2, leaf, path, root))
      const old = m + 1
      const consistency = Merkle.consistencyPath(old, n, uniform)
      assert.isTrue(
        Merkle.verifyConsistency(old, n, Merkle.rootAt(old, uniform), root, consistency),
        `consistency (${old}, ${n})`
      )
    }
  })

  it.prop(
    "subtreeNodes tiles [0, size) with one aligned perfect subtree per set bit",
    [Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 52 }))],
    ([size]) => {
      const nodes = Merkle.subtreeNodes(0, size)
      let offset = 0
      for (const { level, index } of nodes) {
        assert.strictEqual(index * 2 ** level, offset)
        offset += 2 ** level
      }
      assert.strictEqual(offset, size)
      assert.strictEqual(nodes.length, size.toString(2).replaceAll("0", "").length)
    }
  )
})
