/**
 * What a request may carry before anything parses it: a JSON body no deeper than `maxDepth` (default 64), with
 * at most `maxValues` values (default 100,000: a wide body costs the event loop in parsing and canonical hashing
 * however shallow it is), and no string (body, query or path) that a store cannot hold — NUL (`\u0000`, refused by Postgres `text`/`jsonb`) or a
 * lone UTF-16 surrogate (which a UTF-8 store silently replaces, so the stored value would no longer match its
 * hash). Every store refuses the same input this way, so behaviour does not depend on the backend.
 *
 * `scanJson` is one iterative pass over the body's bytes (no recursion: 10,000 levels cannot overflow the stack),
 * linear in the body's size, and stops at the first violation with its JSON path.
 *
 * @since 0.1.0
 */
import { jsonPath } from "@mandate/core"

/**
 * The default maximum nesting depth of a JSON body: objects and arrays inside one another.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultMaxDepth = 64

/**
 * The default maximum number of JSON values in a body: every object, array, string (not keys), number, `true`,
 * `false` and `null`.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultMaxValues = 100_000

/**
 * Why input was refused, and where (`$.payload.a[3]`, `$query.task_type`, `$path`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Violation {
  readonly path: string
  readonly message: string
}

const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a

// Where a number or literal (`true`, `false`, `null`) may start, and the bytes that end it
const isScalarStart = (byte: number): boolean =>
  (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x74 || byte === 0x66 || byte === 0x6e
const isDelimiter = (byte: number): boolean =>
  byte === COMMA ||
  byte === COLON ||
  byte === CLOSE_ARRAY ||
  byte === CLOSE_OBJECT ||
  byte === OPEN_ARRAY ||
  byte === OPEN_OBJECT ||
  byte === QUOTE ||
  byte === 0x20 ||
  byte === 0x0a ||
  byte === 0x0d ||
  byte === 0x09

const hexValue = (byte: number): number =>
  byte >= 0x30 && byte <= 0x39
    ? byte - 0x30
    : byte >= 0x61 && byte <= 0x66
      ? byte - 0x57
      : byte >= 0x41 && byte <= 0x46
        ? byte - 0x37
        : -1

// The code unit of a `\uXXXX` escape whose `u` is at `at`, or -1 when it is not four hex digits
const escapedUnit = (bytes: Uint8Array, at: number): number => {
  if (at + 4 >= bytes.length) return -1
  let unit = 0
  for (let i = 1; i <= 4; i++) {
    const digit = hexValue(bytes[at + i]!)
    if (digit < 0) return -1
    unit = unit * 16 + digit
  }
  return unit
}

const decoder = new TextDecoder()

// A key's text from its bytes (between the quotes), unescaped when it is valid JSON
const keyText = (bytes: Uint8Array, start: number, end: number): string => {
  const raw = decoder.decode(bytes.subarray(start, end))
  try {
    return JSON.parse(`"${raw}"`) as string
  } catch {
    return raw
  }
}

/**
 * Scans a JSON text's bytes for nesting deeper than `maxDepth`, more than `maxValues` values, and strings (keys or
 * values) holding NUL or a lone surrogate escape. Returns the first violation, or `undefined`. Syntax is not checked (the parser that
 * runs afterwards does that); a malformed body never makes the scan fail or take more than one pass.
 *
 * @category validation
 * @since 0.1.0
 */
