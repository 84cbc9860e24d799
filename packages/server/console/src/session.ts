/**
 * Who is signed in: the token (kept in `sessionStorage`, so it dies with the tab) and the principal the server
 * says it stands for (`GET /whoami`). `can` hides what a principal's roles do not allow; it decides nothing:
 * every call is still judged by the server.
 */
import { createContext } from "preact"
import { useContext } from "preact/hooks"
import { call, setToken } from "./api.ts"
import type { Principal, Role } from "./wire.ts"

const storageKey = "mandate.console.token"

export interface Session {
  readonly token: string
  readonly principal: Principal
}

/** Checks the token with the server and keeps it for this tab. */
export const signIn = async (token: string): Promise<Session> => {
  setToken(token)
  try {
    const principal = await call<Principal>("GET", "/whoami")
    sessionStorage.setItem(storageKey, token)
    return { token, principal }
  } catch (error) {
    setToken(undefined)
    throw error
  }
}

/** The session kept in this tab, if its token still works. */
export const resume = async (): Promise<Session | undefined> => {
  const token = sessionStorage.getItem(storageKey)
  if (token === null) return undefined
  return signIn(token).catch(() => {
    sessionStorage.removeItem(storageKey)
    return undefined
  })
}

export const signOut = (): void => {
  sessionStorage.removeItem(storageKey)
  setToken(undefined)
}

/** Whether the principal has one of the roles (admins have them all), as the server's route checks count. */
export const can = (principal: Principal, ...roles: ReadonlyArray<Role>): boolean =>
  principal.roles.includes("admin") || roles.some((role) => principal.roles.includes(role))

export const SessionContext = createContext<Session | undefined>(undefined)

export const useSession = (): Session => {
  const session = useContext(SessionContext)
  if (session === undefined) throw new Error("useSession outside a signed-in console")
  return session
}
