/**
 * The README's worked example, run as it is written: the code block under "A worked example" is copied to a
 * file beside this one and run in its own Node process, so the README cannot drift from what works.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = Path.resolve(import.meta.dirname, "../../..")

const workedExample = (): string => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("## A worked example"))
  const match = /```ts\n([\s\S]*?)```/.exec(section)
  if (match === null) throw new Error("README.md has no ts block under 'A worked example'")
  return match[1]!
}

describe("README", () => {
  it("the worked example runs to completion and every entry of the trail verifies", () => {
    const file = Path.join(import.meta.dirname, `.readme-example-${process.pid}.ts`)
    Fs.writeFileSync(file, workedExample())
    try {
      const run = ChildProcess.spawnSync(
        process.execPath,
        ["--conditions=mandate-source", "--import", "tsx", file],
        // NODE_OPTIONS of the test runner (a relative --import) would not resolve from there
        { cwd: Path.dirname(file), encoding: "utf8", timeout: 120_000, env: { ...process.env, NODE_OPTIONS: "" } }
      )
      assert.strictEqual(run.status, 0, run.stderr)
      const lines = run.stdout.trim().split("\n")
      assert.isAtLeast(lines.length, 10)
      assert.isTrue(
        lines.every((line) => line.endsWith("verified")),
        run.stdout
      )
      assert.match(lines.at(-1)!, /task\.completed/)
      assert.isTrue(lines.some((line) => line.includes("approval.granted")))
    } finally {
      Fs.rmSync(file, { force: true })
    }
  }, 180_000)
})