export const scanJson = (
  bytes: Uint8Array,
  maxDepth: number = defaultMaxDepth,
  maxValues: number = defaultMaxValues
): Violation | undefined => {
  // One frame per open container: whether it is an array, its current element index, its current key's bytes
  const isArray: Array<boolean> = []
  const index: Array<number> = []
  const keyStart: Array<number> = []
  const keyEnd: Array<number> = []
  let expectKey = false
  const pathTo = (extra?: string): string => {
    const segments: Array<PropertyKey> = []
    for (let d = 0; d < isArray.length; d++) {
      if (isArray[d]) segments.push(index[d]!)
      else if (keyStart[d]! >= 0) segments.push(keyText(bytes, keyStart[d]!, keyEnd[d]!))
    }
    if (extra !== undefined) segments.push(extra)
    return jsonPath(segments)
  }
  let values = 0
  const tooMany = (): Violation => ({
    path: pathTo(),
    message: `JSON with more than ${maxValues} values (objects, arrays, strings, numbers, true, false, null)`
  })
  const n = bytes.length
  let i = 0
  while (i < n) {
    const byte = bytes[i]!
    if (byte === QUOTE) {
      const start = i + 1
      let j = start
      let problem: string | undefined
      while (j < n && bytes[j] !== QUOTE) {
        if (bytes[j] === BACKSLASH) {
          if (bytes[j + 1] === 0x75 /* u */ && problem === undefined) {
            const unit = escapedUnit(bytes, j + 1)
            if (unit === 0) problem = "Strings must not contain NUL (\\u0000): no store can hold it"
            else if (unit >= 0xd800 && unit <= 0xdbff) {
              const next = bytes[j + 6] === BACKSLASH && bytes[j + 7] === 0x75 ? escapedUnit(bytes, j + 7) : -1
              if (next >= 0xdc00 && next <= 0xdfff) j += 6
              else problem = "Strings must not contain a lone UTF-16 surrogate: it is not Unicode text"
            } else if (unit >= 0xdc00 && unit <= 0xdfff) {
              problem = "Strings must not contain a lone UTF-16 surrogate: it is not Unicode text"
            }
          }
          j += 2
        } else {
          j++
        }
      }
      const isKey = isArray.length > 0 && !isArray[isArray.length - 1] && expectKey
      if (isKey) {
        keyStart[isArray.length - 1] = start
        keyEnd[isArray.length - 1] = Math.min(j, n)
      }
      if (problem !== undefined) {
        return { path: pathTo(), message: isKey ? `Keys: ${problem}` : problem }
      }
      if (!isKey && ++values > maxValues) return tooMany()
      i = j + 1
      continue
    }
    if (isScalarStart(byte)) {
      if (++values > maxValues) return tooMany()
      while (i < n && !isDelimiter(bytes[i]!)) i++
      continue
    }
    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (++values > maxValues) return tooMany()
      if (isArray.length >= maxDepth) {
        return {
          path: pathTo(),
          message: `JSON nested deeper than ${maxDepth} levels (objects and arrays inside one another)`
        }
      }
      isArray.push(byte === OPEN_ARRAY)
      index.push(0)
      keyStart.push(-1)
      keyEnd.push(-1)
      expectKey = byte === OPEN_OBJECT
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      isArray.pop()
      index.pop()
      keyStart.pop()
      keyEnd.pop()
      expectKey = false
    } else if (byte === COMMA) {
      const top = isArray.length - 1
      if (top >= 0) {
        if (isArray[top]) index[top] = index[top]! + 1
        else {
          expectKey = true
          keyStart[top] = -1
        }
      }
    } else if (byte === COLON) {
      expectKey = false
    }
    i++
  }
  return undefined
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one (no `u` flag: code units)
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Whether a string holds something no store can keep: NUL or a lone surrogate.
 *
 * @category validation
 * @since 0.1.0
 */
export const unstorable = (text: string): string | undefined => {
  if (text.includes("\u0000")) return "Strings must not contain NUL (\\u0000): no store can hold it"
  if (loneSurrogate.test(text)) return "Strings must not contain a lone UTF-16 surrogate: it is not Unicode text"
  return undefined
}

/**
 * Checks a request URL's path segments and query parameters (after percent-decoding) with `unstorable`.
 * Query problems are reported at `$query.<name>`, path problems at `$path`.
 *
 * @category validation
 * @since 0.1.0
 */
export const scanUrl = (url: string): Violation | undefined => {
  const q = url.indexOf("?")
  const pathname = q === -1 ? url : url.slice(0, q)
  for (const segment of pathname.split("/")) {
    if (!segment.includes("%")) continue
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      // Not percent-encoded UTF-8: the router matches it as it is, and nothing decodes it into a store
      continue
    }
    const problem = unstorable(decoded)
    if (problem !== undefined) return { path: "$path", message: problem }
  }
  if (q === -1) return undefined
  for (const [name, value] of new URLSearchParams(url.slice(q + 1))) {
    const problem = unstorable(name) ?? unstorable(value)
    if (problem !== undefined) return { path: jsonPath([name], "$query"), message: problem }
  }
  return undefined
}
