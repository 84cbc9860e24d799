/**
 * Canonical JSON and SHA-256: the only way Mandate hashes anything.
 *
 * The encoding is RFC 8785 (JSON Canonicalization Scheme): object keys sorted by UTF-16 code units, no
 * whitespace, ECMAScript number formatting, JSON string escaping. Values JSON cannot represent exactly
 * (`NaN`, `Infinity`, `undefined`, `bigint`, functions, symbols, class instances such as `Date`) are
 * refused with the JSON path of the offending value, never silently dropped or converted: a hash must
 * commit to exactly the data that was given. So is nesting deeper than `maxDepth` (256) objects and arrays
 * where a value enters (`encodeEffect`, `hashEffect`, `checkDepth`, or `encode(value, maxDepth)`): such a value
 * would overflow the stack of whoever walks it next (an encoder, a response writer). `encode` and `hash` alone
 * allow `maxDepth + wrapperDepth`, so that an admitted value still encodes inside the records that wrap it (a
 * ledger entry around its payload, a plan around its parameters).
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Effect } from "effect"
import { InvalidInput, jsonPath } from "./InvalidInput.ts"

/**
 * Thrown by the synchronous functions when a value has no canonical JSON form.
 *
 * @category errors
 * @since 0.1.0
 */
export class NotCanonicalJson extends Error {
  readonly _tag = "NotCanonicalJson"
  readonly path: string
  readonly reason: string
  constructor(path: string, reason: string) {
    super(`${reason} at ${path}`)
    this.path = path
    this.reason = reason
  }
}

/**
 * The deepest nesting of objects and arrays a canonical value may have. Deeper values are refused with
 * `NotCanonicalJson` (`InvalidInput` from the Effect variants), naming the path where the limit was hit.
 *
 * @category constants
 * @since 0.1.0
 */
export const maxDepth = 256

/**
 * How many levels Mandate's own records may add around an admitted value (entry → payload, plan → steps → step →
 * params): `encode` and `hash` refuse only past `maxDepth + wrapperDepth`.
 *
 * @category constants
 * @since 0.1.0
 */
export const wrapperDepth = 16

const tooDeepReason = `Nested deeper than ${maxDepth} levels of objects and arrays`

const tooDeep = (path: Array<PropertyKey>, limit: number) =>
  new NotCanonicalJson(
    jsonPath(path),
    limit === maxDepth ? tooDeepReason : `Nested deeper than ${limit} levels of objects and arrays`
  )

/**
 * `findTooDeep` as an Effect: fails with `InvalidInput` at the path where the limit was hit.
 *
 * @category validation
 * @since 0.1.0
 */
export const checkDepth = (value: unknown, root = "$"): Effect.Effect<void, InvalidInput> =>
  Effect.suspend(() => {
    const path = findTooDeep(value, root)
    return path === undefined ? Effect.void : Effect.fail(InvalidInput.at(path, tooDeepReason))
  })

/**
 * The path of the first object or array nested deeper than `maxDepth` in `value` (`$.a[0]…`), or `undefined`.
 * Iterative, so it is safe on values of any depth (e.g. before a schema walks them recursively).
 *
 * @category validation
 * @since 0.1.0
 */
export const findTooDeep = (value: unknown, root = "$"): string | undefined => {
  // Parallel stacks (no per-node objects or path copies): a node's value, its depth, its parent's slot, its key
  const values: Array<unknown> = [value]
  const depths: Array<number> = [0]
  const parents: Array<number> = [-1]
  const keys: Array<PropertyKey> = [""]
  // Nodes popped but still needed to rebuild a path: every container on the way down is kept
  const seenParents: Array<number> = []
  const seenKeys: Array<PropertyKey> = []
  while (values.length > 0) {
    const current = values.pop()
    const depth = depths.pop()!
    const parent = parents.pop()!
    const key = keys.pop()!
    if (typeof current !== "object" || current === null) continue
    if (depth >= maxDepth) {
      const segments: Array<PropertyKey> = [key]
      for (let at = parent; at >= 0; at = seenParents[at]!) segments.push(seenKeys[at]!)
      segments.pop() // the root's own (empty) key
      return jsonPath(segments.reverse(), root)
    }
    const slot = seenParents.length
    seenParents.push(parent)
    seenKeys.push(key)
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        values.push(current[i])
        depths.push(depth + 1)
        parents.push(slot)
        keys.push(i)
      }
    } else {
      const names = Object.keys(current)
      for (let i = names.length - 1; i >= 0; i--) {
        values.push((current as Record<string, unknown>)[names[i]!])
        depths.push(depth + 1)
        parents.push(slot)
        keys.push(names[i]!)
      }
    }
  }
  return undefined
}

