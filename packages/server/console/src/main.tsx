/**
 * The Mandate console: sign in with a token, then tasks, approvals, queues, agents and the ledger, each shown only
 * to the roles that may use it (the server judges every call regardless).
 */
import { render } from "preact"
import { useEffect, useState } from "preact/hooks"
import { href, useRoute } from "./hooks.ts"
import { AgentsPage } from "./pages/Agents.tsx"
import { InboxPage } from "./pages/Inbox.tsx"
import { LedgerPage } from "./pages/Ledger.tsx"
import { QueuesPage } from "./pages/Queues.tsx"
import { SignIn } from "./pages/SignIn.tsx"
import { TaskPage } from "./pages/Task.tsx"
import { TasksPage } from "./pages/Tasks.tsx"
import { can, resume, type Session, SessionContext, signOut } from "./session.ts"
import type { Role } from "./wire.ts"

interface NavItem {
  readonly path: string
  readonly label: string
  readonly roles: ReadonlyArray<Role>
}

const nav: ReadonlyArray<NavItem> = [
  { path: "/tasks", label: "Tasks", roles: ["submitter", "approver", "auditor"] },
  { path: "/approvals", label: "Approvals", roles: ["approver"] },
  { path: "/queues", label: "Queues", roles: ["agent", "auditor"] },
  { path: "/agents", label: "Agents", roles: ["agent", "auditor"] },
  { path: "/ledger", label: "Ledger", roles: ["auditor"] }
]

const Shell = ({ session, onSignOut }: { readonly session: Session; readonly onSignOut: () => void }) => {
  const route = useRoute()
  const items = nav.filter((item) => can(session.principal, ...item.roles))
  const section = route.path.startsWith("/task/") ? "/tasks" : route.path
  useEffect(() => {
    // Move focus to the new page's heading, so keyboard and screen-reader users land on what changed
    document.querySelector<HTMLElement>("main h1")?.focus()
  }, [route.path])
  let page = <NotFound />
  if (route.path === "/tasks") page = <TasksPage query={route.query} />
  else if (route.path.startsWith("/task/")) page = <TaskPage taskId={decodeURIComponent(route.path.slice(6))} />
  else if (route.path === "/approvals") page = <InboxPage />
  else if (route.path === "/queues") page = <QueuesPage query={route.query} />
  else if (route.path === "/agents") page = <AgentsPage />
  else if (route.path === "/ledger") page = <LedgerPage />
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href("/tasks")}>
          Mandate
        </a>
        <nav aria-label="Sections">
          <ul>
            {items.map((item) => (
              <li key={item.path}>
                <a href={href(item.path)} aria-current={section === item.path ? "page" : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            Signed in as <strong data-testid="principal">{session.principal.id}</strong>{" "}
            <span class="roles">({session.principal.roles.join(", ") || "no roles"})</span>
          </span>
          <button type="button" class="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{items.length === 0 ? <NoRoles /> : page}</main>
    </SessionContext.Provider>
  )
}

const NotFound = () => (
  <>
    <h1 tabIndex={-1}>Not found</h1>
    <p>
      Nothing here. Go to <a href={href("/tasks")}>the tasks</a>.
    </p>
  </>
)

const NoRoles = () => (
  <>
    <h1 tabIndex={-1}>Nothing to show</h1>
    <p>
      This token's roles give the console nothing to show. The API documentation is at <a href="/docs">/docs</a>.
    </p>
  </>
)

const App = () => {
  const [session, setSession] = useState<Session | undefined | "resuming">("resuming")
  useEffect(() => {
    void resume().then(setSession)
  }, [])
  if (session === "resuming") return <p class="boot">Loading the Mandate console…</p>
  if (session === undefined) return <SignIn onSignedIn={setSession} />
  return (
    <Shell
      key={session.principal.id}
      session={session}
      onSignOut={() => {
        signOut()
        setSession(undefined)
      }}
    />
  )
}

render(<App />, document.getElementById("app")!)
