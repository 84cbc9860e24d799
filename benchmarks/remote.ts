/**
 * bench:remote — remote steps over HTTP: the reference server in its own process (`npm start`'s entry point) with
 * every step of the seed transfer (`check_balance → policy_check → onchain_action`) routed to pool `signers`
 * (`MANDATE_REMOTE_STEPS`, no in-process workers), and 1, 4 and 16 agents in this process, each a loop of
 * claim (one step) → complete → claim, pausing 10 ms after an empty claim. On memory and Postgres.
 *
 * Reported per run: tasks/s (BENCH_TASKS tasks started up front, until the last one's last step is settled; then
 * BENCH_SEQUENTIAL tasks one at a time, for the latency of an idle pipeline), the
 * claim → complete round trip of one step (`settle`), and the hand-off `complete → next step offered`: from the
 * answer settling step k of a task to the answer of the claim that hands out its step k+1 (the runtime enqueues the
 * next step in the settling transaction and wakes the pool's waiting claims; the rest is HTTP). With every task
 * started up front, a task's next step queues behind the others' steps: the hand-off then includes that wait.
 *
 *   npm run bench:remote                # BENCH_TASKS=300, BENCH_STORES=memory,postgres, BENCH_AGENTS=1,4,16
 */
import * as ChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as Net from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import pg from "pg"
import { autoApprove, latencyOf, pooled, sleep } from "./support.ts"

const TASKS = Number(process.env.BENCH_TASKS ?? 300)
const STORES = (process.env.BENCH_STORES ?? "memory,postgres").split(",")
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 30)
const AGENTS = (process.env.BENCH_AGENTS ?? "1,4,16").split(",").map(Number)
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const token = "bench.remote-token"
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
const walletA = `${"A".repeat(56)}FXIB`
const walletB = "B".repeat(60)

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-bench-remote-"))
const policyFile = NodePath.join(dir, "auto-approval.json")
NodeFs.writeFileSync(policyFile, JSON.stringify(autoApprove))
const root = NodePath.resolve(import.meta.dirname, "..")

/** What an agent returns for each step type (each decodes by the type's result schema). */
const resultOf = (type: string, params: any): unknown => {
  switch (type) {
    case "check_balance":
      return { wallet: params.wallet, balance: 1_000_000, sufficient: true }
    case "policy_check":
      return { passed: true, checks: ["distinct-wallets", "not-blocked"] }
    default:
      return { chain: "bench", txId: `tx-${params.amount}`, tick: 1, digest: "ab".repeat(32) }
  }
}

