import { assert, describe, it } from "@effect/vitest"
import { expandMacros, type MacroLayout } from "../../src/redis/luaMacros.ts"

const layout: MacroLayout = {
  families: { job: "job:", ready: "jobs:ready:" },
  singles: { leases: "jobs:leases" },
  fields: { id: 1, state: 2, updatedAt: 3 }
}
const expand = (source: string) => expandMacros(source, layout)

describe("the queue scripts' Lua macros", () => {
  it("builds a family key from its expression and a single key from the prefix", () => {
    assert.strictEqual(
      expand("redis.call('ZADD', k_ready(q .. '/' .. pool), 1, id)"),
      "redis.call('ZADD', (P .. 'jobs:ready:' .. q .. '/' .. pool), 1, id)"
    )
    assert.strictEqual(expand("redis.call('ZREM', k_leases(), id)"), "redis.call('ZREM', (P .. 'jobs:leases'), id)")
  })

  it("UPDATE writes the pairs to the job's hash and patches the read at each field's position", () => {
    assert.strictEqual(
      expand("UPDATE(id, j, 'state', 'queued', 'updatedAt', ARGV[2])"),
      "redis.call('HSET', (P .. 'job:' .. id), 'state', 'queued', 'updatedAt', ARGV[2]); j[2] = 'queued'; j[3] = ARGV[2]"
    )
  })

  it("splits arguments at top-level commas only, respecting quotes and brackets, and expands nested macros", () => {
    assert.strictEqual(
      expand("UPDATE(ids[f(1, 2)], j, 'state', 'a,b)', 'updatedAt', t[k_job('x')])"),
      "redis.call('HSET', (P .. 'job:' .. ids[f(1, 2)]), 'state', 'a,b)', 'updatedAt', t[(P .. 'job:' .. 'x')]); " +
        "j[2] = 'a,b)'; j[3] = t[(P .. 'job:' .. 'x')]"
    )
  })

  it("leaves text without macros as it is, including names that only end like one", () => {
    const source = "local function bk_ready(x) return x end\nlocal UPDATED = 1"
    assert.strictEqual(expand(source), source)
  })

  it("refuses an unknown key, an unknown field and an unbalanced call", () => {
    assert.throws(() => expand("k_nothing()"), /unknown key nothing/)
    assert.throws(() => expand("UPDATE(id, j, 'colour', 'red')"), /unknown field colour/)
    assert.throws(() => expand("k_job(id"), /unbalanced/)
    // an inherited property is not a key or a field
    assert.throws(() => expand("k_toString()"), /unknown key toString/)
    assert.throws(() => expand("UPDATE(id, j, 'constructor', 1)"), /unknown field constructor/)
  })
})
