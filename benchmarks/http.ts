/**
 * bench:http — the reference server under load: autocannon against `POST /task/start` and `GET /task/{id}`, 50
 * connections for 20 s each (set BENCH_SECONDS / BENCH_CONNECTIONS to change), on memory stores with an
 * auto-approval policy, so every started task also runs to completion in the background (check_balance →
 * policy_check → onchain_action on the in-process chain). The server runs in its own process (`npm start`'s
 * entry point), the load generator in this one; each route's line also gives the server process's CPU per
 * request (user + system, from /proc, Linux only), which a shared machine's load does not change the way it
 * changes req/s. BENCH_PORT picks the server's port (default: a free one). BENCH_PROBE=1 preloads `http-probe.ts`
 * into the server, which prints its event-loop delay and GC pauses per route; BENCH_SERVER_ARGS adds Node flags
 * to the server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`); BENCH_BUILT=1 runs the built server (`npm run build`).
 * BENCH_STORE=postgres runs the server on Postgres (`DATABASE_URL`, default postgres://root@127.0.0.1:5432/test) in
 * the schema BENCH_PG_SCHEMA (default `bench_http`), dropped before and after the run (Postgres's own CPU is not
 * counted in the server's).
 *
 *   npm run bench:http
 *   BENCH_STORE=postgres npm run bench:http
 */
import * as ChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as Net from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import autocannon from "autocannon"
import pg from "pg"
import { autoApprove } from "./support.ts"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const token = "bench.submitter-token"

const body = JSON.stringify({
  task_type: "transfer_funds",
  parameters: { from: `${"A".repeat(56)}FXIB`, to: "B".repeat(60), amount: 25 }
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const STORE = process.env.BENCH_STORE ?? "memory"
if (STORE !== "memory" && STORE !== "postgres") throw new Error(`BENCH_STORE: memory or postgres, not ${STORE}`)
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const PG_SCHEMA = process.env.BENCH_PG_SCHEMA ?? "bench_http"
const dropSchema = async () => {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${PG_SCHEMA}" CASCADE`)
  await client.end()
}
if (STORE === "postgres") await dropSchema()

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-bench-"))
const policyFile = NodePath.join(dir, "auto-approval.json")
NodeFs.writeFileSync(policyFile, JSON.stringify(autoApprove))
const port = process.env.BENCH_PORT === undefined ? await freePort() : Number(process.env.BENCH_PORT)
const base = `http://127.0.0.1:${port}`
const root = NodePath.resolve(import.meta.dirname, "..")
const server = ChildProcess.spawn(
  process.execPath,
  [
    ...(process.env.BENCH_SERVER_ARGS ?? "").split(" ").filter((a) => a.length > 0),
    "--import",
    "tsx",
    ...(process.env.BENCH_PROBE === "1" ? ["--import", "./benchmarks/http-probe.ts"] : []),
    // BENCH_BUILT=1: the built server (`npm run build` first), as production runs it and with readable profiles
    ...(process.env.BENCH_BUILT === "1"
      ? ["packages/server/dist/main.js"]
      : ["--conditions=mandate-source", "packages/server/src/main.ts"])
  ],
  {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      ...(STORE === "postgres"
        ? {
            MANDATE_STORE: "postgres",
            DATABASE_URL,
            MANDATE_PG_SCHEMA: PG_SCHEMA,
            MANDATE_DATA_DIR: NodePath.join(dir, "data")
          }
        : {}),
      MANDATE_API_KEYS: `${token}:submitter+auditor`,
      MANDATE_POLICY_FILE: policyFile,
      MANDATE_ANCHOR: "memory",
      MANDATE_RATE_LIMIT: "1000000",
      MANDATE_RATE_WINDOW: "1 second",
      LOG_LEVEL: "Warn",
      // BENCH_WORKERS=0: an API-only process (tasks are queued for workers elsewhere, not run here)
      MANDATE_WORKER_CONCURRENCY: process.env.BENCH_WORKERS ?? "16"
    },
    stdio: ["ignore", "pipe", "inherit"]
  }
)
let output = ""
server.stdout.on("data", (chunk) => {
  output += chunk
})
const started = Date.now()
while (
  !(await fetch(`${base}/health`)
    .then((r) => r.ok)
    .catch(() => false))
) {
  if (server.exitCode !== null || Date.now() - started > 60_000) throw new Error(`server did not start: ${output}`)
  await new Promise((r) => setTimeout(r, 100))
}

const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
const start = async () => {
  const response = await fetch(`${base}/task/start`, { method: "POST", headers, body })
  return ((await response.json()) as { task_id: string }).task_id
}

// The server process's CPU time so far, in ms (utime + stime in clock ticks of 10 ms), where /proc has it
const serverCpuMs = (): number | undefined => {
  try {
    const fields = NodeFs.readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return undefined
  }
}

const load = (title: string, options: Partial<autocannon.Options>) => {
  const cpuBefore = serverCpuMs()
  if (process.env.BENCH_PROBE === "1") server.kill("SIGHUP")
  return new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({ url: base, connections: CONNECTIONS, duration: SECONDS, headers, ...options }, (error, result) =>
      error ? reject(error) : resolve(result)
    )
  }).then((result) => {
    const ok = result.requests.total - result.non2xx - result.errors
    const cpuAfter = serverCpuMs()
    const cpu =
      cpuBefore === undefined || cpuAfter === undefined || result.requests.total === 0
        ? ""
        : `  server CPU ${((cpuAfter - cpuBefore) / result.requests.total).toFixed(2)} ms/req`
    console.log(
      `${title.padEnd(24)} ${result.requests.average.toFixed(0).padStart(7)} req/s  p50 ${String(result.latency.p50).padStart(4)} ms  p99 ${String(result.latency.p99).padStart(4)} ms${cpu}  (${ok} ok, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts)`
    )
    // The probe's line for this phase (printed by the server on its stderr), then it counts afresh
    if (process.env.BENCH_PROBE === "1") server.kill("SIGUSR2")
    return result
  })
}

console.log(
  `bench:http — ${STORE}, ${CONNECTIONS} connections, ${SECONDS} s per route, worker concurrency ${process.env.BENCH_WORKERS ?? "16"}, Node ${process.version}, load average ${NodeOs.loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`
)
// Warm up (JIT, first tasks through the pipeline)
for (let i = 0; i < 200; i++) await start()
await load("warm-up", { url: `${base}/task/start`, method: "POST", body, duration: 3 })

await load("POST /task/start", { url: `${base}/task/start`, method: "POST", body })

const ids: Array<string> = []
for (let i = 0; i < 1_000; i++) ids.push(await start())
let next = 0
await load("GET /task/{id}", {
  requests: [
    {
      method: "GET",
      setupRequest: (request) => ({ ...request, path: `/task/${ids[next++ % ids.length]}` })
    }
  ]
})

const tasks = await fetch(`${base}/metrics`, { headers }).then((r) => r.text())
const completed = /mandate_tasks\{state="completed"\} (\d+)/.exec(tasks)?.[1]
const running = /mandate_tasks\{state="running"\} (\d+)/.exec(tasks)?.[1]
console.log(`tasks completed in the background: ${completed ?? "?"} (still running: ${running ?? "?"})`)
server.kill("SIGTERM")
await new Promise((r) => server.once("exit", r))
NodeFs.rmSync(dir, { recursive: true })
if (STORE === "postgres") await dropSchema()
