/**
 * The console's client of the Mandate API: JSON calls with the signed-in bearer token, the API's errors as
 * `ApiError` (its `error` kind and `message`, shown to the user as the server said them), and Server-Sent Events
 * read over `fetch` (an `EventSource` cannot send an `Authorization` header), reconnecting with backoff.
 */

/** An error answered by the API: HTTP status, its `error` kind and its `message`. */
export class ApiError extends Error {
  readonly status: number
  readonly kind: string
  constructor(status: number, kind: string, message: string) {
    super(message)
    this.status = status
    this.kind = kind
  }
}

let token: string | undefined

/** The bearer token sent with every call from now on (`undefined`: none). */
export const setToken = (value: string | undefined): void => {
  token = value
}

const headers = (json: boolean): Record<string, string> => ({
  accept: "application/json",
  ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  ...(json ? { "content-type": "application/json" } : {})
})

const failure = async (response: Response): Promise<ApiError> => {
  let kind = `http_${response.status}`
  let message = `${response.status} ${response.statusText}`
  try {
    const body = (await response.json()) as { readonly error?: unknown; readonly message?: unknown }
    if (typeof body.error === "string") kind = body.error
    if (typeof body.message === "string") message = body.message
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, kind, message)
}

/** Calls the API; resolves with the JSON body, rejects with an `ApiError` (or a network `TypeError`). */
export const call = async <T>(
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown
): Promise<T> => {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    cache: "no-store"
  })
  if (!response.ok) throw await failure(response)
  return (await response.json()) as T
}

/** `GET` with a query string from the defined values of `query`. */
export const get = <T>(path: string, query?: Readonly<Record<string, string | number | undefined>>): Promise<T> => {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {}))
    if (value !== undefined && value !== "") params.set(key, String(value))
  const text = params.toString()
  return call<T>("GET", text.length === 0 ? path : `${path}?${text}`)
}

/** The connection state of an event stream, for the "live" indicator. */
export type StreamState = "connecting" | "live" | "retrying" | "closed"

/**
 * Follows a Server-Sent Events stream until `signal` aborts: each event's data, parsed, goes to `onEvent`. A
 * stream that ends or fails is reopened after a growing pause (1 s doubling to 15 s); `onState` hears about it.
 * A refusal (4xx) ends it for good.
 */
export const follow = async (
  path: string,
  onEvent: (data: unknown) => void,
  onState: (state: StreamState, error?: ApiError) => void,
  signal: AbortSignal
): Promise<void> => {
  let pause = 1000
  while (!signal.aborted) {
    onState("connecting")
    try {
      const response = await fetch(path, { headers: { ...headers(false), accept: "text/event-stream" }, signal })
      if (!response.ok) {
        const error = await failure(response)
        if (response.status >= 400 && response.status < 500) {
          onState("closed", error)
          return
        }
        throw error
      }
      onState("live")
      pause = 1000
      await readEvents(response, onEvent)
    } catch {
      if (signal.aborted) return
    }
    if (signal.aborted) return
    onState("retrying")
    await new Promise((resolve) => setTimeout(resolve, pause))
    pause = Math.min(pause * 2, 15_000)
  }
}

const readEvents = async (response: Response, onEvent: (data: unknown) => void): Promise<void> => {
  const body = response.body
  if (body === null) return
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buffer += value.replaceAll("\r\n", "\n")
    let end = buffer.indexOf("\n\n")
    while (end >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n")
      if (data.length > 0) {
        try {
          onEvent(JSON.parse(data))
        } catch {
          // a malformed event is skipped, not fatal
        }
      }
      end = buffer.indexOf("\n\n")
    }
  }
}
