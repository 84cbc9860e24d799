/**
 * Verifies a task's proof bundle (`ProofBundle`) with nothing but Web Crypto, so a browser, the CLI or any third
 * party can check a task's whole trail with no database and no trust in the server that exported it. It imports
 * only `WebVerify` (itself dependency-free).
 *
 * The caller pins the ledger's public key (SPKI PEM, an imported key, or its key id): the bundle's own copy of the
 * key counts only when its id is the pinned one.
 * `verifyBundle` answers one `BundleCheck` per property, in order:
 *
 * - `format`: the document is a bundle of a known version, for one task;
 * - `key`: the checkpoint names the pinned key; `signature`: its Ed25519 signature verifies;
 * - `entries`: every entry's payload hashes to its `payloadHash` and its fields to its `entryHash`, every entry is
 *   of the task, by ascending seq;
 * - `inclusion`: every entry's proof leads from its leaf to the checkpoint's root;
 * - `completeness`: every entry links to the task's previous entry (`taskPrevHash`, the first to `genesisHash`),
 *   so an entry left out, added or moved breaks a link. The chain shows nothing missing before the last entry;
 *   whether the task had ended at the checkpoint is said in the detail (a running task may have later entries);
 * - `anchor.signature`, `anchor.consistency`, `anchor.receipt`: the anchored checkpoint is signed by the pinned
 *   key, the checkpoint's tree extends it (RFC 9162 consistency proof), and the receipt and the transaction input
 *   carry its root and size (the input is what a chain explorer shows: root ‖ size as u64 little-endian); a
 *   pending receipt passes and says so, a dropped one fails. Skipped when nothing was anchored yet. Whether the chain really holds that transaction is for the caller to ask a node
 *   (`mandate audit verify --chain`).
 *
 * Every function answers (never throws) for any input.
 *
 * @since 0.2.0
 */
import * as WebVerify from "./WebVerify.ts"

/**
 * The bundle format this module reads.
 *
 * @category constants
 * @since 0.2.0
 */
export const bundleFormat = "mandate.proof-bundle/1"

/**
 * `taskPrevHash` of a task's first entry.
 *
 * @category constants
 * @since 0.2.0
 */
export const taskGenesis = "0".repeat(64)

/**
 * One check of a bundle: passed, failed, or skipped (nothing to check), and what was compared.
 *
 * @category models
 * @since 0.2.0
 */
export interface BundleCheck {
  readonly name: string
  readonly ok: boolean
  readonly skipped: boolean
  readonly detail: string
}

/**
 * Every check of a bundle; `ok` when none failed.
 *
 * @category models
 * @since 0.2.0
 */
export interface BundleReport {
  readonly ok: boolean
  readonly taskId: string | undefined
  readonly entries: number
  readonly checks: ReadonlyArray<BundleCheck>
}

const terminalKinds = new Set(["task.completed", "task.failed", "task.cancelled", "task.rejected"])

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const short = (hex: unknown) => `${String(hex).slice(0, 12)}…`

const hexOf = (bytes: Uint8Array): string => {
  let out = ""
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0")
  return out
}

const bytesOf = (hex: unknown): Uint8Array | undefined => {
  if (typeof hex !== "string" || !/^[0-9a-f]{64}$/.test(hex)) return undefined
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const nodeHash = async (left: Uint8Array, right: Uint8Array): Promise<Uint8Array> => {
  const data = new Uint8Array(65)
  data[0] = 1
  data.set(left, 1)
  data.set(right, 33)
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data))
}

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/**
 * Checks an RFC 9162 §2.1.4.2 consistency proof (as `Merkle.verifyConsistency`): the tree of `oldSize` leaves with
 * root `oldRoot` is a prefix of the tree of `newSize` leaves with root `newRoot`.
 *
 * @category verification
 * @since 0.2.0
 */
