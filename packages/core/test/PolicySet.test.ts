import { assert, describe, it } from "@effect/vitest"
import { InvalidInput, PolicySet, PolicyVersion } from "@mandate/core"
import { Effect, Schema } from "effect"
import { alice, bob } from "./utils/fixtures.ts"

const v = PolicyVersion.make("0".repeat(64))
const at = Date.UTC(2026, 10, 23, 12, 0) // a Monday, 12:00 UTC

const set = (rules: PolicySet.PolicySet["rules"]): PolicySet.PolicySet => ({ name: "test", rules })
const decide = (s: PolicySet.PolicySet, request: Partial<PolicySet.ActionRequest> = {}) =>
  PolicySet.evaluate(s, v, { action: "transfer", params: {}, principal: alice, ...request }, at)

describe("PolicySet evaluation", () => {
  it("applies deny > require_approval > allow, whatever the rule order", () => {
    const allow = { id: "a", effect: "allow", match: {} } as const
    const approve = { id: "r", effect: "require_approval", match: {}, approvals: { required: 2 } } as const
    const deny = { id: "d", effect: "deny", match: {}, reason: "frozen" } as const
    assert.strictEqual(decide(set([allow])).effect, "allow")
    assert.strictEqual(decide(set([allow, approve])).effect, "require_approval")
    assert.strictEqual(decide(set([approve, allow])).effect, "require_approval")
    const denied = decide(set([allow, deny, approve]))
    assert.strictEqual(denied.effect, "deny")
    assert.deepStrictEqual(denied.matchedRules, ["a", "d", "r"])
    assert.deepStrictEqual(denied.reasons, ["frozen"])
    assert.deepStrictEqual(decide(set([approve, allow])).approvals, { required: 2 })
  })

  it("denies by default when no rule matches, and says so", () => {
    const decision = decide(set([{ id: "other", effect: "allow", match: { action: "read" } }]))
    assert.strictEqual(decision.effect, "deny")
    assert.deepStrictEqual(decision.matchedRules, [])
    assert.match(decision.reasons[0]!, /no rule matches action "transfer" \(default deny\)/)
    assert.strictEqual(decide(set([])).effect, "deny")
  })

  it.prop(
    "the decision is the strongest matching effect (property)",
    [Schema.Array(Schema.Literals(["allow", "deny", "require_approval"]))],
    ([effects]) => {
      const rules = effects.map((effect, i) => ({ id: `r${i}`, effect, match: {} }))
      const expected = effects.includes("deny")
        ? "deny"
        : effects.includes("require_approval")
          ? "require_approval"
          : effects.includes("allow")
            ? "allow"
            : "deny"
      assert.strictEqual(decide(set(rules)).effect, expected)
      assert.strictEqual(decide(set([...rules].reverse())).effect, expected)
      assert.strictEqual(decide(set(rules)).matchedRules.length, rules.length)
    }
  )

  it("matches actions and task kinds by glob", () => {
    const rules = set([
      { id: "checks", effect: "allow", match: { action: "check_*" } },
      { id: "one-char", effect: "allow", match: { action: "step?" } },
      { id: "dots-are-literal", effect: "allow", match: { action: "a.b" } },
      { id: "list", effect: "allow", match: { action: ["x", "y*"], task: "transfer_*" } }
    ])
    assert.strictEqual(decide(rules, { action: "check_balance" }).effect, "allow")
    assert.strictEqual(decide(rules, { action: "check" }).effect, "deny")
    assert.strictEqual(decide(rules, { action: "step1" }).effect, "allow")
    assert.strictEqual(decide(rules, { action: "step12" }).effect, "deny")
    assert.strictEqual(decide(rules, { action: "a.b" }).effect, "allow")
    assert.strictEqual(decide(rules, { action: "aXb" }).effect, "deny")
    assert.strictEqual(decide(rules, { action: "yes", task: "transfer_funds" }).effect, "allow")
    assert.strictEqual(decide(rules, { action: "yes" }).effect, "deny") // task glob needs a task kind
    assert.strictEqual(decide(rules, { action: "yes", task: "monitoring" }).effect, "deny")
    assert.isTrue(PolicySet.globMatches("*", ""))
    assert.isFalse(PolicySet.globMatches("a(b)", "ab"))
  })

  it("checks conditions on params: numbers, equality, lists, patterns, presence, nested paths", () => {
    const when = (condition: PolicySet.Condition) => set([{ id: "c", effect: "allow", match: { when: [condition] } }])
    const params = { amount: 500, to: { address: "QUBIC-1", tags: ["vip"] }, memo: "rent 2026" }
    const holds = (condition: PolicySet.Condition) => decide(when(condition), { params }).effect === "allow"
    assert.isTrue(holds({ param: "amount", op: "gt", value: 499 }))
    assert.isFalse(holds({ param: "amount", op: "gt", value: 500 }))
    assert.isTrue(holds({ param: "amount", op: "gte", value: 500 }))
    assert.isTrue(holds({ param: "amount", op: "lt", value: 501 }))
    assert.isFalse(holds({ param: "amount", op: "lte", value: 499 }))
    assert.isFalse(holds({ param: "memo", op: "gt", value: 0 })) // numeric compare never matches a string
    assert.isTrue(holds({ param: "to.address", op: "eq", value: "QUBIC-1" }))
    assert.isTrue(holds({ param: "to.tags", op: "eq", value: ["vip"] }))
    assert.isTrue(holds({ param: "to.address", op: "neq", value: "other" }))
    assert.isTrue(holds({ param: "amount", op: "in", value: [1, 500] }))
    assert.isTrue(holds({ param: "amount", op: "nin", value: [1, 2] }))
    assert.isTrue(holds({ param: "to.tags.0", op: "eq", value: "vip" }))
    assert.isTrue(holds({ param: "memo", op: "matches", value: "rent *" }))
    assert.isFalse(holds({ param: "memo", op: "matches", value: "rent" }))
    assert.isTrue(holds({ param: "memo", op: "regex", value: "^rent \\d{4}$" }))
    assert.isTrue(holds({ param: "to.address", op: "exists" }))
    assert.isTrue(holds({ param: "to.missing", op: "exists", value: false }))
    assert.isFalse(holds({ param: "to.missing", op: "exists" }))
    // all conditions must hold
    const both = set([
      {
        id: "both",
        effect: "allow",
        match: {
          when: [
            { param: "amount", op: "gt", value: 1 },
            { param: "memo", op: "eq", value: "x" }
          ]
        }
      }
    ])
    assert.strictEqual(decide(both, { params }).effect, "deny")
  })

  it("matches principal roles", () => {
    const rules = set([{ id: "approvers-only", effect: "allow", match: { roles: ["approver", "admin"] } }])
    assert.strictEqual(decide(rules, { principal: bob }).effect, "allow")
    assert.strictEqual(decide(rules, { principal: alice }).effect, "deny")
  })

  it("matches time windows, by day and time zone, including windows over midnight", () => {
    const office = set([
      {
        id: "office",
        effect: "allow",
        match: { window: { from: "09:00", to: "17:00", days: ["mon", "tue", "wed", "thu", "fri"] } }
      }
    ])
    const at = (iso: string) => ({ at: Date.parse(iso) })
    assert.strictEqual(decide(office, at("2026-11-23T09:00:00Z")).effect, "allow") // Monday
    assert.strictEqual(decide(office, at("2026-11-23T17:00:00Z")).effect, "deny") // end is exclusive
    assert.strictEqual(decide(office, at("2026-11-22T12:00:00Z")).effect, "deny") // Sunday
    const paris = set([
      { id: "paris", effect: "allow", match: { window: { from: "09:00", to: "10:00", timezone: "Europe/Paris" } } }
    ])
    assert.strictEqual(decide(paris, at("2026-11-23T08:30:00Z")).effect, "allow") // 09:30 in Paris (UTC+1)
    assert.strictEqual(decide(paris, at("2026-11-23T09:30:00Z")).effect, "deny")
    const night = set([
      { id: "night", effect: "deny", match: { window: { from: "22:00", to: "06:00", days: ["fri"] } } }
    ])
    assert.strictEqual(decide(night, at("2026-11-27T23:00:00Z")).effect, "deny") // Friday night
    const nightOrAllow = set([...night.rules, { id: "allow", effect: "allow", match: {} }])
    assert.strictEqual(decide(nightOrAllow, at("2026-11-28T05:59:00Z")).matchedRules[0], "night") // Saturday early = Friday's window
    assert.deepStrictEqual(decide(nightOrAllow, at("2026-11-28T06:00:00Z")).matchedRules, ["allow"])
    assert.deepStrictEqual(decide(nightOrAllow, at("2026-11-29T01:00:00Z")).matchedRules, ["allow"]) // Saturday night
  })

  it("explains every rule's part", () => {
    const explanation = PolicySet.explain(
      set([
        { id: "small", effect: "allow", match: { when: [{ param: "amount", op: "lte", value: 10 }] } },
        { id: "other-action", effect: "deny", match: { action: "delete" } },
        {
          id: "approvers",
          effect: "require_approval",
          match: { roles: ["approver"] },
          reason: "needs a second pair of eyes"
        }
      ]),
      v,
      { action: "transfer", params: { amount: 5 }, principal: alice },
      at
    )
    assert.strictEqual(explanation.decision.effect, "allow")
    assert.deepStrictEqual(
      explanation.trace.map((t) => [t.rule, t.matched]),
      [
        ["small", true],
        ["other-action", false],
        ["approvers", false]
      ]
    )
    assert.match(explanation.trace[1]!.detail, /action "transfer" does not match "delete"/)
    assert.match(explanation.trace[2]!.detail, /none of the roles approver/)
  })
})

