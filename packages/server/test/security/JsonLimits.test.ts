/**
 * The edge's byte scanner against a reference that parses: for any JSON text, `scanJson` refuses exactly the texts
 * nested deeper than the limit or holding NUL or a lone surrogate in a key or a string, and names that place.
 */
import { assert, describe, it } from "@effect/vitest"
import { jsonPath } from "@mandate/core"
import fc from "fast-check"
import { scanJson, scanUrl, unstorable } from "../../src/http/JsonLimits.ts"

const encoder = new TextEncoder()

// The reference: the first violation in document order, found by walking the parsed value
const reference = (value: unknown, maxDepth: number): string | undefined => {
  const walk = (v: unknown, path: Array<PropertyKey>, depth: number): string | undefined => {
    if (typeof v === "string") return unstorable(v) === undefined ? undefined : jsonPath(path)
    if (typeof v !== "object" || v === null) return undefined
    if (depth >= maxDepth) return jsonPath(path)
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const found = walk(v[i], [...path, i], depth + 1)
        if (found !== undefined) return found
      }
      return undefined
    }
    for (const [key, child] of Object.entries(v)) {
      if (unstorable(key) !== undefined) return jsonPath([...path, key])
      const found = walk(child, [...path, key], depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  return walk(value, [], 0)
}

// JSON texts whose strings may hold any code unit, NUL and lone surrogates included (written as \u escapes)
const unit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
  fc.constantFrom("\u0000", "\ud800", "\udc00", "\ud83d\ude00", "a", '"', "\\", "[", "{", ":", ",")
)
const units = fc.string({ unit, maxLength: 6 })
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(units, fc.integer(), fc.boolean(), fc.constant(null)),
    fc.array(tie("node"), { maxLength: 3 }),
    fc.dictionary(fc.oneof(units, fc.string({ maxLength: 3 })), tie("node"), { maxKeys: 3 })
  )
})).node

// JSON.stringify writes lone surrogates as \uXXXX escapes (well-formed JSON.stringify); NUL always as \u0000
const text = (v: unknown) => JSON.stringify(v)

describe("JsonLimits.scanJson", () => {
  it("finds the same first violation as a parser would, for any JSON text and limit", () => {
    let refused = 0
    fc.assert(
      fc.property(value, fc.integer({ min: 1, max: 6 }), (v, maxDepth) => {
        const found = scanJson(encoder.encode(text(v)), maxDepth)
        assert.strictEqual(found?.path, reference(JSON.parse(text(v)), maxDepth), text(v))
        if (found !== undefined) refused++
      }),
      { numRuns: 2_000 }
    )
    // Both kinds of answer came up often enough to mean something
    assert.isAbove(refused, 200)
    assert.isBelow(refused, 1_800)
  })

  it("is one pass: 10,000 levels and a megabyte of brackets are refused at the limit, no recursion", () => {
    const deep = `${"[".repeat(500_000)}${"]".repeat(500_000)}`
    const found = scanJson(encoder.encode(deep), 64)
    assert.strictEqual(found?.path, `$${"[0]".repeat(64)}`)
    assert.isUndefined(scanJson(encoder.encode(`${"[".repeat(64)}${"]".repeat(64)}`), 64))
  })

  it("counts every value but keys, and names the value that crossed maxValues", () => {
    const count = (v: unknown): number =>
      typeof v !== "object" || v === null
        ? 1
        : 1 + (Array.isArray(v) ? v : Object.values(v)).reduce((n: number, c) => n + count(c), 0)
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encoder.encode(JSON.stringify(v, null, 1))
        const limit = scanJson(bytes, 1_000, count(v))
        // At the count it passes, one less it is refused (unless an unstorable string is found first)
        if (limit === undefined) {
          const below = scanJson(bytes, 1_000, count(v) - 1)
          assert.isDefined(below)
          if (count(v) > 1 && reference(v, 1_000) === undefined) assert.match(below!.message, /more than/)
        }
      }),
      { numRuns: 1_000 }
    )
    assert.strictEqual(scanJson(encoder.encode('{"a":[1,true,null,"x",-2.5e3]}'), 64, 5)?.path, "$.a[3]")
    assert.isUndefined(scanJson(encoder.encode('{"a":[1,true,null,"x",-2.5e3]}'), 64, 7))
    assert.strictEqual(scanJson(encoder.encode('{"a":[1,true,null,"x",-2.5e3]}'), 64, 6)?.path, "$.a[4]")
  })

  it("does not mistake escapes, brackets or colons inside strings for structure", () => {
    assert.isUndefined(scanJson(encoder.encode('{"a":"[[[[{{\\"\\\\u0000:,"}'), 2))
    assert.isUndefined(scanJson(encoder.encode('["\\ud83d\\ude00"]'), 2))
    assert.strictEqual(scanJson(encoder.encode('{"a":{"b\\u0000":1}}'), 8)?.path, '$.a["b\\u0000"]')
    assert.strictEqual(scanJson(encoder.encode('[1,2,"\\udc00"]'), 8)?.path, "$[2]")
    // Malformed input never throws and never loops
    for (const junk of ['"', "\\", '{"a', "]]]]", '{"\\u00', "[,,,:,]"]) scanJson(encoder.encode(junk), 4)
  })
})

describe("JsonLimits.scanUrl", () => {
  it("refuses NUL in a path segment or a query parameter, after percent-decoding", () => {
    assert.deepStrictEqual(scanUrl("/tasks?task_type=a%00b")?.path, "$query.task_type")
    assert.deepStrictEqual(scanUrl("/tasks?a%00=1")?.path, '$query["a\\u0000"]')
    assert.deepStrictEqual(scanUrl("/task/x%00y/status")?.path, "$path")
    assert.isUndefined(scanUrl("/task/task_1?limit=5&cursor=%E2%9C%93"))
    // Not UTF-8 (a lone surrogate's CESU bytes, a cut escape): left to the router, which answers 404
    assert.isUndefined(scanUrl("/task/%ED%A0%80"))
    assert.isUndefined(scanUrl("/task/%E0%A4%A"))
  })
})
