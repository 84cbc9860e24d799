/**
 * `docs/grafana-dashboard.json` charts what `GET /metrics` exposes: every metric a panel queries exists, with the
 * labels the panel groups or filters by, and every metric the server exposes is on some panel.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as TestServer from "./utils/TestServer.ts"

interface Panel {
  readonly type: string
  readonly title: string
  readonly targets?: ReadonlyArray<{ readonly expr: string }>
}

const dashboard = JSON.parse(
  Fs.readFileSync(Path.resolve(import.meta.dirname, "../../../docs/grafana-dashboard.json"), "utf8")
) as { readonly panels: ReadonlyArray<Panel> }

// The series of the Prometheus text: metric name → the label names seen on it
const series = (text: string): Map<string, Set<string>> => {
  const out = new Map<string, Set<string>>()
  for (const line of text.split("\n")) {
    const match = /^([a-z_][a-z0-9_]*)(?:\{([^}]*)\})? /.exec(line)
    if (match === null) continue
    const labels = out.get(match[1]!) ?? new Set<string>()
    for (const pair of (match[2] ?? "").split(",")) {
      const name = pair.split("=")[0]!.trim()
      if (name !== "") labels.add(name)
    }
    out.set(match[1]!, labels)
  }
  return out
}

layer(TestServer.layer(TestServer.memoryServices()), { excludeTestServices: true })("the Grafana dashboard", (it) => {
  it.effect("queries only metrics and labels the server exposes, and shows every metric", () =>
    Effect.gen(function* () {
      // Some traffic, a task and an agent, so every metric has series
      const registered = yield* TestServer.call("POST", "/agents", {
        token: TestServer.tokens.robot,
        body: { pool: "eu" }
      })
      assert.strictEqual(registered.status, 200, registered.text)
      const started = yield* TestServer.call("POST", "/task/start", {
        token: TestServer.tokens.alice,
        body: { task_type: "monitoring", parameters: { wallet: TestServer.walletA } }
      })
      assert.strictEqual(started.status, 200, started.text)
      const metrics = yield* TestServer.call("GET", "/metrics", { token: TestServer.tokens.carol })
      assert.strictEqual(metrics.status, 200)
      const exposed = series(metrics.text)

      const queried = new Set<string>()
      for (const panel of dashboard.panels) {
        for (const target of panel.targets ?? []) {
          for (const [, name] of target.expr.matchAll(/\b(mandate_[a-z0-9_]+)/g)) {
            queried.add(name!)
            assert.isTrue(exposed.has(name!), `panel "${panel.title}" queries ${name}, which /metrics does not expose`)
            const labels = exposed.get(name!)!
            const selector = new RegExp(`${name}\\{([^}]*)\\}`).exec(target.expr)
            const used = [
              ...[...(selector?.[1] ?? "").matchAll(/([a-z_]+)\s*=~?/g)].map((m) => m[1]!),
              ...[...target.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()))
            ].filter((label) => label !== "le" || name!.endsWith("_bucket"))
            for (const label of used) {
              if (label === "le") continue
              assert.isTrue(labels.has(label), `panel "${panel.title}" uses label ${label}, which ${name} has not`)
            }
          }
        }
      }
      // Histograms are exposed as _bucket/_sum/_count: the dashboard needs only one of them
      const families = [...exposed.keys()].filter((name) => name.startsWith("mandate_"))
      for (const name of families) {
        const family = name.replace(/_(bucket|sum|count)$/, "")
        assert.isTrue(
          [...queried].some((q) => q === name || q.replace(/_(bucket|sum|count)$/, "") === family),
          `no panel shows ${name}`
        )
      }
    })
  )
})
