/**
 * The ledger's keys: the Ed25519 private key that signs checkpoints, and the public keys trusted for the
 * checkpoints that earlier keys signed (key rotation), by key id — the SHA-256 (hex) of the raw 32-byte public
 * key, which every checkpoint names in `keyId`. `Ledger.layer` checks a checkpoint with the trusted key its
 * `keyId` names, so after a rotation old checkpoints still verify and new ones are signed by the new key.
 *
 * **Where the keys come from**
 *
 * - `make({ signingKey, trustedKeys })`: keys the host supplies (PKCS#8 PEM, `Redacted` PEM or a `KeyObject`).
 * - `ephemeral`: a key generated now and kept nowhere. Checkpoints it signs cannot be verified by a process
 *   started later, so it suits a ledger that ends with the process (the memory store) and nothing else.
 * - `inDirectory(directory, { signingKey })`: keys kept in a directory of the host that runs the ledger. The
 *   signing key is `signingKey` when given, else `ledger-signing-key.pem` in the directory, generated on the first
 *   start. The public key of every signing key used with the directory is recorded in `ledger-keys/<keyId>.pem`
 *   and trusted from then on: rotating is starting with another key (a new `signingKey`, or moving the key file
 *   away so that a new one is generated), and the checkpoints of the old key still verify.
 *
 * **Why a directory and not the ledger's store.** Signed checkpoints exist to catch whoever can write the store —
 * a database administrator, a restored backup with changes — rewriting the ledger. A private key kept in the
 * store would be in their hands to sign the rewrite with, and a list of trusted public keys kept there would let
 * them add a key of their own. So the keys stay with the operator of the ledger's host: in its configuration
 * (`signingKey`, from a secret store) or in files only its user can read.
 *
 * **Files.** The directory is created with mode 0700 if it does not exist. Key files are written to a fresh
 * temporary file (created exclusively with mode 0600, so never through an existing file or symbolic link),
 * flushed, then linked to their name, which fails if the name exists: concurrent first starts agree on one key,
 * and no reader sees a half-written file. Key files are opened without following symbolic links, and a private
 * key file that group or others may read is refused.
 *
 * Several hosts sharing one store must share the signing key (the same `signingKey` on each, or the same
 * directory): a host does not trust a checkpoint signed by a key it does not know, and reports it as tampering.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Effect, Redacted, Schema } from "effect"
import { InvalidInput } from "./InvalidInput.ts"
import { type PublicKeyInput, publicKeyId } from "./LedgerEntry.ts"

/**
 * A signing key and the public keys trusted for checkpoints.
 *
 * @category models
 * @since 0.1.0
 */
export interface LedgerKeys {
  /** The Ed25519 private key new checkpoints are signed with. */
  readonly signingKey: NodeCrypto.KeyObject
  /** The signing key's id: SHA-256 (hex) of its raw public key. */
  readonly keyId: string
  /** The signing key's public key, SPKI PEM. */
  readonly publicKey: string
  /** Every trusted public key (SPKI PEM) by key id, the signing key's own included. */
  readonly trusted: ReadonlyMap<string, string>
}

/**
 * Where a directory's key came from: given in the configuration, read from its file, or generated into it now.
 *
 * @category models
 * @since 0.1.0
 */
export type KeySource = "configured" | "file" | "generated"

/**
 * The keys of a directory, and where the signing key came from.
 *
 * @category models
 * @since 0.1.0
 */
export interface DirectoryKeys extends LedgerKeys {
  readonly source: KeySource
  /** The private key's file (whether or not it was used: a configured key takes precedence). */
  readonly keyFile: string
}

/**
 * A private key, as `make` accepts it: PKCS#8 PEM (plain or `Redacted`) or a `KeyObject`.
 *
 * @category models
 * @since 0.1.0
 */
export type PrivateKeyInput = string | Redacted.Redacted<string> | NodeCrypto.KeyObject

/**
 * The key directory could not be read or written, or holds something that is not a key.
 *
 * @category errors
 * @since 0.1.0
 */
