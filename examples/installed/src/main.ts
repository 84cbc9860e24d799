/**
 * A host app as it is written against the published packages (no workspace, no source condition): a transfer
 * on memory stores, anchored on the in-process Qubic mock, approved by a second principal, its audit trail
 * verified offline. Prints one JSON line with what happened.
 */
import * as Qubic from "@mandate/adapters/qubic"
import { Ledger, Mandate, Principal, Runtime, verifyEntryProof } from "@mandate/core"
import { Effect, Stream } from "effect"

const alice = Principal.make("alice", ["submitter"])
const bob = Principal.make("bob", ["approver"])

const program = Effect.gen(function* () {
  const runtime = yield* Runtime
  const task = yield* runtime.start(
    { kind: "transfer_funds", params: { from: "A".repeat(60), to: "B".repeat(60), amount: 2_500 } },
    alice
  )
  const events = yield* runtime.events(task.id)
  yield* Stream.runHead(Stream.filter(events, (e) => e.state === "waiting_approval"))
  yield* runtime.approve(task.id, bob)
  yield* Stream.runHead(Stream.filter(events, (e) => e.kind === "task.completed"))
  const ledger = yield* Ledger
  const trail = yield* ledger.byTask(task.id)
  let verified = 0
  for (const entry of trail) {
    if (verifyEntryProof(yield* ledger.verify(entry.entryHash), ledger.publicKey)) verified++
  }
  const view = yield* runtime.get(task.id)
  return { state: view.task.state, entries: trail.length, verified }
}).pipe(Effect.scoped)

const chain = Qubic.layerMock({ network: { tickDuration: "20 millis" }, pollInterval: "10 millis", tickOffset: 2 })

program.pipe(Effect.provide(Mandate.layerMemory({ anchor: chain })), Effect.runPromise).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