/**
 * Keys in canonical order: by UTF-16 code units, as RFC 8785 §3.2.3 specifies, which is what both `Array#sort`'s
 * default and `<` on strings compare. Most objects have a few keys, which an insertion sort orders in a fraction of
 * `Array#sort`'s fixed cost (0.03 µs against 0.16 µs for three keys: a payload's, on every ledger append).
 */
const sortKeys = (keys: Array<string>): Array<string> => {
  if (keys.length > 16) return keys.sort()
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!
    let j = i - 1
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!
      j--
    }
    keys[j + 1] = key
  }
  return keys
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const write = (value: unknown, path: Array<PropertyKey>, limit: number): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new NotCanonicalJson(jsonPath(path), `${value} is not a JSON number`)
      // ECMAScript Number::toString (what JSON.stringify writes for a finite number) is what RFC 8785 §3.2.2.3
      // requires; String() is the same conversion without JSON.stringify's generic entry
      return String(value)
    case "object": {
      if (value === null) return "null"
      if (path.length >= limit) throw tooDeep(path, limit)
      if (Array.isArray(value)) {
        let out = "["
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ","
          path.push(i)
          out += write(value[i], path, limit)
          path.pop()
        }
        return `${out}]`
      }
      if (!isPlainObject(value)) {
        throw new NotCanonicalJson(jsonPath(path), `${value.constructor?.name ?? "object"} is not plain JSON data`)
      }
      const keys = sortKeys(Object.keys(value))
      let out = "{"
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        if (i > 0) out += ","
        path.push(key)
        out += `${JSON.stringify(key)}:${write((value as Record<string, unknown>)[key], path, limit)}`
        path.pop()
      }
      return `${out}}`
    }
    default:
      throw new NotCanonicalJson(jsonPath(path), `${typeof value} is not a JSON value`)
  }
}

/**
 * The canonical JSON text of a value. Throws `NotCanonicalJson` for values JSON cannot represent or nested deeper
 * than `limit` (default `maxDepth + wrapperDepth`; pass `maxDepth` where a value is admitted); use `encodeEffect`
 * at boundaries.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encode = (value: unknown, limit: number = maxDepth + wrapperDepth): string => {
  if (noInheritedToJSON()) {
    const sorted = inCanonicalOrder(value, limit)
    if (sorted !== notPlain) return JSON.stringify(sorted)
  }
  return write(value, [], limit)
}

// JSON.stringify would call a toJSON that some code put on Object.prototype or Array.prototype; `write` would not
const noInheritedToJSON = (): boolean =>
  (Object.prototype as { toJSON?: unknown }).toJSON === undefined &&
  (Array.prototype as { toJSON?: unknown }).toJSON === undefined

const notPlain: unique symbol = Symbol("notPlain")

/**
 * The value, or a copy of it whose objects have their keys inserted in sorted order, such that
 * `JSON.stringify` of it is the canonical text; `notPlain` for anything `write` must handle (and may refuse).
 * What JSON.stringify then writes: plain objects (keys in their insertion order, which is sorted), plain dense
 * arrays, strings, finite numbers, booleans and null, within `limit` levels; strings, keys and numbers with the
 * very conversions `write` uses. The native writer is several times faster than ours, which matters on the
 * ledger's append path (every payload and principal). Only the objects out of order are copied. Left to `write`:
 * an object out of order with a key that is an array index (an object lists those first, whatever the insertion
 * order) or `__proto__` (assigning it would set the prototype). A getter is read here and again by
 * JSON.stringify when its object is in order: values with impure getters have no stable canonical form anyway.
 */
