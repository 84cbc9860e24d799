import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Anchor, Canonical, InvalidInput, Ledger, LedgerStore, Queue, UnitOfWork } from "@mandate/core"
import { Effect, Layer, Schema } from "effect"

describe("Canonical JSON (RFC 8785)", () => {
  it("sorts keys, drops whitespace and formats numbers like RFC 8785 §3.2.2 and Appendix B", () => {
    // RFC 8785 §3.2.2 example input
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}'
    )
    assert.strictEqual(
      Canonical.encode(input),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    // Appendix B number serialisation samples
    const numbers: Array<[number, string]> = [
      [0, "0"],
      [-0, "0"],
      [Number.MIN_VALUE, "5e-324"],
      [-Number.MIN_VALUE, "-5e-324"],
      [1.7976931348623157e308, "1.7976931348623157e+308"],
      [9007199254740992, "9007199254740992"],
      [295147905179352830000, "295147905179352830000"],
      [1e21, "1e+21"],
      [0.000001, "0.000001"],
      [1e-7, "1e-7"]
    ]
    for (const [n, text] of numbers) assert.strictEqual(Canonical.encode(n), text)
  })

  it("orders any number of keys by UTF-16 code units, in any insertion order (short and long key lists)", () => {
    // Few keys are sorted by insertion, many by Array#sort: both orders must be the code-unit order
    const alphabet = ["a", "b", "B", "_", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33", "\r", "aa", "ab", "a\u0000"]
    let seed = 7
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed >>> 8
    }
    for (let n = 0; n <= 40; n++) {
      const keys = new Set<string>()
      while (keys.size < n) keys.add(alphabet[next() % alphabet.length]! + alphabet[next() % alphabet.length]!)
      const shuffled = [...keys].sort(() => (next() % 2 === 0 ? -1 : 1))
      const value: Record<string, unknown> = {}
      const inner = shuffled[0] ?? "x"
      for (const key of shuffled) value[key] = { [inner]: key, a: [n] }
      // Each member has two keys too, in order only when `inner` sorts after "a"
      const member = (key: string) =>
        inner < "a"
          ? `{${JSON.stringify(inner)}:${JSON.stringify(key)},"a":[${n}]}`
          : `{"a":[${n}],${JSON.stringify(inner)}:${JSON.stringify(key)}}`
      const expected = `{${[...keys]
        .sort()
        .map((key) => `${JSON.stringify(key)}:${member(key)}`)
        .join(",")}}`
      assert.strictEqual(Canonical.encode(value), expected, `${n} keys`)
    }
  })

  it("orders keys by UTF-16 code units (RFC 8785 §3.2.3 example)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }
    // Object.keys would put "1" first: read the order from the text itself
    assert.strictEqual(
      Canonical.encode(input),
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
  })

  it("hashes with SHA-256 (FIPS 180-2 known answers)", () => {
    assert.strictEqual(Canonical.sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert.strictEqual(Canonical.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert.strictEqual(
      Canonical.sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    )
    // the hash of a value is the hash of its canonical text, whatever the key order
    assert.strictEqual(Canonical.hash({ b: 1, a: [true, null] }), Canonical.sha256Hex('{"a":[true,null],"b":1}'))
    assert.strictEqual(Canonical.hash({ a: [true, null], b: 1 }), Canonical.hash({ b: 1, a: [true, null] }))
  })

  it.effect("refuses NaN, Infinity, undefined and non-JSON values with the JSON path", () =>
    Effect.gen(function* () {
      const cases: Array<[unknown, string, RegExp]> = [
        [{ a: { b: Number.NaN } }, "$.a.b", /NaN/],
        [{ list: [1, Number.POSITIVE_INFINITY] }, "$.list[1]", /Infinity/],
        [{ x: undefined }, "$.x", /undefined/],
        [[1, [2, undefined]], "$[1][1]", /undefined/],
        [{ when: new Date(0) }, "$.when", /Date/],
        [{ n: 10n }, "$.n", /bigint/],
        [{ "odd key": () => 1 }, '$["odd key"]', /function/]
      ]
      for (const [value, path, reason] of cases) {
        assert.throws(() => Canonical.encode(value), reason)
        const error = yield* Effect.flip(Canonical.encodeEffect(value))
        assert.instanceOf(error, InvalidInput)
        assert.strictEqual(error.path, path)
        assert.match(error.message, reason)
      }
    })
  )

  it.prop("is independent of key order", [Schema.Json], ([value]) => {
    const shuffle = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(shuffle)
      if (v !== null && typeof v === "object") {
        const entries = Object.entries(v).reverse()
        return Object.fromEntries(entries.map(([k, x]) => [k, shuffle(x)]))
      }
      return v
    }
    assert.strictEqual(Canonical.encode(shuffle(value)), Canonical.encode(value))
  })

  it.prop(
    "encodeWith splices pre-encoded members exactly where encode would put them",
    [Schema.Record(Schema.String, Schema.Json), Schema.Json, Schema.String],
    ([object, member, key]) => {
      const whole = { ...object, [key]: member }
      const { [key]: _, ...rest } = whole
      assert.strictEqual(Canonical.encodeWith(rest, { [key]: Canonical.encode(member) }), Canonical.encode(whole))
      assert.strictEqual(Canonical.encodeWith(whole, {}), Canonical.encode(whole))
    }
  )

  // `encode` writes values whose keys are already in order with JSON.stringify and sorts the others itself: both
  // ways must give the same text
  it.prop("writes a value the same whatever order its keys were inserted in", [Schema.Json], ([value]) => {
    const rebuild = (v: unknown, order: (keys: Array<string>) => Array<string>): unknown => {
      if (Array.isArray(v)) return v.map((x) => rebuild(x, order))
      if (v !== null && typeof v === "object") {
        const out: Record<string, unknown> = {}
        for (const key of order(Object.keys(v))) {
          // defineProperty: an own "__proto__" member stays a member
          const member = rebuild((v as Record<string, unknown>)[key], order)
          Object.defineProperty(out, key, { value: member, enumerable: true, writable: true, configurable: true })
        }
        return out
      }
      return v
    }
    const sorted = Canonical.encode(rebuild(value, (keys) => keys.sort()))
    assert.strictEqual(Canonical.encode(rebuild(value, (keys) => keys.sort().reverse())), sorted)
    assert.strictEqual(Canonical.encode(value), sorted)
  })

  it("gives the sorted text for values JSON.stringify alone would write differently", () => {
    const getter = {
      a: 1,
      get b() {
        return 2
      }
    }
    assert.strictEqual(Canonical.encode(getter), '{"a":1,"b":2}')
    assert.strictEqual(Canonical.encode({ "9": 1, "10": 2 }), '{"10":2,"9":1}')
    assert.strictEqual(Canonical.encode({ b: [{ d: 1, c: 2 }], a1: 0, "1": 0 }), '{"1":0,"a1":0,"b":[{"c":2,"d":1}]}')
    assert.strictEqual(
      Canonical.encode(JSON.parse('{"b":1,"__proto__":{"y":2,"x":1}}')),
      '{"__proto__":{"x":1,"y":2},"b":1}'
    )
    assert.strictEqual(
      Canonical.encode({
        z: 1,
        get a() {
          return [2]
        }
      }),
      '{"a":[2],"z":1}'
    )
    assert.strictEqual(
      Canonical.encode(Object.assign(Object.create(null), { a: "\ud800", b: -0 })),
      '{"a":"\\ud800","b":0}'
    )
    class Listed extends Array<number> {
      toJSON() {
        return "listed"
      }
    }
    // Written as the array it is (as before), not as its toJSON
    assert.strictEqual(Canonical.encode(Listed.from([1])), "[1]")
    // Likewise an array that carries its own toJSON
    assert.strictEqual(Canonical.encode({ a: Object.assign([1, 2], { toJSON: () => "own" }) }), '{"a":[1,2]}')
    assert.throws(() => Canonical.encode({ a: 1, toJSON: () => "x" }), /function/)
    const holey: Array<number> = [1]
    holey[2] = 3
    assert.throws(() => Canonical.encode(holey), /undefined/)
    const proto = Object.prototype as { toJSON?: unknown }
    proto.toJSON = () => "polluted"
    try {
      assert.strictEqual(Canonical.encode({ a: [1, { b: true }] }), '{"a":[1,{"b":true}]}')
    } finally {
      delete proto.toJSON
    }
  })

  it.prop("round-trips through JSON.parse", [Schema.Json], ([value]) => {
    const text = Canonical.encode(value)
    assert.strictEqual(Canonical.encode(JSON.parse(text)), text)
    assert.deepStrictEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)))
    // no whitespace outside string literals (inside them, "a, b" is data)
    assert.notMatch(text.replace(/"(?:[^"\\]|\\.)*"/g, '""'), /\s/)
  })
})

