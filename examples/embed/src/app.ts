/**
 * A host app that embeds Mandate on memory layers:
 *
 * 1. registers its own step type (`send_invoice`, with a handler) and task template (`bill_customer`),
 * 2. governs them with its own policy (invoices above 1,000 need an approver, above 100,000 are denied),
 * 3. runs a task that needs approval and approves it as a second person (four eyes),
 * 4. prints the task's audit trail and verifies every entry offline against a signed, anchored checkpoint.
 */
import {
  Anchor,
  Canonical,
  handler,
  Ledger,
  Mandate,
  type PolicySet,
  Principal,
  Runtime,
  StepError,
  taskTemplate,
  verifyEntryProof
} from "@mandate/core"
import { Effect, Schema, Stream } from "effect"

// ---- the host's own step type and template ----------------------------------------------------------------

const Invoice = Schema.Struct({
  customer: Schema.String.check(Schema.isBetweenLength(1, 64)),
  amountCents: Schema.Int.check(Schema.isGreaterThan(0))
})

const lookupCustomer = handler({
  type: "lookup_customer",
  params: Schema.Struct({ customer: Schema.String }),
  result: Schema.Struct({ customer: Schema.String, email: Schema.String }),
  run: ({ customer }) =>
    customer === "ghost"
      ? Effect.fail(StepError.permanent(`no customer ${customer}`))
      : Effect.succeed({ customer, email: `${customer}@example.com` })
})

const sendInvoice = handler({
  type: "send_invoice",
  params: Invoice,
  result: Schema.Struct({ invoiceId: Schema.String }),
  timeout: "5 seconds",
  run: (invoice, ctx) =>
    Effect.gen(function* () {
      // The idempotency key is stable across retries: a real mailer would deduplicate on it
      const invoiceId = `inv_${Canonical.sha256Hex(ctx.idempotencyKey).slice(0, 12)}`
      yield* ctx.record("invoice.sent", { invoiceId, customer: invoice.customer, amountCents: invoice.amountCents })
      return { invoiceId }
    })
})

const billCustomer = taskTemplate({
  kind: "bill_customer",
  description: "Look the customer up, then send the invoice",
  params: Invoice,
  steps: (invoice) => [
    { id: "lookup", type: "lookup_customer", params: { customer: invoice.customer } },
    { id: "send", type: "send_invoice", params: invoice, dependsOn: ["lookup"] }
  ]
})

const billingPolicy: PolicySet.PolicySet = {
  name: "billing",
  rules: [
    { id: "lookups", effect: "allow", match: { action: "lookup_customer" }, reason: "read-only" },
    { id: "small-invoices", effect: "allow", match: { action: "send_invoice" }, reason: "routine invoice" },
    {
      id: "large-invoices",
      effect: "require_approval",
      match: { action: "send_invoice", when: [{ param: "amountCents", op: "gt", value: 100_000 }] },
      reason: "invoices above 1,000.00 need an approver",
      approvals: { required: 1, timeoutSeconds: 86_400 }
    },
    {
      id: "huge-invoices",
      effect: "deny",
      match: { action: "send_invoice", when: [{ param: "amountCents", op: "gt", value: 10_000_000 }] },
      reason: "invoices above 100,000.00 go through finance, not this app"
    }
  ]
}

// ---- the program ------------------------------------------------------------------------------------------

// The clerk may approve invoices too, but never their own (four eyes)
const clerk = Principal.make("clerk", ["submitter", "approver"])
const manager = Principal.make("manager", ["approver"])

/** Runs the demo, printing through `log`; returns what a test can check. */
export const demo = (log: (line: string) => void) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const ledger = yield* Ledger

    const task = yield* runtime.start(
      { kind: "bill_customer", params: { customer: "acme", amountCents: 250_000 } },
      clerk
    )
    log(`started ${task.id} (${task.kind}) for ${task.requestedBy.id}`)

    // Wait until the gated step asks for approval (the stream opens with the task as it is now)
    const events = yield* runtime.events(task.id)
    yield* Stream.runHead(Stream.filter(events, (e) => e.state === "waiting_approval"))
    const waiting = yield* runtime.get(task.id)
    log(`state: ${waiting.task.state}; ${waiting.steps.map((s) => `${s.id}=${s.state}`).join(", ")}`)

    const selfApproval = yield* Effect.flip(runtime.approve(task.id, clerk))
    log(`the clerk approving their own task: refused (${selfApproval.message})`)

    yield* runtime.approve(task.id, manager, { comment: "known customer, amount agreed" })
    yield* Stream.runHead(Stream.filter(events, (e) => e.kind === "task.completed"))
    const done = yield* runtime.get(task.id)
    log(`state: ${done.task.state}; invoice ${(done.steps[1]!.result as { invoiceId: string }).invoiceId}`)

    // The audit trail, each entry verified offline with nothing but the ledger's public key
    const anchored = yield* ledger.anchor
    const tx = yield* Anchor.use((a) => a.getTx(anchored.anchor!.txId))
    log(
      `checkpoint size ${anchored.checkpoint.size} root ${anchored.checkpoint.root.slice(0, 16)}… anchored in ${tx.txId}`
    )
    log("audit trail:")
    const trail = yield* ledger.byTask(task.id)
    let verified = 0
    for (const entry of trail) {
      const proof = yield* ledger.verify(entry.entryHash)
      const ok = verifyEntryProof(proof, ledger.publicKey)
      if (ok) verified++
      const who = entry.principal === undefined ? "" : ` by ${entry.principal.id}`
      log(
        `  #${String(entry.seq).padStart(3)} ${entry.kind.padEnd(18)} ${(entry.stepId ?? "").padEnd(7)}${who.padEnd(12)} ` +
          `${entry.entryHash.slice(0, 12)}… ${ok ? "verified" : "NOT VERIFIED"}`
      )
    }
    const whole = yield* ledger.verifyAll()
    log(`${verified}/${trail.length} entries verified; whole ledger (${whole.entries} entries) valid: ${whole.valid}`)

    const refused = yield* Effect.flip(
      runtime.start({ kind: "bill_customer", params: { customer: "acme", amountCents: 50_000_000 } }, clerk)
    )
    log(`a 500,000.00 invoice: ${refused._tag} — ${refused.message}`)
    return { state: done.task.state, verified, entries: trail.length, valid: whole.valid, refused: refused._tag }
  }).pipe(Effect.scoped)

/** The app's Mandate: every service on memory, with the host's step types, template and policy. */
export const layer = Mandate.layerMemory({
  handlers: [lookupCustomer, sendInvoice],
  templates: [billCustomer],
  policy: billingPolicy
})