export const verifyConsistency = async (
  proof: { readonly oldSize: number; readonly newSize: number; readonly path: ReadonlyArray<string> },
  oldRootHex: string,
  newRootHex: string
): Promise<boolean> => {
  try {
    const { newSize, oldSize } = proof
    const oldRoot = bytesOf(oldRootHex)
    const newRoot = bytesOf(newRootHex)
    if (!Array.isArray(proof.path) || oldRoot === undefined || newRoot === undefined) return false
    const path = proof.path.map(bytesOf)
    if (!path.every((p) => p !== undefined)) return false
    if (!isSize(oldSize) || !isSize(newSize) || newSize < oldSize || oldSize === 0) return false
    if (oldSize === newSize) return path.length === 0 && equalBytes(oldRoot, newRoot)
    if (path.length === 0) return false
    const nodes = (oldSize & (oldSize - 1)) === 0 ? [oldRoot, ...path] : path
    let fn = oldSize - 1
    let sn = newSize - 1
    while (fn % 2 === 1) {
      fn = (fn - 1) / 2
      sn = Math.floor(sn / 2)
    }
    let fr = nodes[0]!
    let sr = nodes[0]!
    for (let i = 1; i < nodes.length; i++) {
      const c = nodes[i]!
      if (sn === 0) return false
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr)
        sr = await nodeHash(c, sr)
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn /= 2
            sn = Math.floor(sn / 2)
          }
        }
      } else {
        sr = await nodeHash(sr, c)
      }
      fn = Math.floor(fn / 2)
      sn = Math.floor(sn / 2)
    }
    return sn === 0 && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot)
  } catch {
    return false
  }
}

/**
 * The anchor record a chain transaction carries for a checkpoint (its `input`, hex): the 32-byte root followed by
 * the tree size as a u64 little-endian, as the Qubic anchor writes it. `undefined` for a malformed root or size.
 *
 * @category encoding
 * @since 0.2.0
 */
export const anchorInput = (root: unknown, size: unknown): string | undefined => {
  const bytes = bytesOf(root)
  if (bytes === undefined || !isSize(size)) return undefined
  const le = new Uint8Array(8)
  let n = size
  for (let i = 0; i < 8; i++) {
    le[i] = n % 256
    n = Math.floor(n / 256)
  }
  return hexOf(bytes) + hexOf(le)
}

const checkpointOf = (value: unknown): WebVerify.Checkpoint | undefined =>
  isRecord(value) &&
  isSize(value.size) &&
  typeof value.root === "string" &&
  typeof value.timestamp === "number" &&
  typeof value.signature === "string" &&
  typeof value.keyId === "string"
    ? (value as unknown as WebVerify.Checkpoint)
    : undefined

const pass = (name: string, detail: string): BundleCheck => ({ name, ok: true, skipped: false, detail })
const fail = (name: string, detail: string): BundleCheck => ({ name, ok: false, skipped: false, detail })
const skip = (name: string, detail: string): BundleCheck => ({ name, ok: true, skipped: true, detail })

const entryLabel = (entry: unknown, i: number) =>
  isRecord(entry) && isSize(entry.seq) ? `entry ${i} (seq ${entry.seq})` : `entry ${i}`

/**
 * Verifies a proof bundle against the pinned public key: SPKI PEM, a key imported with `WebVerify.importPublicKey`,
 * or its key id (64 hex digits: SHA-256 of the raw key), which accepts the bundle's `publicKey` only if it is
 * that key. See the module documentation for the checks.
 *
 * @category verification
 * @since 0.2.0
 */