const inCanonicalOrder = (value: unknown, limit: number): unknown => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : notPlain
    case "object": {
      if (value === null) return value
      if (limit <= 0) return notPlain
      if (Array.isArray(value)) {
        // A subclass, or the array itself, could define toJSON, which JSON.stringify would call
        if (Object.getPrototypeOf(value) !== Array.prototype || Object.hasOwn(value, "toJSON")) return notPlain
        let copy: Array<unknown> | undefined
        for (let i = 0; i < value.length; i++) {
          const member: unknown = value[i]
          // A hole reads as undefined and is refused
          const sorted = inCanonicalOrder(member, limit - 1)
          if (sorted === notPlain) return notPlain
          if (copy === undefined && sorted !== member) copy = value.slice(0, i)
          if (copy !== undefined) copy.push(sorted)
        }
        return copy ?? value
      }
      if (!isPlainObject(value)) return notPlain
      const object = value as Record<string, unknown>
      // for-in visits own keys in Object.keys order (then inherited enumerable ones, which only make this stricter)
      let previous: string | undefined
      let inOrder = true
      let changed = false
      for (const key in object) {
        if (previous !== undefined && !(previous < key)) inOrder = false
        previous = key
        const member = object[key]
        // An own toJSON is a function and refused here; JSON.stringify would have called it
        const sorted = inCanonicalOrder(member, limit - 1)
        if (sorted === notPlain) return notPlain
        if (sorted !== member) changed = true
      }
      if (inOrder && !changed) return value
      const keys = sortKeys(Object.keys(object))
      const copy: Record<string, unknown> = {}
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        const first = key.charCodeAt(0)
        if ((first >= 48 && first <= 57) || key === "__proto__") return notPlain
        const sorted = inCanonicalOrder(object[key], limit - 1)
        if (sorted === notPlain) return notPlain
        copy[key] = sorted
      }
      return copy
    }
    default:
      return notPlain
  }
}

/**
 * The canonical JSON of a plain object some of whose members are already canonical JSON text: `encoded` maps
 * member names to their canonical text, spliced in verbatim at their sorted position. The result is
 * `encode({ ...value, ...decoded(encoded) })`; it saves encoding a large member twice (the ledger hashes a
 * payload on its own and again inside its entry). Throws like `encode`.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encodeWith = (
  value: Readonly<Record<string, unknown>>,
  encoded: Readonly<Record<string, string>>
): string => {
  const keys = [...Object.keys(value).filter((key) => !Object.hasOwn(encoded, key)), ...Object.keys(encoded)].sort()
  const path: Array<PropertyKey> = []
  let out = "{"
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (i > 0) out += ","
    if (Object.hasOwn(encoded, key)) {
      out += `${JSON.stringify(key)}:${encoded[key]}`
    } else {
      path.push(key)
      out += `${JSON.stringify(key)}:${write(value[key], path, maxDepth + wrapperDepth)}`
      path.pop()
    }
  }
  return `${out}}`
}

/**
 * `encode` as an Effect that fails with `InvalidInput` (path and reason) instead of throwing.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encodeEffect = (value: unknown, root = "$"): Effect.Effect<string, InvalidInput> =>
  Effect.try({
    try: () => encode(value, maxDepth),
    catch: (error) =>
      error instanceof NotCanonicalJson
        ? InvalidInput.at(root + error.path.slice(1), error.reason)
        : InvalidInput.at(root, String(error))
  })

// `crypto.hash` (Node >= 20.12) is a one-shot digest, about 1.5x faster than createHash for short inputs,
// which is what Merkle nodes are; older Node 20 releases fall back to createHash.
type OneShot = (algorithm: string, data: string | Uint8Array, encoding: "hex" | "buffer") => string | Buffer
const oneShot = (typeof NodeCrypto.hash === "function" ? NodeCrypto.hash : undefined) as OneShot | undefined

/**
 * SHA-256 of a UTF-8 string or of bytes, as 64 lowercase hex digits.
 *
 * @category hashing
 * @since 0.1.0
 */
