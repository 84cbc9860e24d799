/**
 * Builds the web console: `src/main.tsx` (Preact) bundled and minified by esbuild into `dist/app.js`, `src/app.css`
 * minified into `dist/app.css`, and `src/index.html` copied. `npm run build:console` runs it (so do `npm run
 * build` and `npm start`); the browser tests call `build(dir)` for a copy of their own.
 *
 * @since 0.1.0
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import * as NodeZlib from "node:zlib"
import * as esbuild from "esbuild"

const here = NodePath.dirname(NodeUrl.fileURLToPath(import.meta.url))

/** What was written: each file's size in bytes, raw and gzipped. */
export interface BuildReport {
  readonly dir: string
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number; readonly gzipBytes: number }>
}

/** Builds the console into `dir` (default `packages/server/console/dist`). */
export const build = async (dir = NodePath.join(here, "dist")): Promise<BuildReport> => {
  NodeFs.mkdirSync(dir, { recursive: true })
  await esbuild.build({
    entryPoints: [
      { in: NodePath.join(here, "src/main.tsx"), out: "app" },
      { in: NodePath.join(here, "src/app.css"), out: "app" }
    ],
    outdir: dir,
    bundle: true,
    minify: true,
    format: "esm",
    target: ["chrome120", "firefox121", "safari17"],
    // Workspace packages from source, as everywhere else in development
    conditions: ["mandate-source"],
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    logLevel: "warning"
  })
  NodeFs.copyFileSync(NodePath.join(here, "src/index.html"), NodePath.join(dir, "index.html"))
  const files = ["index.html", "app.js", "app.css"].map((name) => {
    const bytes = NodeFs.readFileSync(NodePath.join(dir, name))
    return { name, bytes: bytes.length, gzipBytes: NodeZlib.gzipSync(bytes, { level: 9 }).length }
  })
  return { dir, files }
}

if (process.argv[1] !== undefined && NodePath.resolve(process.argv[1]) === NodeUrl.fileURLToPath(import.meta.url)) {
  const report = await build()
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`
  for (const f of report.files)
    console.log(`console: ${f.name.padEnd(10)} ${kb(f.bytes).padStart(9)}  (gzip ${kb(f.gzipBytes)})`)
  const total = report.files.reduce((n, f) => n + f.gzipBytes, 0)
  console.log(`console: built into ${NodePath.relative(process.cwd(), report.dir)}, ${kb(total)} gzipped in all`)
}