// A value nested `depth` arrays deep, built without recursion
const nested = (depth: number): unknown => {
  let value: unknown = 0
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe("Canonical hashing against node:crypto", () => {
  // Short ASCII text is hashed by a JavaScript SHA-256: it must agree with node:crypto at every length, and text
  // past it (longer, or not ASCII) must take node:crypto
  it("sha256Hex of ASCII text of every length 0..200, and of non-ASCII text, is node:crypto's", () => {
    const node = (text: string) => NodeCrypto.createHash("sha256").update(text, "utf8").digest("hex")
    for (let n = 0; n <= 200; n++) {
      const text = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 7 + n) % 95))).join("")
      assert.strictEqual(Canonical.sha256Hex(text), node(text), `length ${n}`)
      const accented = `${text}é`
      assert.strictEqual(Canonical.sha256Hex(accented), node(accented), `length ${n} + é`)
      assert.strictEqual(Canonical.sha256Hex(`\u0000${text}`), node(`\u0000${text}`))
    }
  })
})

describe("Canonical JSON: nesting depth", () => {
  it("refuses values nested deeper than maxDepth with the path where the limit was hit, never a stack overflow", () => {
    assert.strictEqual(Canonical.encode(nested(Canonical.maxDepth)).length, 2 * Canonical.maxDepth + 1)
    for (const depth of [Canonical.maxDepth + 1, 10_000, 100_000]) {
      let caught: unknown
      try {
        Canonical.encode({ a: nested(depth) }, Canonical.maxDepth)
      } catch (error) {
        caught = error
      }
      assert.instanceOf(caught, Canonical.NotCanonicalJson)
      const path = (caught as Canonical.NotCanonicalJson).path
      assert.strictEqual(path, `$.a${"[0]".repeat(Canonical.maxDepth - 1)}`)
      assert.strictEqual(Canonical.findTooDeep({ a: nested(depth) }), path)
    }
    assert.isUndefined(Canonical.findTooDeep(nested(Canonical.maxDepth)))
    // Without a limit, encode leaves room for the records that wrap an admitted value (an entry, a plan)
    const wrapped = { entry: { payload: nested(Canonical.maxDepth) } }
    assert.isString(Canonical.encode(wrapped))
    assert.throws(() => Canonical.encode(nested(Canonical.maxDepth + Canonical.wrapperDepth + 1)), /Nested deeper/)
  })

  it.effect("encodeEffect and hashEffect fail with InvalidInput naming the path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Canonical.hashEffect({ x: nested(20_000) }, "$.payload"))
      assert.instanceOf(error, InvalidInput)
      assert.match(error.path, /^\$\.payload\.x(\[0\])+$/)
      assert.match(error.message, /Nested deeper than 256/)
    })
  )

  it.effect("an embedder appending or enqueueing a deep value gets InvalidInput, and the ledger still verifies", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      const queue = yield* Queue
      yield* ledger.append({ kind: "note.ok", payload: { fine: nested(10) } })
      const appended = yield* Effect.flip(ledger.append({ kind: "note.deep", payload: { x: nested(30_000) } }))
      assert.instanceOf(appended, InvalidInput)
      assert.match(appended.path, /^\$\.payload\.x(\[0\])+$/)
      const enqueued = yield* Effect.flip(queue.enqueue({ queue: "q", payload: nested(30_000) as never }))
      assert.instanceOf(enqueued, InvalidInput)
      assert.match(enqueued.path, /^\$\.payload(\[0\])+$/)
      const report = yield* ledger.verifyAll()
      assert.isTrue(report.valid)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Ledger.layer().pipe(
            Layer.provideMerge(LedgerStore.layerMemory),
            Layer.provide(Anchor.layerMemory),
            Layer.merge(UnitOfWork.layerMemory)
          ),
          Queue.layerMemory()
        )
      )
    )
  )
})
