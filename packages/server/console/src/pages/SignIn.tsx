/**
 * Sign in by pasting a bearer token; in development mode, by picking one of the generated principals (the server
 * hands their tokens only to its own machine).
 */
import { useEffect, useState } from "preact/hooks"
import { type Session, signIn } from "../session.ts"
import { ErrorNote } from "../ui.tsx"
import type { Principal } from "../wire.ts"

type DevPrincipal = Principal & { readonly token: string }

export const SignIn = ({ onSignedIn }: { readonly onSignedIn: (session: Session) => void }) => {
  const [token, setToken] = useState("")
  const [error, setError] = useState<Error | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const [dev, setDev] = useState<ReadonlyArray<DevPrincipal> | undefined>(undefined)

  useEffect(() => {
    // Answers only in development mode, and only on the server's own machine
    fetch("/console/dev-tokens", { cache: "no-store" })
      .then((r) => (r.ok ? (r.json() as Promise<{ principals: ReadonlyArray<DevPrincipal> }>) : undefined))
      .then((body) => setDev(body?.principals))
      .catch(() => setDev(undefined))
  }, [])

  const submit = async (value: string) => {
    setBusy(true)
    setError(undefined)
    try {
      onSignedIn(await signIn(value.trim()))
    } catch (e) {
      setError(e as Error)
      setBusy(false)
    }
  }

  return (
    <main id="main" class="signin">
      <h1>Mandate console</h1>
      <p class="lede">Tasks, approvals and a ledger you can verify in this browser.</p>
      {dev !== undefined && dev.length > 0 && (
        <section class="panel" aria-labelledby="dev-title">
          <h2 id="dev-title">Development mode: sign in as</h2>
          <p class="hint">
            The server generated one principal per role. Never run development mode where others can reach it.
          </p>
          <ul class="roles-pick">
            {dev.map((p) => (
              <li key={p.id}>
                <button type="button" disabled={busy} onClick={() => void submit(p.token)}>
                  {p.id}
                  <span class="hint"> ({p.roles.join(", ")})</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}
      <form
        class="panel"
        onSubmit={(e) => {
          e.preventDefault()
          void submit(token)
        }}
      >
        <h2>Sign in with a token</h2>
        <label for="token">Bearer token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <p class="hint">An API key or a JWT, as for the API. It is kept in this tab only.</p>
        <button type="submit" disabled={busy || token.trim().length === 0}>
          Sign in
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  )
}
