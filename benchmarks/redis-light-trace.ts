/**
 * A probe of the light-load path of the Redis queue (the last phase of `bench:redis`: an idle worker at concurrency
 * 10, one enqueue every 10 ms): per job, the time from the enqueue call to each command sent by the layer's
 * client, each write and read on its sockets (`net.Socket` uncork and data events, by local port: the layer's
 * connection and the wake-up reader's), the handler's start, and the marks of `globalThis.__mark(name)` that a
 * session may add to the code it traces (none are left in the sources). Then the client's CPU and Redis'
 * (`INFO commandstats`, reset after the warm-up) per job.
 *
 * Run: `npm run bench:redis-light-trace` (env: REDIS_URL, default redis://127.0.0.1:6379; N jobs, default 500;
 * INTERVAL ms, default 10; WARM jobs drained first, default 20,000; SHOW k prints every k-th job's events).
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import net from "node:net"
import { NodeRedis } from "@effect/platform-node"
import { layerClient, layerQueue, makeConfig } from "@mandate/adapters/redis"
import { Queue, Worker } from "@mandate/core"
import { Deferred, Effect, Layer, ManagedRuntime } from "effect"
import { claimJobs, enqueueJobs, nextDue } from "../packages/adapters/src/redis/queueScripts.ts"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const port = Number(new URL(url).port)
const n = Number(process.env.N ?? 500)
const prefix = `${process.env.BENCH_PREFIX ?? "bench:"}trace:${crypto.randomUUID().slice(0, 8)}:`

const sha = (lua: string) => createHash("sha1").update(lua).digest("hex")
const names = new Map([
  [sha(enqueueJobs.lua), "enq"],
  [sha(claimJobs.lua), "claim"],
  [sha(nextDue.lua), "due"]
])
type Ev = { t: number; what: string }
const events: Array<Ev> = []
const mark = (what: string) => events.push({ t: performance.now(), what })
;(globalThis as any).__mark = mark

// socket hooks: the actual write happens at uncork (node-redis corks per write)
const sockId = (s: net.Socket) => (s.remotePort === port ? s.localPort : undefined)
const origUncork = net.Socket.prototype.uncork
net.Socket.prototype.uncork = function (this: net.Socket) {
  const id = sockId(this)
  if (id !== undefined) mark(`write:${id}:${this.writableLength}`)
  return (origUncork as any).call(this)
}
const origEmit = net.Socket.prototype.emit
net.Socket.prototype.emit = function (this: net.Socket, event: string, ...args: Array<any>) {
  if (event === "data") {
    const id = sockId(this)
    if (id !== undefined) {
      mark(`read:${id}:${args[0].length}`)
      const r = (origEmit as any).call(this, event, ...args)
      mark(`readend:${id}`)
      queueMicrotask(() => mark(`readmicro:${id}`))
      return r
    }
  }
  return (origEmit as any).call(this, event, ...args)
} as any

const client = layerClient(makeConfig(url, { prefix, clientName: "trace" }))
const rt = ManagedRuntime.make(layerQueue({ prefix }).pipe(Layer.provideMerge(client)))

const main = Effect.gen(function* () {
  const node = yield* NodeRedis.NodeRedis
  const c = node.client as any
  const orig = c.sendCommand.bind(c)
  c.sendCommand = (args: Array<string>, opts: unknown) => {
    mark(`send:${args[0] === "EVALSHA" ? (names.get(args[1]!) ?? args[1]!.slice(0, 6)) : args[0]}`)
    return orig(args, opts)
  }
  const samples: Array<number> = []
  const warm = Number(process.env.WARM ?? 20000)
  let warmed = 0
  const warmDone = yield* Deferred.make<void>()
  const done = yield* Deferred.make<void>()
  const t0s: Array<number> = []
  yield* Worker.run({
    queues: ["light"],
    concurrency: 10,
    handler: (job) =>
      Effect.sync(() => {
        if ((job.payload as { w?: number }).w !== undefined) {
          if (++warmed === warm) Deferred.doneUnsafe(warmDone, Effect.void)
          return
        }
        mark("handler")
        samples.push(performance.now() - (job.payload as { t: number }).t)
        if (samples.length === n) Deferred.doneUnsafe(done, Effect.void)
      })
  })
  const queue = yield* Queue
  if (warm > 0) {
    yield* Effect.forEach(
      Array.from({ length: warm }, (_, i) => i),
      (i) => queue.enqueue({ queue: "light", payload: { w: i } }),
      { concurrency: 50, discard: true }
    )
    yield* Deferred.await(warmDone)
  }
  yield* Effect.sleep(500)
  yield* Effect.promise(() => node.client.sendCommand(["CONFIG", "RESETSTAT"]))
  const redisCpu = (info: unknown) => {
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(String(info))?.[1] ?? Number.NaN)
    return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6
  }
  const redisBefore = redisCpu(yield* Effect.promise(() => node.client.sendCommand(["INFO", "cpu"])))
  const cpuBefore = process.cpuUsage()
  events.length = 0
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    t0s.push(t)
    mark("call")
    yield* queue.enqueue({ queue: "light", payload: { t } })
    mark("enq-returned")
    yield* Effect.sleep(Number(process.env.INTERVAL ?? 10))
  }
  yield* Deferred.await(done)
  const cpu = process.cpuUsage(cpuBefore)
  const redisAfter = redisCpu(yield* Effect.promise(() => node.client.sendCommand(["INFO", "cpu"])))
  const stats = String(yield* Effect.promise(() => node.client.sendCommand(["INFO", "commandstats"])))
  let redisUs = 0
  for (const m of stats.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g))
    if (m[1] !== "info" && m[1] !== "config") redisUs += Number(m[3])
  console.log(
    `per job: client CPU ${((cpu.user + cpu.system) / n).toFixed(0)} µs, Redis CPU ${((redisAfter - redisBefore) / n).toFixed(0)} µs (in commands ${(redisUs / n).toFixed(0)} µs)`
  )
  console.log(
    stats
      .split("\n")
      .filter((l) => /cmdstat_(evalsha|xread|eval)\b/.test(l))
      .join("\n")
  )
  // the probe's keys go with it
  let cursor = "0"
  do {
    const [next, keys] = (yield* Effect.promise(() =>
      node.client.sendCommand(["SCAN", cursor, "MATCH", `${prefix}*`, "COUNT", "1000"])
    )) as unknown as [string, Array<string>]
    if (keys.length > 0) yield* Effect.promise(() => node.client.sendCommand(["UNLINK", ...keys]))
    cursor = next
  } while (cursor !== "0")
  return { samples, t0s }
}).pipe(Effect.scoped)

const { samples, t0s } = await rt.runPromise(main)
await rt.dispose()

const pct = (xs: Array<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!
}
const f = (x: number) => x.toFixed(3)
console.log(`latency p50/p95/p99 ${f(pct(samples, 0.5))} / ${f(pct(samples, 0.95))} / ${f(pct(samples, 0.99))}`)
// per job: first occurrence of each event kind after its call
const perKind = new Map<string, Array<number>>()
const seqs = new Map<string, number>()
for (let i = 0; i < t0s.length; i++) {
  const t0 = t0s[i]!
  const end = t0s[i + 1] ?? Number.POSITIVE_INFINITY
  const seen = new Map<string, number>()
  const seq: Array<string> = []
  for (const e of events) {
    if (e.t < t0 || e.t >= end) continue
    const kind0 = e.what.replace(/:\d+$/, "")
    let kind = kind0
    let k = 2
    while (seen.has(kind)) kind = `${kind0}#${k++}`
    seen.set(kind, e.t - t0)
    if (seq.length < 14) seq.push(`${kind}@${f(e.t - t0)}`)
  }
  for (const [kind, dt] of seen) {
    if (!perKind.has(kind)) perKind.set(kind, [])
    perKind.get(kind)!.push(dt)
  }
  const key = seq.map((s) => s.replace(/@.*/, "")).join(" ")
  seqs.set(key, (seqs.get(key) ?? 0) + 1)
  if (process.env.SHOW && i % Number(process.env.SHOW) === 0) console.log(seq.join("  "))
}
const rows = [...perKind.entries()].sort((a, b) => pct(a[1], 0.5) - pct(b[1], 0.5))
for (const [kind, xs] of rows) {
  if (xs.length < n / 10) continue
  console.log(
    `${kind.padEnd(28)} n=${String(xs.length).padStart(4)} ${f(pct(xs, 0.5))} / ${f(pct(xs, 0.95))} / ${f(pct(xs, 0.99))}`
  )
}
for (const [k, v] of [...seqs.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(v, k)
process.exit(0)
