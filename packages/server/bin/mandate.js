#!/usr/bin/env node
// The `mandate` command. An installed (built) package runs dist/cli/main.js; a source checkout without a build,
// or MANDATE_CLI_SOURCE=1, runs the TypeScript source through tsx with the `mandate-source` condition.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const built = new URL("../dist/cli/main.js", import.meta.url)
if (process.env.MANDATE_CLI_SOURCE !== "1" && existsSync(built)) {
  await import(built.href)
} else {
  const source = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))
  const child = spawn(
    process.execPath,
    ["--conditions=mandate-source", "--import", import.meta.resolve("tsx"), source, ...process.argv.slice(2)],
    { stdio: "inherit" }
  )
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal))
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 0 : 1)))
}