export class LedgerKeyError extends Schema.TaggedError<LedgerKeyError>()("LedgerKeyError", {
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * The private key's file name in a key directory.
 *
 * @category constants
 * @since 0.1.0
 */
export const keyFileName = "ledger-signing-key.pem"

/**
 * The folder, in a key directory, of the trusted public keys (`<keyId>.pem`).
 *
 * @category constants
 * @since 0.1.0
 */
export const publicKeysFolder = "ledger-keys"

const toPrivateKey = (key: PrivateKeyInput): NodeCrypto.KeyObject => {
  const object =
    typeof key === "string"
      ? NodeCrypto.createPrivateKey(key)
      : Redacted.isRedacted(key)
        ? NodeCrypto.createPrivateKey(Redacted.value(key))
        : key
  if (object.type !== "private" || object.asymmetricKeyType !== "ed25519") {
    throw new Error(`got a ${object.type} ${object.asymmetricKeyType ?? ""} key`)
  }
  return object
}

const keysOf = (privateKey: NodeCrypto.KeyObject): Omit<LedgerKeys, "trusted"> => {
  const publicKey = NodeCrypto.createPublicKey(privateKey)
  return {
    signingKey: privateKey,
    publicKey: publicKey.export({ type: "spki", format: "pem" }).toString(),
    keyId: publicKeyId(publicKey)!
  }
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Keys from a signing key and earlier public keys. Fails with the option's path when one is not an Ed25519 key.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: {
  readonly signingKey: PrivateKeyInput
  readonly trustedKeys?: ReadonlyArray<PublicKeyInput> | undefined
}): Effect.Effect<LedgerKeys, InvalidInput> =>
  Effect.gen(function* () {
    const signing = yield* Effect.try({
      try: () => keysOf(toPrivateKey(options.signingKey)),
      catch: (error) =>
        InvalidInput.at(
          "$.signingKey",
          `Expected an Ed25519 private key (PKCS#8 PEM or KeyObject): ${errorText(error)}`
        )
    })
    const trusted = new Map<string, string>([[signing.keyId, signing.publicKey]])
    const earlier = options.trustedKeys ?? []
    for (let i = 0; i < earlier.length; i++) {
      const key = earlier[i]!
      const keyId = publicKeyId(key)
      if (keyId === undefined) {
        return yield* InvalidInput.at(`$.trustedKeys[${i}]`, "Expected an Ed25519 public key (SPKI PEM or KeyObject)")
      }
      if (!trusted.has(keyId)) trusted.set(keyId, toPem(key))
    }
    return { ...signing, trusted }
  })

const toPem = (key: PublicKeyInput): string =>
  typeof key === "string"
    ? NodeCrypto.createPublicKey(key).export({ type: "spki", format: "pem" }).toString()
    : key.export({ type: "spki", format: "pem" }).toString()

/**
 * A key generated now and kept nowhere: only for a ledger that ends with the process (see the module docs).
 *
 * @category constructors
 * @since 0.1.0
 */
export const ephemeral: Effect.Effect<LedgerKeys> = Effect.sync(() => {
  const signing = keysOf(NodeCrypto.generateKeyPairSync("ed25519").privateKey)
  return { ...signing, trusted: new Map([[signing.keyId, signing.publicKey]]) }
})

// ---- files -------------------------------------------------------------------------------------------------

// O_NOFOLLOW is POSIX; where Node does not define it (Windows) there are no symbolic links to refuse this way
const NOFOLLOW = NodeFs.constants.O_NOFOLLOW ?? 0

const isCode = (error: unknown, code: string): boolean =>
  typeof error === "object" && error !== null && (error as { readonly code?: unknown }).code === code

/** Reads a file without following a symbolic link at its name; `undefined` when there is no file. */
const readNoFollow = (path: string): { readonly text: string; readonly mode: number } | undefined => {
  let fd: number
  try {
    fd = NodeFs.openSync(path, NodeFs.constants.O_RDONLY | NOFOLLOW)
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined
    if (isCode(error, "ELOOP")) throw new Error("it is a symbolic link; refusing to follow it")
    throw error
  }
  try {
    const stat = NodeFs.fstatSync(fd)
    if (!stat.isFile()) throw new Error("it is not a regular file")
    return { text: NodeFs.readFileSync(fd, "utf8"), mode: stat.mode & 0o777 }
  } finally {
    NodeFs.closeSync(fd)
  }
}

/**
 * Creates `path` holding `text` unless it exists: a fresh temporary file (exclusive, `mode`), flushed, then
 * hard-linked to `path`, which fails if `path` exists (a file, or a link planted there). Returns whether this
 * call created it.
 */
const createOnce = (path: string, text: string, mode: number): boolean => {
  const temporary = NodePath.join(NodePath.dirname(path), `.${NodePath.basename(path)}.${NodeCrypto.randomUUID()}.tmp`)
  const fd = NodeFs.openSync(
    temporary,
    NodeFs.constants.O_WRONLY | NodeFs.constants.O_CREAT | NodeFs.constants.O_EXCL | NOFOLLOW,
    mode
  )
  try {
    NodeFs.writeFileSync(fd, text)
    NodeFs.fsyncSync(fd)
  } finally {
    NodeFs.closeSync(fd)
  }
  try {
    NodeFs.linkSync(temporary, path)
    syncDirectory(NodePath.dirname(path))
    return true
  } catch (error) {
    if (isCode(error, "EEXIST")) return false
    throw error
  } finally {
    NodeFs.unlinkSync(temporary)
  }
}

// Makes a new name in the directory durable; some platforms cannot open a directory for that, which is harmless
const syncDirectory = (directory: string): void => {
  let fd: number | undefined
  try {
    fd = NodeFs.openSync(directory, "r")
    NodeFs.fsyncSync(fd)
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) NodeFs.closeSync(fd)
  }
}

