import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const root = NodePath.resolve(import.meta.dirname, "../../..")
const token = "alice.shutdown-test-1"

const freePort = () =>
  Effect.promise(
    () =>
      new Promise<number>((resolve) => {
        const server = Net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as Net.AddressInfo).port
          server.close(() => resolve(port))
        })
      })
  )

/**
 * Waits until `condition` holds, checking every 20 ms. No deadline of its own: the test's timeout is the only
 * limit, far above any run, so a loaded machine is slow, not wrong.
 */
const until = (condition: () => boolean | Promise<boolean>) =>
  Effect.promise(async () => {
    while (!(await condition())) await new Promise((r) => setTimeout(r, 20))
  })

/** `npm start`'s server in a process of its own on a free port, once it says it listens. */
const startServer = (shutdownGrace: string) =>
  Effect.gen(function* () {
    const port = yield* freePort()
    const child = ChildProcess.spawn(
      process.execPath,
      ["--conditions=mandate-source", "--import", "tsx", "packages/server/src/main.ts"],
      {
        cwd: root,
        env: {
          ...process.env,
          PORT: String(port),
          MANDATE_API_KEYS: `${token}:submitter+auditor`,
          MANDATE_SHUTDOWN_GRACE: shutdownGrace,
          MANDATE_ANCHOR: "none",
          NODE_OPTIONS: ""
        },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let stdout = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stdout += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    yield* until(() => {
      if (child.exitCode !== null) throw new Error(`server exited: ${stdout}`)
      return stdout.includes("Mandate server listening")
    })
    return { port, child, output: () => stdout, exited }
  })

describe("graceful shutdown", () => {
  it.live.each([
    { name: "a plain request", expect: "" },
    // Node hands such a request to a "checkContinue" listener instead of "request": the drain must count it too
    { name: "a request sent with Expect: 100-continue", expect: "Expect: 100-continue\r\n" }
  ])(
    "SIGTERM: stops accepting, lets the in-flight request finish ($name), exits 0",
    ({ expect }) =>
      Effect.gen(function* () {
        // A grace far longer than the test may run: the in-flight request is never cut, however slow the machine
        const { port, child, output, exited } = yield* startServer("1 hour")

        // A request in flight: its headers and part of its body sent, the rest to come after the signal. A later
        // request, on a connection of its own, answered before the signal: the server has read the earlier one's
        // headers by then (ordering, not a wait), and the drain's log line below confirms it counted it
        const body = JSON.stringify({ task_type: "monitoring", parameters: { wallet: "A".repeat(60) } })
        const inFlight = Net.connect(port, "127.0.0.1")
        let received = ""
        const answered = new Promise<string>((resolve) => {
          inFlight.on("data", (chunk) => {
            received += chunk
          })
          inFlight.on("close", () => resolve(received))
          inFlight.on("error", () => resolve(received))
        })
        yield* Effect.promise(() => new Promise((resolve) => inFlight.once("connect", resolve)))
        yield* Effect.promise(
          () =>
            new Promise((resolve) =>
              inFlight.write(
                `POST /task/start HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${expect}` +
                  `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
                  `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`,
                resolve
              )
            )
        )
        const later = yield* Effect.promise(() =>
          fetch(`http://127.0.0.1:${port}/health`, { headers: { connection: "close" } }).then((r) => r.status)
        )
        assert.strictEqual(later, 200)

        child.kill("SIGTERM")
        // New connections are refused once shutdown began, while the request above is still unanswered (it cannot
        // be answered before its body arrives): ordering, not timing
        yield* until(
          () =>
            new Promise<boolean>((resolve) => {
              const socket = Net.connect(port, "127.0.0.1")
              socket.on("connect", () => {
                socket.destroy()
                resolve(false)
              })
              socket.on("error", () => resolve(true))
            })
        )
        assert.notMatch(received, /HTTP\/1\.1 200 /, "answered before its body was sent")
        // The in-flight request completes
        inFlight.write(body.slice(20))
        // (after an interim "100 Continue" when the request asked for one)
        const reply = (yield* Effect.promise(() => answered)).replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, "")
        assert.match(reply, /^HTTP\/1\.1 200 /)
        assert.match(reply, /"task_id":"task_/)

        const code = yield* Effect.promise(() => exited)
        assert.strictEqual(code, 0, output())
        assert.include(output(), "Mandate server stopped")
        const lines = output()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l))
        const draining = lines.find((l) => l.message === "Mandate server draining")
        assert.isAtLeast(draining.annotations.in_flight, 1, "the drain did not count the request in flight")
        const access = lines.find((l) => l.message === "request" && l.annotations.path === "/task/start")
        assert.strictEqual(access.annotations.status, 200)
        assert.match(access.annotations.request_id, /^[0-9a-f-]{36}$/)
        assert.strictEqual(access.annotations.principal, "alice")
      }),
    300_000
  )

  it.live(
    "SIGTERM ends open event streams cleanly instead of waiting out the grace period",
    () =>
      Effect.gen(function* () {
        // A grace far longer than the test may run: the process exits at all only if the open stream ends on the
        // signal instead of holding the shutdown (no elapsed-time bound decides it)
        const { port, child, output, exited } = yield* startServer("1 hour")

        // A task that waits for an approver, so its event stream stays open
        const base = `http://127.0.0.1:${port}`
        const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
        const taskId = yield* Effect.promise(async () => {
          const response = await fetch(`${base}/task/start`, {
            method: "POST",
            headers,
            body: JSON.stringify({
              task_type: "transfer_funds",
              parameters: { from: "A".repeat(60), to: "B".repeat(60), amount: 2_500 }
            })
          })
          const started = (await response.json()) as { task_id: string }
          for (;;) {
            const status = (await (await fetch(`${base}/task/${started.task_id}/status`, { headers })).json()) as {
              status: string
            }
            if (status.status === "waiting_approval") return started.task_id
            await new Promise((r) => setTimeout(r, 50))
          }
        })

        const stream = Net.connect(port, "127.0.0.1")
        let received = ""
        const ended = new Promise<string>((resolve) => {
          stream.on("data", (chunk) => {
            received += chunk
          })
          stream.on("close", () => resolve(received))
          stream.on("error", () => resolve(received))
        })
        yield* Effect.promise(() => new Promise((resolve) => stream.once("connect", resolve)))
        stream.write(
          `GET /task/${taskId}/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
            `Authorization: Bearer ${token}\r\n\r\n`
        )
        yield* until(() => received.includes("task.snapshot"))

        child.kill("SIGTERM")
        const body = yield* Effect.promise(() => ended)
        // A clean end: the last chunk of a chunked response, not a cut connection
        assert.match(body, /^HTTP\/1\.1 200 /)
        assert.match(body, /0\r\n\r\n$/)
        const code = yield* Effect.promise(() => exited)
        assert.strictEqual(code, 0, output())
        assert.notInclude(output(), "requests still running after the grace period are cut")
      }),
    300_000
  )
})
