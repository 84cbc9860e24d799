/**
 * The web console in a real browser (Chromium through playwright-core) against a real server on memory: sign-in,
 * a task started over HTTP appearing live, the requester's own approval refused with the server's reason, a second
 * approver completing the task from the inbox with the keyboard, the inbox emptying, the trail verified in the
 * browser (an auditor's, and the requester's own), a tampered entry failing its badge, and the queues page offering
 * the runtime's queues and their dead letters to admins only. With `MANDATE_SCREENSHOTS=<dir>`, the main pages are saved
 * there (`npm run screenshots` refreshes `docs/`).
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { LedgerStore, LedgerTamper } from "@mandate/core"
import { Effect, Layer, ManagedRuntime } from "effect"
import { HttpServer } from "effect/http"
import type { Page } from "playwright-core"
import { afterAll, beforeAll } from "vitest"
import { build } from "../console/build.ts"
import * as Browser from "./utils/Browser.ts"
import * as TestServer from "./utils/TestServer.ts"

const { tokens, walletA, walletB } = TestServer
const screenshots = process.env.MANDATE_SCREENSHOTS

const run = Browser.available()

describe.skipIf(!run)("web console in Chromium", { timeout: 180_000 }, () => {
  let runtime: ManagedRuntime.ManagedRuntime<LedgerTamper | HttpServer.HttpServer, unknown>
  let browser: Browser.Browser
  let base = ""
  let consoleDir = ""

  beforeAll(async () => {
    consoleDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-console-"))
    await build(consoleDir)
    // The same memory ledger store as the services' (layers are shared within one build): its tamper hook
    // changes what the server serves
    const server = TestServer.layer(TestServer.memoryServices(), {
      console: { dir: consoleDir, devTokens: TestServer.keys },
      sseKeepAlive: "1 second"
    })
    runtime = ManagedRuntime.make(Layer.merge(server, LedgerStore.layerMemory))
    const address = await runtime.runPromise(
      Effect.gen(function* () {
        return (yield* HttpServer.HttpServer).address
      })
    )
    assert.isTrue("port" in address)
    base = `http://localhost:${"port" in address ? address.port : 0}`
    browser = await Browser.launch()
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await runtime?.dispose()
    if (consoleDir !== "") NodeFs.rmSync(consoleDir, { recursive: true, force: true })
  })

  const api = async (method: string, path: string, token: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" })
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: response.status, body: (await response.json()) as any }
  }

  const startTransfer = async (token: string) => {
    const started = await api("POST", "/task/start", token, {
      task_type: "transfer_funds",
      parameters: { from: walletA, to: walletB, amount: 2_500 }
    })
    assert.strictEqual(started.status, 200, JSON.stringify(started.body))
    return started.body.task_id as string
  }

  /** A new tab (its own sessionStorage, so its own sign-in), signed in by pasting `token`. */
  const signedIn = async (token: string): Promise<Page> => {
    const page = await browser.context.newPage()
    await page.goto(`${base}/`)
    await page.getByLabel("Bearer token").fill(token)
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    await page.getByTestId("principal").waitFor()
    return page
  }

  const shoot = async (page: Page, name: string) => {
    if (screenshots === undefined) return
    NodeFs.mkdirSync(screenshots, { recursive: true })
    await page.screenshot({ path: NodePath.resolve(screenshots, `console-${name}.png`), fullPage: true })
  }

  const navLinks = (page: Page) =>
    page.getByRole("navigation", { name: "Sections" }).getByRole("link").allTextContents()

  it("signs in with a pasted token and shows only what the roles allow; a bad token is refused", async () => {
    const page = await browser.context.newPage()
    await page.goto(`${base}/`)
    await shoot(page, "sign-in")
    await page.getByLabel("Bearer token").fill("nobody.not-a-token")
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    await page.getByRole("alert").filter({ hasText: "Unknown token" }).waitFor()

    await page.getByLabel("Bearer token").fill(tokens.erin)
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    assert.strictEqual(await page.getByTestId("principal").textContent(), "erin")
    assert.deepStrictEqual(await navLinks(page), ["Tasks", "Approvals"])
    assert.strictEqual(await page.getByText("Start a task").count(), 1)

    await page.getByRole("button", { name: "Sign out" }).click()
    await page.getByLabel("Bearer token").fill(tokens.carol)
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    assert.strictEqual(await page.getByTestId("principal").textContent(), "carol")
    assert.deepStrictEqual(await navLinks(page), ["Tasks", "Queues", "Agents", "Ledger"])
    // An auditor starts nothing: no form for it
    assert.strictEqual(await page.getByText("Start a task").count(), 0)
    await page.close()
  })

  it("in development mode, signs in by picking one of the generated principals", async () => {
    const page = await browser.context.newPage()
    await page.goto(`${base}/`)
    await page.getByRole("heading", { name: "Development mode: sign in as" }).waitFor()
    await page.getByRole("button", { name: /^robot \(agent\)/ }).click()
    assert.strictEqual(await page.getByTestId("principal").textContent(), "robot")
    assert.deepStrictEqual(await navLinks(page), ["Queues", "Agents"])
    await page.close()
  })

  let taskId = ""

  it("shows a task started over HTTP in the list as it happens, without a reload", async () => {
    const page = await signedIn(tokens.carol)
    await page.getByRole("status").filter({ hasText: "live" }).waitFor()
    // Marks this document: a reload would lose the mark
    await page.evaluate(() => {
      ;(globalThis as { mark?: number }).mark = 1
    })
    taskId = await startTransfer(tokens.erin)
    const row = page.locator(`tr[data-task="${taskId}"]`)
    await row.waitFor()
    await row.locator('[data-state="waiting_approval"]').waitFor()
    assert.strictEqual(await page.evaluate(() => (globalThis as { mark?: number }).mark), 1)
    assert.include(await row.textContent(), "erin")
    await shoot(page, "tasks")
    await page.close()
  })

  it("refuses the requester's own approval, with the server's reason", async () => {
    const page = await signedIn(tokens.erin)
    await page.getByRole("link", { name: "Approvals" }).click()
    const item = page.locator(`li[data-task="${taskId}"]`)
    await item.getByRole("button", { name: "Approve" }).click()
    const alert = item.getByRole("alert")
    await alert.waitFor()
    assert.include(await alert.textContent(), "the requester of a task cannot approve or reject it (four eyes)")
    // Still waiting
    assert.strictEqual((await api("GET", `/task/${taskId}/status`, tokens.carol)).body.status, "waiting_approval")
    await page.close()
  })

  it("lets a second approver approve from the inbox with the keyboard; the task completes and the inbox empties", async () => {
    const page = await signedIn(tokens.bob)
    await page.getByRole("link", { name: "Approvals" }).click()
    const item = page.locator(`li[data-task="${taskId}"]`)
    await item.waitFor()
    await shoot(page, "approvals")
    await item.getByLabel("Comment (optional)").focus()
    await page.keyboard.type("vendor verified")
    await page.keyboard.press("Tab")
    assert.strictEqual(await page.locator(":focus").textContent(), "✓ Approve")
    await page.keyboard.press("Enter")
    await page.getByText("Nothing waits for a decision.").waitFor()
    assert.strictEqual(await page.locator("ul.inbox > li").count(), 0)

    await page.goto(`${base}/#/task/${taskId}`)
    await page.locator('h1 [data-state="completed"]').waitFor()
    const approvals = page.getByRole("table", { name: "Approvals" })
    assert.include(await approvals.textContent(), "bob")
    assert.include(await approvals.textContent(), "vendor verified")
    assert.include(await approvals.textContent(), "✓ this plan's")
    await page.close()
  })

  it("verifies every ledger entry in the browser, and fails the badge of a tampered entry", async () => {
    // Anchor the ledger, so the trail shows the transaction
    assert.strictEqual((await api("POST", "/ledger/anchor", tokens.carol)).status, 200)
    const page = await signedIn(tokens.carol)
    await page.goto(`${base}/#/task/${taskId}`)
    const summary = page.getByTestId("trail-summary")
    await summary.filter({ hasText: "entries verified in this browser" }).waitFor()
    const entries = (await api("GET", `/audit/${taskId}`, tokens.carol)).body.entries as ReadonlyArray<any>
    assert.isAtLeast(entries.length, 10)
    assert.strictEqual(await page.locator('[data-verdict="verified"]').count(), entries.length)
    assert.include(await summary.textContent(), `All ${entries.length} entries verified`)
    await page.getByTestId("anchor").filter({ hasText: "carries this root" }).waitFor()
    await shoot(page, "task")

    // Change the stored transfer amount behind the ledger's back
    const created = entries.find((e) => e.kind === "task.created")
    await runtime.runPromise(
      Effect.gen(function* () {
        const tamper = yield* LedgerTamper
        yield* tamper.replaceEntry(created.seq, {
          seq: created.seq,
          kind: created.kind,
          taskId: created.task_id,
          taskPrevHash: created.task_prev_hash,
          principal: created.principal,
          at: created.at,
          payloadHash: created.payload_hash,
          payload: { ...created.payload, params: { ...created.payload.params, amount: 999_999 } },
          prevHash: created.prev_hash,
          entryHash: created.entry_hash
        })
      })
    )
    await page.reload()
    const failed = page.locator(`tr[data-seq="${created.seq}"] [data-verdict="failed"]`)
    await failed.waitFor()
    assert.include(await failed.textContent(), "payload hash")
    assert.include(await failed.textContent(), "entry hash")
    assert.strictEqual(await page.locator('[data-verdict="verified"]').count(), entries.length - 1)
    assert.include(await summary.textContent(), `1 of ${entries.length} entries failed`)
    await shoot(page, "task-tampered")
    await page.close()
  })

  it("shows the requester the trail of their own task, verified in the browser: the server lets them read it", async () => {
    const own = await startTransfer(tokens.alice)
    const trail = await api("GET", `/audit/${own}`, tokens.alice)
    assert.strictEqual(trail.status, 200, JSON.stringify(trail.body))
    const page = await signedIn(tokens.alice)
    await page.goto(`${base}/#/task/${own}`)
    const summary = page.getByTestId("trail-summary")
    await summary.filter({ hasText: "entries verified in this browser" }).waitFor()
    assert.isAtLeast(trail.body.entries.length, 1)
    // Every entry the server listed earlier is verified (more may have come since)
    assert.isAtLeast(await page.locator('[data-verdict="verified"]').count(), trail.body.entries.length)
    assert.strictEqual(await page.getByRole("alert").count(), 0)
    await page.close()
  })

  it("offers the runtime's queues and their dead letters to admins only; an auditor reads their statistics", async () => {
    const auditor = await signedIn(tokens.carol)
    await auditor.goto(`${base}/#/queues`)
    await auditor.getByRole("region", { name: "All queues" }).waitFor()
    assert.strictEqual(await auditor.locator("#queue-names option").count(), 0)
    await auditor.goto(`${base}/#/queues?queue=mandate.steps`)
    await auditor.getByRole("region", { name: "mandate.steps" }).waitFor()
    // Its jobs are the runtime's: no dead-letter list to be refused, no refusal note
    assert.strictEqual(await auditor.getByRole("region", { name: "Dead letters" }).count(), 0)
    assert.strictEqual(await auditor.getByRole("alert").count(), 0)
    // A host queue's dead letters are the auditor's to read
    await auditor.goto(`${base}/#/queues?queue=tenant.console`)
    await auditor.getByRole("region", { name: "Dead letters" }).getByText("No dead letters.").waitFor()
    await auditor.close()

    const admin = await signedIn(tokens.root)
    await admin.goto(`${base}/#/queues?queue=mandate.steps`)
    await admin.getByRole("region", { name: "Dead letters" }).getByText("No dead letters.").waitFor()
    assert.strictEqual(await admin.locator("#queue-names option").count(), 2)
    await admin.close()
  })

  it("fits a phone's width", async () => {
    const page = await signedIn(tokens.carol)
    await page.setViewportSize({ width: 390, height: 844 })
    for (const path of ["/tasks", `/task/${taskId}`, "/queues", "/ledger"]) {
      await page.goto(`${base}/#${path}`)
      await page.locator("main h1").waitFor()
      // The page is as wide as the screen: nothing scrolls sideways but the plan graph, inside its own box
      const overflow = await page.evaluate(() => {
        const dom = globalThis as unknown as {
          document: { documentElement: { scrollWidth: number } }
          innerWidth: number
        }
        return dom.document.documentElement.scrollWidth - dom.innerWidth
      })
      assert.isAtMost(overflow, 0, `${path} scrolls sideways by ${overflow}px`)
      if (path.startsWith("/task/") && screenshots !== undefined) {
        await page.getByTestId("trail-summary").filter({ hasText: "in this browser" }).waitFor()
        await page.screenshot({ path: NodePath.resolve(screenshots, "console-task-phone.png") })
      }
    }
    await page.goto(`${base}/#/ledger`)
    await page.setViewportSize({ width: 1280, height: 900 })
    await page.getByTestId("ledger-size").waitFor()
    await shoot(page, "ledger")
    await page.goto(`${base}/#/queues`)
    await page.getByRole("heading", { name: "All queues" }).waitFor()
    await shoot(page, "queues")
    await page.close()
  })
})
