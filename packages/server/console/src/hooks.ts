/**
 * Small hooks: a value loaded from the API (with reload), a followed event stream, the hash route.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import { type ApiError, follow, type StreamState } from "./api.ts"

export interface Loaded<A> {
  readonly data: A | undefined
  readonly error: Error | undefined
  readonly loading: boolean
  readonly reload: () => void
}

/** Loads with `load` when `key` changes; `reload` loads again, keeping the shown data until the new one comes. */
export const useLoad = <A>(load: () => Promise<A>, key: string): Loaded<A> => {
  const [state, setState] = useState<{ data?: A; error?: Error; loading: boolean }>({ loading: true })
  const generation = useRef(0)
  const latest = useRef(load)
  latest.current = load
  const reload = useCallback(() => {
    const mine = ++generation.current
    setState((s) => ({ ...s, loading: true }))
    latest.current().then(
      (data) => {
        if (mine === generation.current) setState({ data, loading: false })
      },
      (error: Error) => {
        if (mine === generation.current) setState((s) => ({ ...s, error, loading: false }))
      }
    )
  }, [])
  useEffect(() => {
    setState({ loading: true })
    reload()
  }, [key, reload])
  return { data: state.data, error: state.error, loading: state.loading, reload }
}

/** Follows an event stream while mounted (`path` undefined: none); `onEvent` may change between renders. */
export const useFollow = (
  path: string | undefined,
  onEvent: (data: unknown) => void
): { readonly state: StreamState; readonly error: ApiError | undefined } => {
  const [status, setStatus] = useState<{ state: StreamState; error?: ApiError }>({ state: "connecting" })
  const handler = useRef(onEvent)
  handler.current = onEvent
  useEffect(() => {
    if (path === undefined) return
    const controller = new AbortController()
    void follow(
      path,
      (data) => handler.current(data),
      (state, error) => setStatus({ state, ...(error === undefined ? {} : { error }) }),
      controller.signal
    )
    return () => controller.abort()
  }, [path])
  return { state: status.state, error: status.error }
}

/** Calls `fn` at most once per `ms`, after the last call of a burst (events come in bursts; one reload serves them). */
export const useCoalesced = (fn: () => void, ms = 250): (() => void) => {
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const latest = useRef(fn)
  latest.current = fn
  useEffect(() => () => clearTimeout(timer.current), [])
  return useCallback(() => {
    if (timer.current !== undefined) return
    timer.current = setTimeout(() => {
      timer.current = undefined
      latest.current()
    }, ms)
  }, [ms])
}

export interface Route {
  readonly path: string
  readonly query: URLSearchParams
}

const parseHash = (): Route => {
  const hash = location.hash.replace(/^#/, "") || "/tasks"
  const q = hash.indexOf("?")
  return q < 0
    ? { path: hash, query: new URLSearchParams() }
    : { path: hash.slice(0, q), query: new URLSearchParams(hash.slice(q + 1)) }
}

/** The route in the URL's hash (`#/task/abc`), updated on navigation. */
export const useRoute = (): Route => {
  const [route, setRoute] = useState(parseHash)
  useEffect(() => {
    const onChange = () => setRoute(parseHash())
    addEventListener("hashchange", onChange)
    return () => removeEventListener("hashchange", onChange)
  }, [])
  return route
}

export const href = (path: string, query?: Readonly<Record<string, string | undefined>>): string => {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") params.set(k, v)
  const text = params.toString()
  return `#${path}${text.length > 0 ? `?${text}` : ""}`
}
