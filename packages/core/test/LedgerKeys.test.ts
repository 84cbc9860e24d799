import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { LedgerKeys, publicKeyId } from "@mandate/core"
import { Effect } from "effect"

const tempDirectory = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-ledger-keys-"))),
  (directory) => Effect.sync(() => NodeFs.rmSync(directory, { recursive: true, force: true }))
)

const pem = (key: NodeCrypto.KeyObject) => key.export({ type: "pkcs8", format: "pem" }).toString()
const modeOf = (path: string) => NodeFs.statSync(path).mode & 0o777

describe("LedgerKeys.inDirectory", () => {
  it.effect("generates the key once, mode 0600 in a 0700 directory, and reads it back at the next start", () =>
    Effect.gen(function* () {
      const parent = yield* tempDirectory
      const directory = NodePath.join(parent, "data")
      const first = yield* LedgerKeys.inDirectory(directory)
      assert.strictEqual(first.source, "generated")
      assert.strictEqual(first.keyFile, NodePath.join(directory, LedgerKeys.keyFileName))
      assert.strictEqual(modeOf(first.keyFile), 0o600)
      assert.strictEqual(modeOf(directory), 0o700)
      // the public key is recorded under its key id
      const recorded = NodePath.join(directory, LedgerKeys.publicKeysFolder, `${first.keyId}.pem`)
      assert.strictEqual(publicKeyId(NodeFs.readFileSync(recorded, "utf8")), first.keyId)
      // no temporary file is left behind
      assert.deepStrictEqual(
        NodeFs.readdirSync(directory).sort(),
        [LedgerKeys.keyFileName, LedgerKeys.publicKeysFolder].sort()
      )

      const again = yield* LedgerKeys.inDirectory(directory)
      assert.strictEqual(again.source, "file")
      assert.strictEqual(again.keyId, first.keyId)
      assert.deepStrictEqual([...again.trusted.keys()], [first.keyId])
    })
  )

  it.effect("concurrent first starts agree on one key", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const all = yield* Effect.all(
        Array.from({ length: 8 }, () => LedgerKeys.inDirectory(directory)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(new Set(all.map((k) => k.keyId)).size, 1)
      assert.strictEqual(all.filter((k) => k.source === "generated").length, 1)
    })
  )

  it.effect(
    "a configured key signs; the directory's earlier keys stay trusted, and the configured one is recorded",
    () =>
      Effect.gen(function* () {
        const directory = yield* tempDirectory
        const generated = yield* LedgerKeys.inDirectory(directory)
        const configured = NodeCrypto.generateKeyPairSync("ed25519")
        const keys = yield* LedgerKeys.inDirectory(directory, { signingKey: pem(configured.privateKey) })
        assert.strictEqual(keys.source, "configured")
        assert.strictEqual(keys.keyId, publicKeyId(configured.publicKey))
        assert.deepStrictEqual([...keys.trusted.keys()].sort(), [generated.keyId, keys.keyId].sort())
        // Back to the file's key: the configured one, used once, stays trusted
        const back = yield* LedgerKeys.inDirectory(directory)
        assert.strictEqual(back.keyId, generated.keyId)
        assert.isTrue(back.trusted.has(keys.keyId))
      })
  )

  it.effect("never writes through, or reads from, a symbolic link at the key's name", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const target = NodePath.join(directory, "elsewhere.pem")
      NodeFs.symlinkSync(target, NodePath.join(directory, LedgerKeys.keyFileName))
      const error = yield* Effect.flip(LedgerKeys.inDirectory(directory))
      assert.strictEqual(error._tag, "LedgerKeyError")
      assert.include(error.message, "symbolic link")
      assert.isFalse(NodeFs.existsSync(target), "nothing was written through the link")

      // A link to a real key is refused too
      NodeFs.writeFileSync(target, pem(NodeCrypto.generateKeyPairSync("ed25519").privateKey), { mode: 0o600 })
      const again = yield* Effect.flip(LedgerKeys.inDirectory(directory))
      assert.include(again.message, "symbolic link")
    })
  )

  it.effect("refuses a key file others may read, a file that is no key, and a public key under another key's id", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const keys = yield* LedgerKeys.inDirectory(directory)
      NodeFs.chmodSync(keys.keyFile, 0o644)
      const readable = yield* Effect.flip(LedgerKeys.inDirectory(directory))
      assert.strictEqual(readable._tag, "LedgerKeyError")
      assert.include(readable.message, "chmod 600")

      NodeFs.rmSync(keys.keyFile)
      NodeFs.writeFileSync(keys.keyFile, "not a key", { mode: 0o600 })
      const garbage = yield* Effect.flip(LedgerKeys.inDirectory(directory))
      assert.strictEqual(garbage._tag, "LedgerKeyError")
      assert.strictEqual((garbage as LedgerKeys.LedgerKeyError).path, keys.keyFile)

      NodeFs.rmSync(keys.keyFile)
      const other = NodeCrypto.generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" })
      NodeFs.writeFileSync(NodePath.join(directory, LedgerKeys.publicKeysFolder, `${"a".repeat(64)}.pem`), other)
      const misnamed = yield* Effect.flip(LedgerKeys.inDirectory(directory))
      assert.strictEqual(misnamed._tag, "LedgerKeyError")
      assert.include(misnamed.message, "a".repeat(64))
    })
  )
})

describe("LedgerKeys.make", () => {
  it.effect("refuses what is not an Ed25519 key, by option path", () =>
    Effect.gen(function* () {
      const rsa = NodeCrypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const bad = yield* Effect.flip(LedgerKeys.make({ signingKey: rsa.privateKey }))
      assert.strictEqual(bad.path, "$.signingKey")
      const ed = NodeCrypto.generateKeyPairSync("ed25519")
      const untrusted = yield* Effect.flip(LedgerKeys.make({ signingKey: ed.privateKey, trustedKeys: [rsa.publicKey] }))
      assert.strictEqual(untrusted.path, "$.trustedKeys[0]")
    })
  )
})
