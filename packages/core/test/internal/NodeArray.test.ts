import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { NodeArray } from "../../src/internal/NodeArray.ts"

describe("internal/NodeArray", () => {
  it("gives back every node across its arrays; pop takes back the last, overwrite replaces one", () => {
    const nodes = new NodeArray()
    const n = 100_000 // more than three arrays of 32,768 nodes at level 0
    const hashes = NodeCrypto.randomBytes(32 * n)
    const hash = (i: number) => hashes.subarray(32 * i, 32 * i + 32)
    for (let i = 0; i < n; i++) {
      nodes.push(0, i, hash(i))
      if (i % 2 === 1) nodes.push(1, (i - 1) / 2, hash(n - 1 - i))
    }
    assert.strictEqual(nodes.count(0), n)
    assert.strictEqual(nodes.count(1), n / 2)
    for (let i = 0; i < n; i++) {
      assert.deepStrictEqual(nodes.get(0, i), new Uint8Array(hash(i)), `node (0, ${i})`)
      if (i < n / 2) assert.deepStrictEqual(nodes.get(1, i), new Uint8Array(hash(n - 2 - 2 * i)), `node (1, ${i})`)
    }
    assert.isUndefined(nodes.get(0, n))
    assert.isUndefined(nodes.get(2, 0))
    assert.throws(() => nodes.push(0, n + 1, hash(0)), /not the next node/)
    // A copy: later writes do not show through a node read before
    const read = nodes.get(0, 40_000)!
    nodes.overwrite(0, 40_000, hash(0))
    assert.deepStrictEqual(read, new Uint8Array(hash(40_000)))
    assert.deepStrictEqual(nodes.get(0, 40_000), new Uint8Array(hash(0)))
    nodes.pop(0, n - 1)
    assert.strictEqual(nodes.count(0), n - 1)
    nodes.push(0, n - 1, hash(7))
    assert.deepStrictEqual(nodes.get(0, n - 1), new Uint8Array(hash(7)))
  })
})
