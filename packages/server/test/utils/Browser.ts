/**
 * A real browser for the console tests: Debian's Chromium (`/usr/bin/chromium`, `apt-get install chromium`) driven
 * by playwright-core, headless, with a fresh profile per launch. Without Chromium the tests are skipped with one
 * visible line, except under `CI=true`, where they are required and fail.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

export const executablePath = process.env.MANDATE_CHROMIUM ?? "/usr/bin/chromium"

/** Whether the browser tests can run here; says why not, once, when they cannot. */
export const available = (): boolean => {
  if (NodeFs.existsSync(executablePath)) return true
  if (process.env.CI === "true") {
    throw new Error(
      `Chromium is required under CI=true and was not found at ${executablePath} (apt-get install chromium)`
    )
  }
  console.warn(`Skipping the browser tests: no Chromium at ${executablePath} (apt-get install chromium to run them)`)
  return false
}

export interface Browser {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/** Chromium with a fresh profile, headless, without any network of its own (no updates, sync or QUIC). */
export const launch = async (): Promise<Browser> => {
  const profile = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ],
    viewport: { width: 1280, height: 900 }
  })
  // Conditions are awaited, never timed: these are generous bounds for a loaded machine, not expectations
  context.setDefaultTimeout(90_000)
  return {
    context,
    close: async () => {
      await context.close()
      NodeFs.rmSync(profile, { recursive: true, force: true })
    }
  }
}