const keyIdFile = /^([0-9a-f]{64})\.pem$/

/**
 * The keys kept in `directory` (see the module docs): the configured `signingKey`, else the directory's key file,
 * generated on first use; every public key recorded in the directory is trusted, and the signing key's is
 * recorded there. Logs one line saying which key signs, where it came from and how many earlier keys are trusted.
 *
 * @category constructors
 * @since 0.1.0
 */
export const inDirectory = (
  directory: string,
  options?: {
    readonly signingKey?: PrivateKeyInput | undefined
    readonly trustedKeys?: ReadonlyArray<PublicKeyInput> | undefined
  }
): Effect.Effect<DirectoryKeys, LedgerKeyError | InvalidInput> =>
  Effect.gen(function* () {
    const keyFile = NodePath.resolve(directory, keyFileName)
    const publicFolder = NodePath.resolve(directory, publicKeysFolder)
    const io = <A>(path: string, what: string, f: () => A) =>
      Effect.try({ try: f, catch: (error) => new LedgerKeyError({ path, message: `${what}: ${errorText(error)}` }) })

    yield* io(directory, "cannot create the key directory", () => {
      NodeFs.mkdirSync(publicFolder, { recursive: true, mode: 0o700 })
    })

    let source: KeySource
    let signingKey: PrivateKeyInput
    if (options?.signingKey !== undefined) {
      source = "configured"
      signingKey = options.signingKey
    } else {
      const generated = yield* io(keyFile, "cannot create the signing key", () => {
        if (NodeFs.existsSync(keyFile) || isLink(keyFile)) return false
        const pem = NodeCrypto.generateKeyPairSync("ed25519")
          .privateKey.export({ type: "pkcs8", format: "pem" })
          .toString()
        return createOnce(keyFile, pem, 0o600)
      })
      const stored = yield* io(keyFile, "cannot read the signing key", () => readNoFollow(keyFile))
      if (stored === undefined) {
        return yield* new LedgerKeyError({ path: keyFile, message: "the signing key file disappeared" })
      }
      if ((stored.mode & 0o077) !== 0) {
        return yield* new LedgerKeyError({
          path: keyFile,
          message: `the signing key file may be read by others (mode ${stored.mode.toString(8)}): chmod 600 it`
        })
      }
      source = generated ? "generated" : "file"
      signingKey = stored.text
    }

    const signing = yield* Effect.mapError(make({ signingKey }), (error) =>
      source === "configured" ? error : new LedgerKeyError({ path: keyFile, message: error.message })
    )
    yield* io(publicFolder, "cannot record the public key", () => {
      createOnce(NodePath.join(publicFolder, `${signing.keyId}.pem`), signing.publicKey, 0o644)
    })

    const recorded: Array<string> = []
    const names = yield* io(publicFolder, "cannot list the trusted keys", () => NodeFs.readdirSync(publicFolder))
    for (const name of names.sort()) {
      const match = keyIdFile.exec(name)
      if (match === null) continue
      const path = NodePath.join(publicFolder, name)
      const file = yield* io(path, "cannot read a trusted key", () => readNoFollow(path))
      if (file === undefined) continue
      const keyId = publicKeyId(file.text)
      if (keyId !== match[1]) {
        return yield* new LedgerKeyError({
          path,
          message: `expected the Ed25519 public key with id ${match[1]}, found ${keyId ?? "no Ed25519 public key"}`
        })
      }
      recorded.push(file.text)
    }
    const keys = yield* make({
      signingKey: signing.signingKey,
      trustedKeys: [...recorded, ...(options?.trustedKeys ?? [])]
    })
    const earlier = keys.trusted.size - 1
    const where =
      source === "configured"
        ? "from the configuration"
        : source === "generated"
          ? `generated and kept in ${keyFile} (mode 0600)`
          : `read from ${keyFile}`
    yield* Effect.logInfo(
      `Ledger signing key ${keys.keyId} ${where}; ${earlier} earlier key${earlier === 1 ? "" : "s"} trusted for older checkpoints`
    )
    return { ...keys, source, keyFile }
  })

const isLink = (path: string): boolean => {
  try {
    return NodeFs.lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}