export const verifyBundle = async (bundle: unknown, pinned: string | WebVerify.PublicKey): Promise<BundleReport> => {
  const checks: Array<BundleCheck> = []
  const report = (taskId: string | undefined, entries: number): BundleReport => ({
    ok: checks.every((c) => c.ok),
    taskId,
    entries,
    checks
  })
  // A fingerprint pins the key by id: the bundle's PEM is used only if it is that key
  const fingerprint = typeof pinned === "string" && /^[0-9a-f]{64}$/.test(pinned.trim()) ? pinned.trim() : undefined
  const pem =
    fingerprint === undefined
      ? pinned
      : isRecord(bundle) && typeof bundle.publicKey === "string"
        ? bundle.publicKey
        : ""
  const key = typeof pem === "string" ? await WebVerify.importPublicKey(pem) : pem
  if (key === undefined || (fingerprint !== undefined && key.keyId !== fingerprint)) {
    checks.push(
      fail(
        "key",
        fingerprint === undefined
          ? "the pinned key is not an Ed25519 public key (SPKI PEM)"
          : `the bundle's public key is not the pinned key ${short(fingerprint)}`
      )
    )
    return report(undefined, 0)
  }
  if (!isRecord(bundle) || bundle.format !== bundleFormat) {
    checks.push(fail("format", `not a proof bundle of format ${bundleFormat}`))
    return report(undefined, 0)
  }
  const taskId = typeof bundle.taskId === "string" ? bundle.taskId : undefined
  const entries = Array.isArray(bundle.entries) ? (bundle.entries as ReadonlyArray<unknown>) : undefined
  const proofs = Array.isArray(bundle.proofs) ? (bundle.proofs as ReadonlyArray<unknown>) : undefined
  const checkpoint = checkpointOf(bundle.checkpoint)
  if (taskId === undefined || entries === undefined || entries.length === 0 || proofs === undefined || !checkpoint) {
    checks.push(fail("format", "the bundle lacks its task id, entries, proofs or checkpoint"))
    return report(taskId, entries?.length ?? 0)
  }
  checks.push(pass("format", `${bundleFormat}: task ${taskId}, ${entries.length} entries`))

  // The checkpoint: the pinned key's, and signed by it
  checks.push(
    checkpoint.keyId === key.keyId
      ? pass("key", `the checkpoint names the pinned key ${short(key.keyId)}`)
      : fail("key", `the checkpoint is signed by key ${short(checkpoint.keyId)}, not the pinned ${short(key.keyId)}`)
  )
  const signature = await WebVerify.verifyCheckpoint(checkpoint, key)
  checks.push(signature.ok ? pass("signature", signature.detail) : fail("signature", signature.detail))

  // Each entry on its own, and its proof in the checkpoint
  const entryProblems: Array<string> = []
  const inclusionProblems: Array<string> = []
  const hashes: Array<string | undefined> = []
  let lastSeq = -1
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]
    const label = entryLabel(entry, i)
    if (!isRecord(entry)) {
      entryProblems.push(`${label} is not an object`)
      hashes.push(undefined)
      continue
    }
    if (entry.taskId !== taskId) entryProblems.push(`${label} is of task ${String(entry.taskId)}, not ${taskId}`)
    if (!isSize(entry.seq) || entry.seq <= lastSeq) entryProblems.push(`${label} is not after seq ${lastSeq}`)
    if (isSize(entry.seq)) lastSeq = Math.max(lastSeq, entry.seq)
    // The checks of WebVerify.verifyEntry, less its checkpoint signature (checked once above)
    if ("payload" in entry) {
      const text = WebVerify.canonicalJson(entry.payload)
      const computed = text === undefined ? undefined : await WebVerify.sha256Hex(text)
      if (computed === undefined || computed !== entry.payloadHash) {
        entryProblems.push(
          `${label}: payload hashes to ${computed === undefined ? "nothing" : short(computed)}, entry says ${short(entry.payloadHash)}`
        )
      }
    }
    const computed = await WebVerify.entryHash(entry)
    const hashed = computed !== undefined && computed === entry.entryHash
    if (!hashed) {
      entryProblems.push(
        `${label}: fields hash to ${computed === undefined ? "nothing" : short(computed)}, entry says ${short(entry.entryHash)}`
      )
    }
    // The leaf is the hash the fields give, so a changed field cannot hide behind an unchanged entryHash
    const proof = proofs[i]
    const leaf = computed === undefined ? undefined : await WebVerify.leafHash(computed)
    const root =
      leaf === undefined || !isRecord(proof)
        ? undefined
        : await WebVerify.rootFromInclusion(proof as unknown as WebVerify.InclusionProof, leaf)
    if (
      root === undefined ||
      root !== checkpoint.root ||
      !isRecord(proof) ||
      proof.leafIndex !== entry.seq ||
      proof.treeSize !== checkpoint.size
    ) {
      inclusionProblems.push(`${label}: the proof does not lead from it to the root of checkpoint ${checkpoint.size}`)
    }
    hashes.push(hashed ? (entry.entryHash as string) : undefined)
  }
  if (proofs.length !== entries.length) {
    inclusionProblems.push(`${proofs.length} proofs for ${entries.length} entries`)
  }
  checks.push(
    entryProblems.length === 0
      ? pass("entries", `${entries.length} entries of task ${taskId} hash to their payload and entry hashes`)
      : fail("entries", entryProblems.slice(0, 3).join("; ") + more(entryProblems.length))
  )
  checks.push(
    inclusionProblems.length === 0
      ? pass("inclusion", `every entry is in the tree of checkpoint ${checkpoint.size}`)
      : fail("inclusion", inclusionProblems.slice(0, 3).join("; ") + more(inclusionProblems.length))
  )

  // Completeness: the per-task chain
  let broken: string | undefined
  for (let i = 0; i < entries.length && broken === undefined; i++) {
    const entry = entries[i]
    if (!isRecord(entry)) {
      broken = `${entryLabel(entry, i)} is not an entry`
      break
    }
    const expected = i === 0 ? taskGenesis : (entries[i - 1] as Record<string, unknown> | undefined)?.entryHash
    if (!("taskPrevHash" in entry)) {
      broken = `${entryLabel(entry, i)} predates per-task links (entry format 1): the trail's completeness cannot be shown`
    } else if (entry.taskPrevHash !== expected) {
      broken =
        i === 0
          ? `${entryLabel(entry, i)} links to ${short(entry.taskPrevHash)}, not the task's start: earlier entries are missing`
          : `${entryLabel(entry, i)} links to ${short(entry.taskPrevHash)}, not to the entry before it (${short(expected)}): an entry is missing or out of order`
    } else if (hashes[i] === undefined) {
      broken = `${entryLabel(entry, i)} does not hash to its entry hash, so its link proves nothing`
    }
  }
  const last = entries[entries.length - 1] as Record<string, unknown>
  const ending = terminalKinds.has(String(last?.kind))
    ? `the task ended (${String(last.kind)})`
    : `the task had not ended at checkpoint ${checkpoint.size}; later entries may follow`
  checks.push(
    broken === undefined
      ? pass("completeness", `${entries.length} entries link one to the next from the task's start; ${ending}`)
      : fail("completeness", broken)
  )

  // The anchor: a signed earlier (or equal) checkpoint, extended by this one, whose root the chain carries
  const anchor = bundle.anchor
  if (anchor === undefined) {
    for (const name of ["anchor.signature", "anchor.consistency", "anchor.receipt"]) {
      checks.push(skip(name, "nothing was anchored when the bundle was exported"))
    }
    return report(taskId, entries.length)
  }
  const anchored = isRecord(anchor) ? checkpointOf(anchor.checkpoint) : undefined
  if (!isRecord(anchor) || anchored === undefined) {
    checks.push(fail("anchor.signature", "the anchor has no checkpoint"))
    return report(taskId, entries.length)
  }
  const anchoredSignature =
    anchored.keyId === key.keyId
      ? await WebVerify.verifyCheckpoint(anchored, key)
      : { ok: false, detail: `signed by key ${short(anchored.keyId)}, not the pinned ${short(key.keyId)}` }
  checks.push(
    anchoredSignature.ok
      ? pass("anchor.signature", anchoredSignature.detail)
      : fail("anchor.signature", anchoredSignature.detail)
  )
  const consistency = isRecord(anchor.consistency) ? anchor.consistency : undefined
  const consistent =
    consistency !== undefined &&
    consistency.oldSize === anchored.size &&
    consistency.newSize === checkpoint.size &&
    (await verifyConsistency(consistency as never, anchored.root, checkpoint.root))
  const covered = entries.filter((e) => isRecord(e) && isSize(e.seq) && e.seq < anchored.size).length
  checks.push(
    consistent
      ? pass(
          "anchor.consistency",
          `checkpoint ${checkpoint.size} extends anchored checkpoint ${anchored.size}: ${covered} of ${entries.length} entries are under the anchored root`
        )
      : fail(
          "anchor.consistency",
          `no valid proof that checkpoint ${checkpoint.size} extends anchored checkpoint ${anchored.size}`
        )
  )
  const receipt = isRecord(anchor.receipt) ? anchor.receipt : undefined
  const expectedInput = anchorInput(anchored.root, anchored.size)
  const receiptProblem =
    receipt === undefined
      ? "no receipt"
      : receipt.root !== anchored.root
        ? `the receipt is for root ${short(receipt.root)}, not the anchored ${short(anchored.root)}`
        : receipt.size !== anchored.size
          ? `the receipt is for size ${String(receipt.size)}, not ${anchored.size}`
          : receipt.status === "dropped"
            ? "the transaction was dropped"
            : anchor.input !== expectedInput
              ? "the transaction input is not the anchored root and size"
              : undefined
  checks.push(
    receiptProblem === undefined
      ? pass(
          "anchor.receipt",
          `${String(receipt!.chain)} tx ${String(receipt!.txId)} (tick ${String(receipt!.tick)}, ${String(receipt!.status)}) carries root ${short(anchored.root)} and size ${anchored.size}`
        )
      : fail("anchor.receipt", receiptProblem)
  )
  return report(taskId, entries.length)
}

const more = (n: number) => (n > 3 ? `; and ${n - 3} more` : "")