export const sha256Hex = (data: string | Uint8Array): string =>
  // A hex digest costs node:crypto about a quarter of a microsecond on short text (a "buffer" one several times
  // that): less than hashing even one block in JavaScript
  oneShot ? (oneShot("sha256", data, "hex") as string) : NodeCrypto.createHash("sha256").update(data).digest("hex")

/**
 * SHA-256 of a UTF-8 string or of bytes, as 32 raw bytes.
 *
 * @category hashing
 * @since 0.1.0
 */
export const sha256 = (data: string | Uint8Array): Uint8Array =>
  // Hex and back: a "buffer" digest gets a fresh ArrayBuffer from C++ (several times the cost of the hash on
  // short inputs), while `Buffer.from` takes 32 bytes of Node's pool
  oneShot
    ? Buffer.from(oneShot("sha256", data, "hex") as string, "hex")
    : NodeCrypto.createHash("sha256").update(data).digest()

// Reused for concatenations: hashing is synchronous, so no other caller can observe it mid-use. Large enough for
// an entry's canonical JSON (prevHash ‖ body), which the allocating path used to take for any body over ~300 chars
const scratch = Buffer.allocUnsafe(64 * 1024)

/**
 * SHA-256 of the concatenation of byte strings (`a ‖ b ‖ …`; a string part counts as its UTF-8 bytes), as 32
 * raw bytes. This is how Merkle leaves and nodes (`0x00 ‖ data`, `0x01 ‖ left ‖ right`) and entry hashes
 * (`prevHash ‖ canonical JSON`) are hashed.
 *
 * @category hashing
 * @since 0.1.0
 */
export const sha256Concat = (parts: ReadonlyArray<Uint8Array | string>): Uint8Array => {
  let offset = 0
  for (const part of parts) {
    if (typeof part === "string") {
      // A UTF-16 code unit takes at most 3 UTF-8 bytes; past the scratch buffer, take the allocating path
      if (offset + part.length * 3 > scratch.length) return sha256Slow(parts)
      offset += scratch.write(part, offset, "utf8")
    } else {
      if (offset + part.length > scratch.length) return sha256Slow(parts)
      scratch.set(part, offset)
      offset += part.length
    }
  }
  return sha256(scratch.subarray(0, offset))
}

const sha256Slow = (parts: ReadonlyArray<Uint8Array | string>): Uint8Array =>
  sha256(Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : part))))

/**
 * Lowercase hex of bytes.
 *
 * @category encoding
 * @since 0.1.0
 */
export const toHex = (bytes: Uint8Array): string =>
  Buffer.isBuffer(bytes)
    ? bytes.toString("hex")
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")

/**
 * Bytes of a hex string. Returns `undefined` unless the text is an even number of hex digits.
 *
 * @category encoding
 * @since 0.1.0
 */
export const fromHex = (hex: string): Uint8Array | undefined =>
  hex.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(hex) ? Buffer.from(hex, "hex") : undefined

/**
 * SHA-256 (hex) of the canonical JSON of a value. Throws `NotCanonicalJson` like `encode`.
 *
 * @category hashing
 * @since 0.1.0
 */
export const hash = (value: unknown): string => sha256Hex(encode(value))

/**
 * `hash` as an Effect that fails with `InvalidInput` instead of throwing.
 *
 * @category hashing
 * @since 0.1.0
 */
export const hashEffect = (value: unknown, root = "$"): Effect.Effect<string, InvalidInput> =>
  Effect.map(encodeEffect(value, root), sha256Hex)