const post = async (base: string, path: string, body: unknown): Promise<any> => {
  const response = await fetch(`${base}${path}`, { method: "POST", headers, body: JSON.stringify(body) })
  const json = await response.json()
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(json)}`)
  return json
}

const dropSchema = async (schema: string) => {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
}

const startServer = async (store: string, schema: string, remote = true) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = ChildProcess.spawn(
    process.execPath,
    ["--conditions=mandate-source", "--import", "tsx", "packages/server/src/main.ts"],
    {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        MANDATE_STORE: store,
        DATABASE_URL,
        MANDATE_PG_SCHEMA: schema,
        MANDATE_PG_POOL_SIZE: "8",
        MANDATE_DATA_DIR: NodePath.join(dir, schema),
        MANDATE_API_KEYS: `${token}:submitter+agent+auditor`,
        MANDATE_POLICY_FILE: policyFile,
        MANDATE_ANCHOR: "memory",
        // The peer run: no remote steps, the same tasks run by the server's in-process workers
        MANDATE_REMOTE_STEPS: remote ? "check_balance:signers,policy_check:signers,onchain_action:signers" : "",
        MANDATE_WORKER_CONCURRENCY: "16",
        MANDATE_RATE_LIMIT: "1000000",
        MANDATE_RATE_WINDOW: "1 second",
        LOG_LEVEL: "Warn"
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
    await sleep(100)
  }
  return {
    base,
    stop: async () => {
      server.kill("SIGTERM")
      await new Promise((r) => server.once("exit", r))
    }
  }
}

interface Figures {
  readonly tasksPerSecond: number
  readonly settle: ReturnType<typeof latencyOf>
  readonly handoff: ReturnType<typeof latencyOf>
  readonly emptyClaims: number
}

/**
 * `agents` agents work `tasks` seed transfers: all started up front (`oneAtATime` false: throughput, each task's
 * next step queued behind the backlog), or one after the other, each started once the last is done (`true`: the
 * hand-off of an idle pipeline).
 */
const run = async (
  base: string,
  agents: number,
  round: number,
  tasks: number,
  oneAtATime: boolean
): Promise<Figures> => {
  const ids: Array<string> = []
  for (let i = 0; i < agents; i++) {
    const agent = await post(base, "/agents", { agent_id: `bench.r${round}-a${i}`, pool: "signers" })
    ids.push(agent.agent_id)
  }
  const settled = new Map<string, number>() // task id → when its latest step was settled
  const settle: Array<number> = []
  const handoff: Array<number> = []
  let finished = 0
  let emptyClaims = 0
  const began = performance.now()
  const start = (i: number) =>
    post(base, "/task/start", {
      task_type: "transfer_funds",
      parameters: { from: walletA, to: walletB, amount: 1 + i }
    })
  const starting = oneAtATime
    ? (async () => {
        for (let i = 0; i < tasks; i++) {
          await start(i)
          while (finished <= i) await sleep(1)
        }
      })()
    : pooled(tasks, 16, start)
  if (!oneAtATime) await starting
  await Promise.all(
    ids.map(async (workerId) => {
      while (finished < tasks) {
        const { steps } = await post(base, "/pools/signers/claim", {
          worker_id: workerId,
          max: 1,
          lease_ms: 30_000,
          wait_ms: 1_000
        })
        const claimedAt = performance.now()
        if (steps.length === 0) {
          emptyClaims++
          continue
        }
        const step = steps[0]
        const previous = settled.get(step.task_id)
        if (previous !== undefined) handoff.push(claimedAt - previous)
        const done = await post(base, `/steps/${step.lease_id}/complete`, {
          worker_id: workerId,
          result: resultOf(step.type, step.params)
        })
        const at = performance.now()
        if (done.outcome !== "succeeded") throw new Error(`step ${step.step_id}: ${JSON.stringify(done)}`)
        settle.push(at - claimedAt)
        settled.set(step.task_id, at)
        if (step.step_id === "onchain_action") finished++
      }
    })
  )
  await starting
  const seconds = (performance.now() - began) / 1000
  return { tasksPerSecond: tasks / seconds, settle: latencyOf(settle), handoff: latencyOf(handoff), emptyClaims }
}

/** The peer: the same tasks run by the server's own in-process workers (16), tasks/s until all are completed. */
const inProcess = async (base: string): Promise<number> => {
  const completed = async () => {
    const metrics = await fetch(`${base}/metrics`, { headers }).then((r) => r.text())
    return Number(/mandate_tasks\{state="completed"\} (\d+)/.exec(metrics)?.[1] ?? 0)
  }
  const before = await completed()
  const began = performance.now()
  await pooled(TASKS, 16, (i) =>
    post(base, "/task/start", {
      task_type: "transfer_funds",
      parameters: { from: walletA, to: walletB, amount: 1 + i }
    })
  )
  while ((await completed()) - before < TASKS) await sleep(20)
  return TASKS / ((performance.now() - began) / 1000)
}

console.log(
  `bench:remote — ${TASKS} seed transfers per run, 3 remote steps each, agents ${AGENTS.join("/")} over HTTP, Node ${process.version}, ${NodeOs.cpus().length} CPUs, load ${NodeOs.loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`
)
console.log(
  "| store | agents, load | tasks/s | settle p50 / p95 / p99 ms | hand-off p50 / p95 / p99 ms | empty claims |"
)
console.log("| --- | ---: | ---: | ---: | ---: | ---: |")
let round = 0
for (const store of STORES) {
  const peerSchema = `bench_remote_steps_peer_${process.pid}`
  const peer = await startServer(store, peerSchema, false)
  try {
    await inProcess(peer.base) // warm-up
    console.log(`| ${store} | in-process workers (peer) | ${(await inProcess(peer.base)).toFixed(1)} | | | |`)
  } finally {
    await peer.stop()
    if (store === "postgres") await dropSchema(peerSchema)
  }
  const schema = `bench_remote_steps_${process.pid}`
  const server = await startServer(store, schema)
  try {
    // Warm-up: JIT and the first tasks through the pipeline
    await run(server.base, 4, round++, Math.min(TASKS, 100), false)
    const ms = (l: ReturnType<typeof latencyOf>) => `${l.p50.toFixed(1)} / ${l.p95.toFixed(1)} / ${l.p99.toFixed(1)}`
    for (const agents of AGENTS) {
      const f = await run(server.base, agents, round++, TASKS, false)
      console.log(
        `| ${store} | ${agents}, backlog | ${f.tasksPerSecond.toFixed(1)} | ${ms(f.settle)} | ${ms(f.handoff)} | ${f.emptyClaims} |`
      )
    }
    for (const agents of AGENTS) {
      const f = await run(server.base, agents, round++, SEQUENTIAL, true)
      console.log(
        `| ${store} | ${agents}, one task at a time | ${f.tasksPerSecond.toFixed(1)} | ${ms(f.settle)} | ${ms(f.handoff)} | ${f.emptyClaims} |`
      )
    }
  } finally {
    await server.stop()
    if (store === "postgres") await dropSchema(schema)
  }
}
NodeFs.rmSync(dir, { recursive: true })
