/**
 * Small presentational pieces. Every state is spelled out in words with a symbol beside its colour, so nothing
 * depends on colour alone.
 */
import type { ComponentChildren } from "preact"
import type { StreamState } from "./api.ts"

type Tone = "ok" | "bad" | "wait" | "run" | "idle"

const states: Record<string, readonly [symbol: string, tone: Tone, label?: string]> = {
  completed: ["✓", "ok"],
  succeeded: ["✓", "ok"],
  confirmed: ["✓", "ok"],
  online: ["●", "ok"],
  approved: ["✓", "ok"],
  allow: ["✓", "ok", "allow"],
  failed: ["✗", "bad"],
  dead_lettered: ["✗", "bad", "dead-lettered"],
  rejected: ["⊘", "bad"],
  deny: ["⊘", "bad", "deny"],
  dropped: ["✗", "bad"],
  offline: ["○", "bad"],
  cancelled: ["⊘", "idle"],
  skipped: ["↷", "idle"],
  waiting_approval: ["‖", "wait", "waiting for approval"],
  require_approval: ["‖", "wait", "needs approval"],
  degraded: ["◐", "wait"],
  pending: ["○", "idle"],
  planning: ["○", "idle"],
  queued: ["◷", "idle"],
  claimed: ["▶", "run"],
  running: ["▶", "run"]
}

/** A state as a badge: symbol, word, colour. */
export const Badge = ({ state, label }: { readonly state: string; readonly label?: string }) => {
  const [symbol, tone, word] = states[state] ?? ["•", "idle" as Tone]
  return (
    <span class={`badge badge-${tone}`} data-state={state}>
      <span aria-hidden="true">{symbol}</span> {label ?? word ?? state.replaceAll("_", " ")}
    </span>
  )
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })

/** An epoch-ms time, relative ("2 minutes ago") with the exact time on hover and in `datetime`. */
export const Time = ({ at }: { readonly at: number }) => {
  const date = new Date(at)
  const seconds = Math.round((at - Date.now()) / 1000)
  const abs = Math.abs(seconds)
  const text =
    abs < 60
      ? relative.format(seconds, "second")
      : abs < 3600
        ? relative.format(Math.round(seconds / 60), "minute")
        : abs < 86_400
          ? relative.format(Math.round(seconds / 3600), "hour")
          : date.toLocaleString()
  return (
    <time dateTime={date.toISOString()} title={date.toLocaleString()}>
      {text}
    </time>
  )
}

/** A hash or long id, shortened, whole on hover and for screen readers' copy. */
export const Hash = ({ value, length = 12 }: { readonly value: string; readonly length?: number }) => (
  <code class="hash" title={value}>
    {value.length > length ? `${value.slice(0, length)}…` : value}
  </code>
)

/** An error as the server said it. */
export const ErrorNote = ({ error }: { readonly error: Error | undefined }) =>
  error === undefined ? null : (
    <p class="note note-bad" role="alert">
      <span aria-hidden="true">✗ </span>
      {error.message}
    </p>
  )

export const Json = ({ value }: { readonly value: unknown }) => <pre class="json">{JSON.stringify(value, null, 2)}</pre>

/** Whether a live stream is connected. */
export const Live = ({ state }: { readonly state: StreamState }) => (
  <span class={`live live-${state}`} role="status">
    <span aria-hidden="true">{state === "live" ? "●" : "○"}</span>{" "}
    {state === "live" ? "live" : state === "closed" ? "not live" : "connecting…"}
  </span>
)

export const Section = ({
  title,
  children,
  actions
}: {
  readonly title: string
  readonly children: ComponentChildren
  readonly actions?: ComponentChildren
}) => (
  <section class="panel" aria-label={title}>
    <header class="panel-head">
      <h2>{title}</h2>
      {actions}
    </header>
    {children}
  </section>
)

export const Empty = ({ children }: { readonly children: ComponentChildren }) => <p class="empty">{children}</p>
