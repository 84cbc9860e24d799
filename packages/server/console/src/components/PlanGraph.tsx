/**
 * A plan as a graph: steps in columns by depth (a step stands right of everything it depends on; below it, on a
 * phone), arrows for `depends_on`, each node with its state in words. The step list below the graph carries the same facts for
 * screen readers; the graph is one image with a summary.
 */
import { useEffect, useState } from "preact/hooks"
import type { PlannedStep, Step } from "../wire.ts"

const W = 190
const H = 58
const GX = 56
const GY = 18

const tone = (state: string): string =>
  state === "succeeded"
    ? "ok"
    : state === "failed"
      ? "bad"
      : state === "waiting_approval"
        ? "wait"
        : state === "running" || state === "queued"
          ? "run"
          : "idle"

const symbol: Record<string, string> = {
  succeeded: "✓",
  failed: "✗",
  waiting_approval: "‖",
  running: "▶",
  queued: "◷",
  pending: "○",
  skipped: "↷"
}

const narrow = () => typeof matchMedia === "function" && matchMedia("(max-width: 640px)").matches

export const PlanGraph = ({
  steps,
  states
}: {
  readonly steps: ReadonlyArray<PlannedStep>
  readonly states: ReadonlyMap<string, Step>
}) => {
  // On a phone the plan runs down the screen instead of across it
  const [vertical, setVertical] = useState(narrow)
  useEffect(() => {
    if (typeof matchMedia !== "function") return
    const query = matchMedia("(max-width: 640px)")
    const onChange = () => setVertical(query.matches)
    query.addEventListener("change", onChange)
    return () => query.removeEventListener("change", onChange)
  }, [])
  // Depth: 0 for a step without dependencies, else one more than its deepest dependency (the plan is acyclic)
  const depth = new Map<string, number>()
  const depthOf = (id: string, seen: ReadonlySet<string> = new Set()): number => {
    const known = depth.get(id)
    if (known !== undefined) return known
    const step = steps.find((s) => s.step_id === id)
    const deps = (step?.depends_on ?? []).filter((d) => !seen.has(d))
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((x) => depthOf(x, new Set([...seen, id]))))
    depth.set(id, d)
    return d
  }
  const columns: Array<Array<PlannedStep>> = []
  for (const step of steps) {
    const d = depthOf(step.step_id)
    columns[d] = [...(columns[d] ?? []), step]
  }
  const position = new Map<string, { x: number; y: number }>()
  for (const [c, column] of columns.entries()) {
    for (const [r, step] of (column ?? []).entries()) {
      position.set(step.step_id, vertical ? { x: r * (W + GY), y: c * (H + GX) } : { x: c * (W + GX), y: r * (H + GY) })
    }
  }
  const across = columns.length
  const down = Math.max(...columns.map((c) => c?.length ?? 0))
  const width = vertical ? down * (W + GY) - GY : across * (W + GX) - GX
  const height = vertical ? across * (H + GX) - GX : down * (H + GY) - GY
  const summary = `Plan of ${steps.length} steps: ${steps
    .map(
      (s) =>
        `${s.step_id} (${(states.get(s.step_id)?.status ?? "pending").replaceAll("_", " ")})${s.depends_on.length > 0 ? ` after ${s.depends_on.join(" and ")}` : ""}`
    )
    .join("; ")}`
  return (
    <div class="graph">
      <svg
        role="img"
        aria-label={summary}
        viewBox={`-4 -4 ${width + 8} ${height + 8}`}
        width={width + 8}
        height={height + 8}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="edge-head" />
          </marker>
        </defs>
        {steps.flatMap((step) =>
          step.depends_on.map((dep) => {
            const from = position.get(dep)
            const to = position.get(step.step_id)
            if (from === undefined || to === undefined) return null
            let d: string
            if (vertical) {
              const [x1, y1, x2, y2] = [from.x + W / 2, from.y + H, to.x + W / 2, to.y]
              const mid = (y1 + y2) / 2
              d = `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2 - 2}`
            } else {
              const [x1, y1, x2, y2] = [from.x + W, from.y + H / 2, to.x, to.y + H / 2]
              const mid = (x1 + x2) / 2
              d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`
            }
            return <path key={`${dep}->${step.step_id}`} class="edge" d={d} marker-end="url(#arrow)" />
          })
        )}
        {steps.map((step) => {
          const p = position.get(step.step_id)!
          const state = states.get(step.step_id)?.status ?? "pending"
          return (
            <g key={step.step_id} transform={`translate(${p.x},${p.y})`} class={`node node-${tone(state)}`}>
              <rect width={W} height={H} rx="8" />
              <text x="12" y="23" class="node-title">
                {step.step_id.length > 22 ? `${step.step_id.slice(0, 21)}…` : step.step_id}
              </text>
              <text x="12" y="44" class="node-state">
                {`${symbol[state] ?? "•"} ${state.replaceAll("_", " ")}${step.decision.effect === "require_approval" ? " · gated" : ""}`}
              </text>
            </g>
          )
        })}
      </svg>
    </div>
  )
}
