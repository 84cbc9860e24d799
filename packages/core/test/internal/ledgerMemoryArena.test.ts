import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { EntryArena } from "../../src/internal/ledgerMemoryArena.ts"

describe("internal/ledgerMemoryArena", () => {
  it("finds every entry by hash once, across rehashes; truncation takes entries out of the index and the bodies", () => {
    const arena = new EntryArena()
    const n = 40_000 // more than one page of 32,768 entries
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
    // Appends are indexed by the next lookup: entries taken back before it (all of them, or past the indexed ones)
    // leave nothing in the index, and what replaces them is found
    const base = arena.count
    const taken = NodeCrypto.randomBytes(32 * 20)
    const kept = NodeCrypto.randomBytes(32 * 20)
    const pushFrom = (from: Buffer, k: number) => arena.push(base + k, bodies, 0, end(0), from, 32 * k)
    for (let k = 0; k < 10; k++) pushFrom(taken, k)
    arena.truncate({ ...arena.mark(), count: base })
    for (let k = 0; k < 5; k++) pushFrom(kept, k)
    assert.deepStrictEqual(arena.find(kept.subarray(0, 32)), [base])
    for (let k = 5; k < 20; k++) pushFrom(taken, k)
    arena.truncate({ ...arena.mark(), count: base + 3 })
    for (let k = 3; k < 20; k++) pushFrom(kept, k)
    for (let k = 0; k < 20; k++) {
      assert.deepStrictEqual(arena.find(taken.subarray(32 * k, 32 * k + 32)), [], `taken ${k}`)
      assert.deepStrictEqual(arena.find(kept.subarray(32 * k, 32 * k + 32)), [base + k], `kept ${k}`)
    }
  })

  it("keeps a body's hash members as raw bytes and gives back its exact text; a body not as announced stays whole", () => {
    const arena = new EntryArena()
    const hex = (i: number) => NodeCrypto.createHash("sha256").update(String(i)).digest("hex")
    const bodies: Array<{ text: string; task: boolean; announce: (digits: number) => number }> = []
    for (let i = 0; i < 40; i++) {
      const task = i % 2 === 0
      const payload = i % 3 === 0 ? `,"payload":{"prevHash":"${hex(i)}","é":"ü\u0000"}` : ""
      const text =
        `{"at":${i},"kind":"k"${payload},"payloadHash":"${hex(i + 1)}","prevHash":"${hex(i + 2)}"` +
        `${i % 5 === 0 ? ',"principal":{"id":"p","roles":[]}' : ""},"seq":${i}` +
        (task ? `,"taskId":"t","taskPrevHash":"${hex(i + 3)}"}` : "}")
      // Every 7th announces the wrong place, every 11th an upper-case digit: both must be kept whole
      const odd =
        i % 11 === 10 ? text.replace(`"prevHash":"${hex(i + 2)}"`, `"prevHash":"${hex(i + 2).toUpperCase()}"`) : text
      bodies.push({ text: odd, task, announce: (digits) => (i % 7 === 6 ? digits + 1 : digits) })
    }
    const hashes = NodeCrypto.randomBytes(32 * bodies.length)
    const scratch = Buffer.alloc(64 * 1024)
    bodies.forEach(({ text, task, announce }, i) => {
      const start = 100 + i
      const end = start + scratch.write(text, start, "utf8")
      const digits = start + Buffer.byteLength(text.slice(0, text.indexOf(',"payloadHash":"') + 16))
      arena.push(i, scratch, start, end, hashes, 32 * i, announce(digits), task)
      scratch.fill(0) // what the arena keeps must not depend on the caller's buffer afterwards
    })
    for (let i = 0; i < bodies.length; i++) assert.strictEqual(arena.body(i), bodies[i]!.text, `body ${i}`)
    // The announced ones were kept smaller: each run of two hex members (159 bytes) as 64 raw bytes, a
    // taskPrevHash member (82 bytes) as 32
    let expected = 0
    for (let i = 0; i < bodies.length; i++) {
      const { text, task } = bodies[i]!
      const lifted = i % 7 !== 6 && i % 11 !== 10
      expected += Buffer.byteLength(text) - (lifted ? 159 - 64 + (task ? 82 - 32 : 0) : 0)
    }
    assert.strictEqual(arena.mark().position, expected)
  })
})
