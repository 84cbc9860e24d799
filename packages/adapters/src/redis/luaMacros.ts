/**
 * The two macros of the Redis queue's Lua scripts, expanded once when the module loads so that a script run
 * allocates no closures or tables for them:
 *
 * - `k_name(expr)` / `k_name()`: the key family or single key `name` of the layout, built inline as
 *   `(P .. 'suffix' .. expr)` / `(P .. 'suffix')` (`P` is the script's prefix local);
 * - `UPDATE(id, j, 'field', value, …)`: `HSET`s the pairs on the job hash `k_job(id)` and patches the array `j`
 *   (a job read by `HMGET`) at each field's position, so the patched read can be the script's reply. Values are
 *   evaluated twice, so they must be plain expressions.
 *
 * Arguments are split at top-level commas (quotes and brackets respected), and macros nest.
 *
 * @since 0.1.0
 */

/**
 * What the macros expand against.
 *
 * @category models
 * @since 0.1.0
 */
export interface MacroLayout {
  /** Key families by name: `k_name(expr)` → `(P .. 'suffix' .. expr)`. Must include `job` for `UPDATE`. */
  readonly families: Readonly<Record<string, string>>
  /** Single keys by name: `k_name()` → `(P .. 'suffix')`. */
  readonly singles: Readonly<Record<string, string>>
  /** The 1-based position of each field in a job's read, for `UPDATE`'s patches. */
  readonly fields: Readonly<Record<string, number>>
}

/**
 * Expands `k_…(…)` and `UPDATE(…)` in `source`; throws on an unknown key or field, or an unbalanced call (a
 * programming error, found when the module loads).
 *
 * @category constructors
 * @since 0.1.0
 */
export const expandMacros = (source: string, layout: MacroLayout): string => {
  const { families, singles, fields } = layout
  const expand = (text: string): string => expandMacros(text, layout)
  // The arguments of the call whose "(" is at `open`, split at top-level commas; and where the call ends
  const argsAt = (text: string, open: number): { readonly args: Array<string>; readonly end: number } => {
    const args: Array<string> = []
    let depth = 0
    let quote: string | undefined
    let current = ""
    for (let i = open + 1; i < text.length; i++) {
      const c = text[i]!
      if (quote !== undefined) {
        if (c === quote) quote = undefined
        current += c
      } else if (c === "'" || c === '"') {
        quote = c
        current += c
      } else if (c === "(" || c === "{" || c === "[") {
        depth++
        current += c
      } else if ((c === ")" || c === "}" || c === "]") && depth > 0) {
        depth--
        current += c
      } else if (c === ")") {
        if (current.trim() !== "") args.push(current.trim())
        return { args, end: i + 1 }
      } else if (c === "," && depth === 0) {
        args.push(current.trim())
        current = ""
      } else current += c
    }
    throw new Error(`unbalanced call in a queue script at ${open}`)
  }
  let out = ""
  let i = 0
  const pattern = /\b(k_([A-Za-z]+)|UPDATE)\(/g
  for (let m = pattern.exec(source); m !== null; m = pattern.exec(source)) {
    if (m.index < i) continue
    const open = m.index + m[0].length - 1
    const { args, end } = argsAt(source, open)
    const inner = args.map(expand)
    let replacement: string
    if (m[1] === "UPDATE") {
      const [id, j, ...pairs] = inner
      const sets: Array<string> = []
      for (let p = 0; p < pairs.length; p += 2) {
        const field = pairs[p]!.slice(1, -1)
        const position = Object.hasOwn(fields, field) ? fields[field] : undefined
        if (position === undefined) throw new Error(`UPDATE of an unknown field ${field}`)
        sets.push(`${j}[${position}] = ${pairs[p + 1]}`)
      }
      replacement = `redis.call('HSET', ${expand(`k_job(${id})`)}, ${pairs.join(", ")}); ${sets.join("; ")}`
    } else {
      const name = m[2]!
      if (Object.hasOwn(families, name)) replacement = `(P .. '${families[name]}' .. ${inner[0]})`
      else if (Object.hasOwn(singles, name)) replacement = `(P .. '${singles[name]}')`
      else throw new Error(`unknown key ${name} in a queue script`)
    }
    out += source.slice(i, m.index) + replacement
    i = end
    pattern.lastIndex = end
  }
  return out + source.slice(i)
}
