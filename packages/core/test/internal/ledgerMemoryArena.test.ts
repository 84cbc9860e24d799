import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { EntryArena } from "../../src/internal/ledgerMemoryArena.ts"

describe("internal/ledgerMemoryArena", () => {
  it("finds every entry by hash once, across rehashes; truncation takes entries out of the index and the bodies", () => {
    const arena = new EntryArena()
    const n = 5000
    const hashes = NodeCrypto.randomBytes(32 * n)
    const bodies = Buffer.from(Array.from({ length: n }, (_, i) => `{"seq":${i}}`).join(""))
    const starts: Array<number> = []
    for (let i = 0, at = 0; i < n; i++) {
      starts.push(at)
      at += `{"seq":${i}}`.length
    }
    const end = (i: number) => (i + 1 < n ? starts[i + 1]! : bodies.length)
    const push = (i: number) => arena.push(i, bodies, starts[i]!, end(i), hashes, 32 * i)
    const hash = (i: number) => hashes.subarray(32 * i, 32 * i + 32)
    for (let i = 0; i < n; i++) push(i)
    for (let i = 0; i < n; i++) {
      assert.deepStrictEqual(arena.find(hash(i)), [i])
      assert.strictEqual(arena.body(i), `{"seq":${i}}`)
      assert.strictEqual(arena.hashHex(i), hash(i).toString("hex"))
    }
    assert.deepStrictEqual(arena.find(NodeCrypto.randomBytes(32)), [])
    const mark = arena.mark()
    arena.truncate({ ...mark, count: n / 2 })
    assert.strictEqual(arena.count, n / 2)
    for (let i = 0; i < n; i++) assert.deepStrictEqual(arena.find(hash(i)), i < n / 2 ? [i] : [], `entry ${i}`)
    // Appending again after a truncation, over the same seqs
    for (let i = n / 2; i < n; i++) push(i)
    for (let i = 0; i < n; i++) assert.deepStrictEqual(arena.find(hash(i)), [i])
    // Skipped seqs (the store keeps them as objects) get empty bodies and the zero hash
    arena.push(n + 3, bodies, 0, end(0), NodeCrypto.randomBytes(32), 0)
    assert.strictEqual(arena.count, n + 4)
    assert.strictEqual(arena.body(n + 1), "")
    assert.deepStrictEqual(arena.find(new Uint8Array(32)).length, 3)
  })
})
