import { assert, layer } from "@effect/vitest"
import { Anchor, AnchorError } from "@mandate/core"
import { Effect, Layer } from "effect"
import * as TestServer from "./utils/TestServer.ts"

// A chain that cannot be reached: every call fails
const unreachableChain = Layer.succeed(
  Anchor,
  Anchor.of({
    publish: () => Effect.fail(new AnchorError({ operation: "publish", message: "connection refused" })),
    lookup: () => Effect.fail(new AnchorError({ operation: "lookup", message: "connection refused" })),
    getTx: () => Effect.fail(new AnchorError({ operation: "getTx", message: "connection refused" }))
  })
)

layer(TestServer.layer(TestServer.memoryServices({ anchor: unreachableChain })), { excludeTestServices: true })(
  "a server whose chain is down",
  (it) => {
    it.effect("is alive but not ready: /ready answers 503 naming the failed check", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* TestServer.call("GET", "/health")).status, 200)
        const ready = yield* TestServer.call("GET", "/ready")
        assert.strictEqual(ready.status, 503, ready.text)
        assert.strictEqual(ready.body.status, "unavailable")
        const anchor = ready.body.checks.find((c: { name: string }) => c.name === "anchor")
        assert.isFalse(anchor.ok)
        assert.match(anchor.error, /connection refused/)
        assert.isTrue(
          ready.body.checks.filter((c: { name: string }) => c.name !== "anchor").every((c: { ok: boolean }) => c.ok)
        )
      })
    )

    it.effect("a chain failure is a 503 with a fixed message and Retry-After, not a 500 or the driver's text", () =>
      Effect.gen(function* () {
        const write = yield* TestServer.call("POST", "/write", {
          token: TestServer.tokens.root,
          body: { hash: "ab".repeat(32) }
        })
        assert.strictEqual(write.status, 503, write.text)
        assert.strictEqual(write.body.error, "unavailable")
        assert.strictEqual(
          write.body.message,
          "The anchoring chain could not complete the request; retry later (AnchorError)"
        )
        assert.notMatch(write.text, /connection refused/)
        assert.strictEqual(write.headers["retry-after"], "1")
        const events = yield* TestServer.call("GET", "/task/task_nope/events", { token: TestServer.tokens.carol })
        assert.strictEqual(events.status, 404)
      })
    )
  }
)
