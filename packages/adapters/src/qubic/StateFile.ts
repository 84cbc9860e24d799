/**
 * A JSON state file owned by one process, in which the Qubic mock's network and the anchor's receipts outlive a
 * restart (`ChainOptions.stateFile`, `QubicAnchorOptions.stateFile`).
 *
 * - **One owner.** `acquire` creates `<file>.lock` exclusively, holding the owner's process id, and removes it
 *   when the scope closes. A lock whose process no longer runs (killed with SIGKILL) is taken over. While another
 *   running process holds it, `acquire` gives `None`: the caller runs without persistence and says so, rather than
 *   two processes overwriting each other's state.
 * - **Whole writes.** `write` puts the state in a fresh temporary file (created exclusively, mode 0600, so never
 *   through an existing file or link), flushes it and renames it over the file: after a crash the file holds the
 *   previous state or the new one, never part of one.
 * - `read` opens the file without following a symbolic link at its name.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Effect, Option, Schema, type Scope } from "effect"

/**
 * The state file could not be read, parsed or written.
 *
 * @category errors
 * @since 0.1.0
 */
export class StateFileError extends Schema.TaggedError<StateFileError>()("StateFileError", {
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * A state file this process owns.
 *
 * @category models
 * @since 0.1.0
 */
export interface StateFile {
  readonly path: string
  /** The stored state (parsed JSON), or `undefined` when there is none yet. */
  readonly read: Effect.Effect<unknown, StateFileError>
  /** Replaces the stored state with `state` (as JSON), atomically. */
  readonly write: (state: unknown) => Effect.Effect<void, StateFileError>
}

const NOFOLLOW = NodeFs.constants.O_NOFOLLOW ?? 0

const isCode = (error: unknown, code: string): boolean =>
  typeof error === "object" && error !== null && (error as { readonly code?: unknown }).code === code

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists under another user
    return isCode(error, "EPERM")
  }
}

const readText = (path: string): string | undefined => {
  let fd: number
  try {
    fd = NodeFs.openSync(path, NodeFs.constants.O_RDONLY | NOFOLLOW)
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined
    if (isCode(error, "ELOOP")) throw new Error("it is a symbolic link; refusing to follow it")
    throw error
  }
  try {
    return NodeFs.readFileSync(fd, "utf8")
  } finally {
    NodeFs.closeSync(fd)
  }
}

const createExclusive = (path: string, text: string): void => {
  const fd = NodeFs.openSync(
    path,
    NodeFs.constants.O_WRONLY | NodeFs.constants.O_CREAT | NodeFs.constants.O_EXCL | NOFOLLOW,
    0o600
  )
  try {
    NodeFs.writeFileSync(fd, text)
    NodeFs.fsyncSync(fd)
  } finally {
    NodeFs.closeSync(fd)
  }
}

// Takes the lock: true when this process now holds it, false when a running process does
const takeLock = (lock: string): boolean => {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      createExclusive(lock, String(process.pid))
      return true
    } catch (error) {
      if (!isCode(error, "EEXIST")) throw error
    }
    const owner = Number.parseInt(readText(lock) ?? "", 10)
    if (Number.isSafeInteger(owner) && owner > 0 && running(owner)) return false
    // The owner is gone: remove its lock and try again (another process may win the race: then it holds it)
    try {
      NodeFs.unlinkSync(lock)
    } catch (error) {
      if (!isCode(error, "ENOENT")) throw error
    }
  }
  return false
}

/**
 * Takes ownership of the state file at `path` for the scope (creating its directory, mode 0700, if needed);
 * `None` when another running process owns it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const acquire = (path: string): Effect.Effect<Option.Option<StateFile>, StateFileError, Scope.Scope> => {
  const file = NodePath.resolve(path)
  const lock = `${file}.lock`
  const io = <A>(what: string, f: () => A) =>
    Effect.try({
      try: f,
      catch: (error) => new StateFileError({ path: file, message: `${what}: ${errorText(error)}` })
    })
  return Effect.gen(function* () {
    yield* io("cannot create the directory", () =>
      NodeFs.mkdirSync(NodePath.dirname(file), { recursive: true, mode: 0o700 })
    )
    const held = yield* Effect.acquireRelease(
      io("cannot take the lock", () => takeLock(lock)),
      (taken) =>
        taken
          ? Effect.sync(() => {
              try {
                if (readText(lock) === String(process.pid)) NodeFs.unlinkSync(lock)
              } catch {
                // a lock left behind is taken over at the next start
              }
            })
          : Effect.void
    )
    if (!held) return Option.none()
    return Option.some<StateFile>({
      path: file,
      read: io("cannot read the state", () => {
        const text = readText(file)
        return text === undefined ? undefined : (JSON.parse(text) as unknown)
      }),
      write: (state) =>
        io("cannot write the state", () => {
          const temporary = `${file}.${NodeCrypto.randomUUID()}.tmp`
          createExclusive(temporary, JSON.stringify(state))
          try {
            NodeFs.renameSync(temporary, file)
          } catch (error) {
            NodeFs.rmSync(temporary, { force: true })
            throw error
          }
        })
    })
  })
}
