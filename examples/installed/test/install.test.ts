/**
 * The packages as users install them: `npm pack` of @mandate/core and @mandate/adapters (their `prepack` builds
 * `dist/`), installed with `effect` from the registry into an empty project outside the workspace, then the host
 * app in `src/main.ts` is type-checked there against the packed declarations and run with plain Node.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = Path.resolve(import.meta.dirname, "../../..")
// The test runner's NODE_OPTIONS (a relative --import) must not leak into the child processes
const env = { ...process.env, NODE_OPTIONS: "" }

const run = (command: string, args: ReadonlyArray<string>, cwd: string) => {
  const result = ChildProcess.spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 300_000 })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`)
  }
  return result.stdout
}

const pack = (pkg: string, into: string): string => {
  const out = run("npm", ["pack", "--json", "--pack-destination", into], Path.join(root, "packages", pkg))
  const [info] = JSON.parse(out.slice(out.indexOf("["))) as ReadonlyArray<{ readonly filename: string }>
  return Path.join(into, info!.filename)
}

/** The file paths an `exports` map points at (a null entry blocks a subpath and points at nothing). */
const exportTargets = (manifest: { readonly exports: unknown }): ReadonlyArray<string> => {
  const out: Array<string> = []
  const walk = (value: unknown): void => {
    if (typeof value === "string") out.push(value)
    else if (value !== null && typeof value === "object") for (const v of Object.values(value)) walk(v)
  }
  walk(manifest.exports)
  return out
}

describe("the packed packages", () => {
  it("install into an empty project, type-check and run a host app with plain Node", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mandate-installed-"))
    try {
      const core = pack("core", dir)
      const adapters = pack("adapters", dir)
      const effectVersion = JSON.parse(Fs.readFileSync(Path.join(root, "node_modules/effect/package.json"), "utf8"))
        .version as string
      Fs.writeFileSync(
        Path.join(dir, "package.json"),
        JSON.stringify({
          name: "host-app",
          private: true,
          type: "module",
          dependencies: {
            "@mandate/core": `file:${core}`,
            "@mandate/adapters": `file:${adapters}`,
            effect: effectVersion
          }
        })
      )
      run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"], dir)
      // Nothing but the built files and the sources they map to: no tests, no build info
      const files = Fs.readdirSync(Path.join(dir, "node_modules/@mandate/core"))
      assert.includeMembers(files, ["dist", "package.json", "README.md", "LICENSE"])
      assert.isFalse(Fs.existsSync(Path.join(dir, "node_modules/@mandate/core/dist/.tsbuildinfo")))

      // Every exports target is in the tarball: tsc alone would not notice a wrong "types" path, it falls back to
      // the declarations next to "default"
      for (const pkg of ["core", "adapters"]) {
        const installed = Path.join(dir, "node_modules/@mandate", pkg)
        for (const target of exportTargets(JSON.parse(Fs.readFileSync(Path.join(installed, "package.json"), "utf8")))) {
          // a wildcard target names a directory that must hold the matching files
          const file = target.includes("*") ? Path.dirname(target.slice(0, target.indexOf("*") + 1)) : target
          assert.isTrue(Fs.existsSync(Path.join(installed, file)), `@mandate/${pkg}: ${target} is not in the tarball`)
        }
      }

      Fs.copyFileSync(Path.join(import.meta.dirname, "../src/main.ts"), Path.join(dir, "main.ts"))
      Fs.writeFileSync(
        Path.join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "es2023",
            module: "nodenext",
            strict: true,
            exactOptionalPropertyTypes: true,
            noEmit: true,
            skipLibCheck: true,
            allowImportingTsExtensions: true,
            types: ["node"]
          },
          files: ["main.ts"]
        })
      )
      // Node's own types, as a user's project has them
      Fs.symlinkSync(Path.join(root, "node_modules/@types"), Path.join(dir, "node_modules/@types"))
      run(process.execPath, [Path.join(root, "node_modules/typescript/bin/tsc"), "-p", "."], dir)

      const result = JSON.parse(run(process.execPath, ["main.ts"], dir).trim().split("\n").at(-1)!)
      assert.strictEqual(result.state, "completed")
      assert.isAtLeast(result.entries, 10)
      assert.strictEqual(result.verified, result.entries)

      // The test-only tamper hook is not on the root export, only under /testing
      const hooks = run(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          'const root = await import("@mandate/core"); const testing = await import("@mandate/core/testing");' +
            'console.log(JSON.stringify({ root: "LedgerTamper" in root, testing: typeof testing.LedgerTamper }))'
        ],
        dir
      )
      assert.deepStrictEqual(JSON.parse(hooks.trim().split("\n").at(-1)!), { root: false, testing: "function" })

      // An optional peer that is missing is named in the error the user sees: by Node for a subpath that is
      // built on it, by the layer that needs it otherwise
      const missing = ChildProcess.spawnSync(process.execPath, ["-e", 'import("@mandate/adapters/postgres")'], {
        cwd: dir,
        env,
        encoding: "utf8"
      })
      assert.notStrictEqual(missing.status, 0)
      assert.include(missing.stderr, "@effect/sql-pg")
      Fs.writeFileSync(
        Path.join(dir, "peer.mjs"),
        [
          'import * as Qubic from "@mandate/adapters/qubic"',
          'import { Effect, Layer } from "effect"',
          "const built = Layer.build(Qubic.layerMockServer().pipe(Layer.provide(Qubic.layerChain())))",
          "const error = await Effect.runPromise(Effect.flip(Effect.scoped(built)))",
          "console.log(error.message)"
        ].join("\n")
      )
      assert.include(run(process.execPath, ["peer.mjs"], dir), "npm install @effect/platform-node")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 600_000)
})