describe("PolicySet versions and loading", () => {
  it.effect("a version is stable under key reordering and changes with the rules", () =>
    Effect.gen(function* () {
      const a = yield* PolicySet.fromJson(
        '{"name":"p","rules":[{"id":"r","effect":"allow","match":{"action":"x","task":"y"}}]}'
      )
      const b = yield* PolicySet.fromJson(
        '{"rules":[{"match":{"task":"y","action":"x"},"effect":"allow","id":"r"}],\n  "name":"p"}'
      )
      const c = yield* PolicySet.fromYaml(
        "name: p\nrules:\n  - id: r\n    effect: allow\n    match: { task: y, action: x }\n"
      )
      assert.strictEqual(PolicySet.version(a), PolicySet.version(b))
      assert.strictEqual(PolicySet.version(a), PolicySet.version(c))
      assert.match(PolicySet.version(a), /^[0-9a-f]{64}$/)
      const d = yield* PolicySet.fromJson(
        '{"name":"p","rules":[{"id":"r","effect":"deny","match":{"action":"x","task":"y"}}]}'
      )
      assert.notStrictEqual(PolicySet.version(a), PolicySet.version(d))
    })
  )

  it.effect("a malformed policy fails with the JSON path of every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        PolicySet.fromJson(
          JSON.stringify({
            name: "bad",
            rules: [
              { id: "ok", effect: "allow", match: {} },
              { id: "r1", effect: "permit", match: {} },
              { id: "r2", effect: "deny", match: { when: [{ param: "amount", op: "gt", value: "lots" }] } },
              { id: "r3", effect: "allow", match: { window: { from: "25:00", to: "10:00", timezone: "Mars/Base" } } },
              { effect: "allow", match: { roles: ["wizard"] } },
              { id: "r5", effect: "allow", match: {}, approvals: { required: 2 } }
            ]
          })
        )
      )
      assert.instanceOf(error, InvalidInput)
      const paths = error.issues.map((i) => i.path)
      assert.include(paths, "$.rules[1].effect")
      assert.include(paths, "$.rules[2].match.when[0].value")
      assert.include(paths, "$.rules[3].match.window.from")
      assert.include(paths, "$.rules[3].match.window.timezone")
      assert.include(paths, "$.rules[4].id")
      assert.include(paths, "$.rules[4].match.roles[0]")
      assert.notInclude(paths.join(" "), "$.rules[0]")
      const tz = error.issues.find((i) => i.path === "$.rules[3].match.window.timezone")!
      assert.match(tz.message, /IANA time zone.*Mars\/Base/)
      // cross-field rules are reported with their path too
      const second = yield* Effect.flip(
        PolicySet.decodePolicySet({
          name: "dup",
          rules: [
            { id: "x", effect: "allow", match: {} },
            { id: "x", effect: "deny", match: {} },
            { id: "y", effect: "allow", match: {}, approvals: { required: 1 } }
          ]
        })
      )
      const dupPaths = second.issues.map((i) => i.path)
      assert.include(dupPaths, "$.rules[2].approvals")
      const third = yield* Effect.flip(
        PolicySet.decodePolicySet({
          name: "dup",
          rules: [
            { id: "x", effect: "allow", match: {} },
            { id: "x", effect: "deny", match: {} }
          ]
        })
      )
      assert.deepStrictEqual(
        third.issues.map((i) => [i.path, i.message]),
        [["$.rules[1].id", 'Duplicate rule id "x"']]
      )
    })
  )

  it.effect("unparseable JSON and YAML fail as InvalidInput, never a defect", () =>
    Effect.gen(function* () {
      const json = yield* Effect.flip(PolicySet.fromJson("{ not json"))
      assert.strictEqual(json.path, "$")
      assert.match(json.message, /Invalid JSON/)
      const yaml = yield* Effect.flip(PolicySet.fromYaml("name: [unclosed\nrules: {"))
      assert.match(yaml.message, /Invalid YAML/)
      const yamlShape = yield* Effect.flip(
        PolicySet.fromYaml("name: p\nrules:\n  - id: r\n    effect: maybe\n    match: {}\n")
      )
      assert.deepStrictEqual(
        yamlShape.issues.map((i) => i.path),
        ["$.rules[0].effect"]
      )
      const regex = yield* Effect.flip(
        PolicySet.decodePolicySet({
          name: "p",
          rules: [{ id: "r", effect: "allow", match: { when: [{ param: "a", op: "regex", value: "(" }] } }]
        })
      )
      assert.deepStrictEqual(
        regex.issues.map((i) => i.path),
        ["$.rules[0].match.when[0].value"]
      )
      const op = yield* Effect.flip(
        PolicySet.decodePolicySet({
          name: "p",
          rules: [{ id: "r", effect: "allow", match: { when: [{ param: "a", op: "like", value: 1 }] } }]
        })
      )
      assert.deepStrictEqual(
        op.issues.map((i) => i.path),
        ["$.rules[0].match.when[0]"]
      )
      assert.match(op.message, /op one of gt, gte/)
    })
  )
})
