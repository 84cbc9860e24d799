import { assert, describe, it } from "@effect/vitest"
import {
  identityFromPublicKey,
  identityProblem,
  isIdentity,
  isTxId,
  k12,
  publicKeyFromIdentity,
  QubicIdentity,
  QubicTxId,
  seedKeys
} from "@mandate/adapters/qubic"
import { Option, Schema } from "effect"

const bytes = (values: ReadonlyArray<number>) => Uint8Array.from(values)
const hex = (text: string) => Uint8Array.from(Buffer.from(text, "hex"))

// Known answers from the Qubic projects' own tests (see the comments)
const vectors: ReadonlyArray<{ readonly source: string; readonly publicKey: Uint8Array; readonly identity: string }> = [
  {
    source: "QUBIC.md (archive proto docs): the zero key",
    publicKey: new Uint8Array(32),
    identity: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFXIB"
  },
  {
    source: "qubic/go-node-connector types/identity_test.go",
    publicKey: bytes([
      230, 252, 58, 173, 75, 89, 77, 130, 191, 49, 3, 161, 16, 22, 216, 13, 232, 131, 222, 135, 59, 206, 196, 142, 144,
      57, 98, 134, 80, 59, 38, 19
    ]),
    identity: "QJRRSSKMJRDKUDTYVNYGAMQPULKAMILQQYOWBEXUDEUWQUMNGDHQYLOAJMEB"
  },
  {
    source: "a Rust Qubic wallet's test (seed aaaa…a)",
    publicKey: bytes([
      31, 89, 13, 3, 230, 19, 189, 222, 211, 139, 76, 8, 32, 172, 68, 97, 95, 145, 175, 18, 67, 89, 128, 179, 237, 227,
      192, 140, 49, 90, 37, 68
    ]),
    identity: "BZBQFLLBNCXEMGLOBHUVFTLUPLVCPQUASSILFABOFFBCADQSSUPNWLZBQEXK"
  },
  {
    source: "Qubic.Net QubicIdentityTests: first byte 1",
    publicKey: bytes([1, ...new Array(31).fill(0)]),
    identity: "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAARMID"
  }
]

describe("Qubic identities", () => {
  for (const vector of vectors) {
    it(`encodes and decodes the known answer from ${vector.source}`, () => {
      assert.strictEqual(identityFromPublicKey(vector.publicKey), vector.identity)
      assert.deepStrictEqual(Option.getOrThrow(publicKeyFromIdentity(vector.identity)), vector.publicKey)
      assert.isTrue(isIdentity(vector.identity))
    })
  }

  it("accepts identities seen on the network (arbitrator, a packet signer in Qubic.Net's tests)", () => {
    assert.isTrue(isIdentity("AFZPUAIYVPNUYGJRQVLUKOPPVLHAZQTGLYAAUUNBXFTVTAMSBKQBLEIEPCVJ"))
    assert.isTrue(isIdentity("UGQLSPXWWQORKDDJNOQVYRPYPWKDYLBCTOJCQTPRJFUXGTQXJAVACKSDDNMA"))
  })

  it("writes digests in lowercase: Qubic.Net's known transaction-id-style answer", () => {
    const digest = hex("29A49B5FF4119B698E4F7508A3C5F38686BE4460C7C27D5E84063639A8153C5D")
    const id = identityFromPublicKey(digest, { lowercase: true })
    assert.strictEqual(id, "ddcokqjpjphtbdahocnutrzglxxdcswdqzqkohcjtceotbgjrqhxkksctpee")
    assert.isTrue(isTxId(id))
    assert.isFalse(isIdentity(id))
    assert.deepStrictEqual(Option.getOrThrow(publicKeyFromIdentity(id)), digest)
    assert.strictEqual(
      identityFromPublicKey(vectors[1]!.publicKey, { lowercase: true }),
      vectors[1]!.identity.toLowerCase()
    )
  })

  it("rejects a wrong checksum, length, alphabet or a group beyond 64 bits", () => {
    const good = vectors[1]!.identity
    const badChecksum = `${good.slice(0, 59)}${good[59] === "A" ? "B" : "A"}`
    const badBody = `${good[0] === "A" ? "B" : "A"}${good.slice(1)}`
    assert.match(identityProblem(badChecksum)!, /checksum/)
    assert.match(identityProblem(badBody)!, /checksum/)
    assert.match(identityProblem(good.slice(1))!, /60 letters/)
    assert.match(identityProblem(good.toLowerCase())!, /uppercase/)
    assert.match(identityProblem(`${good.slice(0, 10)}1${good.slice(11)}`)!, /letters/)
    // "ZZZZZZZZZZZZZZ" is 26^14 - 1 > 2^64 - 1: no public key has it
    assert.match(identityProblem(`${"Z".repeat(14)}${good.slice(14)}`)!, /64 bits/)
    assert.isTrue(Option.isNone(publicKeyFromIdentity(badChecksum)))
    assert.isFalse(isTxId(good))
  })

  it("decodes the identity schemas, with the reason on failure", () => {
    assert.strictEqual(Schema.decodeUnknownSync(QubicIdentity)(vectors[0]!.identity), vectors[0]!.identity)
    assert.throws(() => Schema.decodeUnknownSync(QubicIdentity)(`${vectors[0]!.identity.slice(0, 59)}A`), /checksum/)
    assert.throws(() => Schema.decodeUnknownSync(QubicTxId)(vectors[0]!.identity), /lowercase/)
  })

  it.prop("round-trips any public key, in both cases", [Schema.String], ([text]) => {
    const publicKey = k12(new TextEncoder().encode(text))
    for (const lowercase of [false, true]) {
      const id = identityFromPublicKey(publicKey, { lowercase })
      assert.strictEqual(id.length, 60)
      assert.isTrue(lowercase ? isTxId(id) : isIdentity(id))
      assert.deepStrictEqual(Option.getOrThrow(publicKeyFromIdentity(id)), publicKey)
    }
  })
})

describe("KangarooTwelve and seeds", () => {
  it("matches Qubic.Net's K12 known answer", () => {
    const digest = k12(bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert.strictEqual(
      Buffer.from(digest).toString("hex"),
      "e5ef1dd415a069d5c1ee20a731c271d751ec9f301bfb8a51acf27828d231e305"
    )
  })

  it("derives subseed and private key as qubic/go-node-connector's wallet test expects", () => {
    const { subseed, privateKey } = seedKeys("lmujdbtiimznvyamoyjumfeiglauqfzsznisydmqrdyuwqydjpjixat")
    assert.deepStrictEqual(
      subseed,
      bytes([
        244, 124, 158, 118, 114, 22, 0, 127, 168, 254, 156, 41, 77, 119, 59, 224, 162, 60, 9, 187, 43, 141, 1, 189, 213,
        224, 195, 24, 35, 144, 238, 58
      ])
    )
    assert.deepStrictEqual(
      privateKey,
      bytes([
        255, 152, 128, 102, 167, 172, 117, 67, 207, 98, 121, 87, 47, 195, 144, 191, 211, 225, 145, 187, 93, 83, 248,
        238, 217, 120, 166, 88, 206, 146, 124, 225
      ])
    )
  })
})
