/**
 * The web console: its page at `/` and its built assets under `/console/` (`packages/server/console`, built by
 * `npm run build:console`; no CDN, nothing fetched at run time), and, in development mode only, the development
 * tokens for its sign-in (`GET /console/dev-tokens`). The console is a client of the API like any other: it
 * holds no authority, and every decision stays with the API's handlers and core.
 *
 * @since 0.1.0
 */
import * as NodeFs from "node:fs"
import * as NodeUrl from "node:url"
import { Effect, type FileSystem, Layer, Option, type Path, Redacted } from "effect"
import { type HttpPlatform, HttpRouter, HttpServerRequest, HttpServerResponse, HttpStaticServer } from "effect/http"
import type { ApiKey } from "./Auth.ts"

/**
 * Where `npm run build:console` writes the console (`packages/server/console/dist`, from `src/` and `dist/` alike).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultDir = NodeUrl.fileURLToPath(new URL("../../console/dist", import.meta.url))

/**
 * @category options
 * @since 0.1.0
 */
export interface ConsoleOptions {
  /** The built console (default `defaultDir`). */
  readonly dir?: string | undefined
  /** Development mode's tokens, handed to the console's sign-in on the server's own machine only. */
  readonly devTokens?: ReadonlyArray<ApiKey> | undefined
}

// The page loads only its own script and stylesheet and talks only to this origin
const pageHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache"
}

const notBuilt = (dir: string) =>
  HttpServerResponse.text(
    `The web console is not built (no ${dir}/index.html). Run \`npm run build:console\` (\`npm start\` does it).\n`,
    { status: 503, headers: { "retry-after": "5" } }
  )

/**
 * The console's routes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: ConsoleOptions
): Layer.Layer<never, never, HttpRouter.HttpRouter | FileSystem.FileSystem | Path.Path | HttpPlatform.HttpPlatform> => {
  const dir = options?.dir ?? defaultDir
  const page = HttpRouter.add(
    "GET",
    "/",
    Effect.sync(() => {
      // Read per request: a rebuilt console is served without a restart, and a missing build says so
      const html = Option.liftThrowable(() => NodeFs.readFileSync(`${dir}/index.html`, "utf8"))()
      return Option.isSome(html)
        ? HttpServerResponse.text(html.value, { contentType: "text/html; charset=utf-8", headers: pageHeaders })
        : notBuilt(dir)
    })
  )
  // Resolves the directory only: a missing build is a 404 per request, not a failure to start
  const assets = HttpStaticServer.layer({ root: dir, prefix: "/console", cacheControl: "no-cache", index: undefined })
  const devTokens = options?.devTokens === undefined ? Layer.empty : layerDevTokens(options.devTokens)
  return Layer.mergeAll(page, assets, devTokens).pipe(Layer.orDie)
}

const loopbackHosts = new Set(["localhost", "127.0.0.1", "[::1]"])
const isLoopbackAddress = (address: string) =>
  address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.")

/**
 * Whether a request comes from the server's own machine, addressed to it by a loopback name, and not from a page of
 * another origin: the TCP peer is a loopback address, the `Host` header names a loopback host (a DNS-rebinding page
 * cannot set that), and an `Origin` header, if sent, is this very host.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isLocalRequest = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const peer = Option.getOrUndefined(request.remoteAddress)
  const host = request.headers.host ?? ""
  const hostname = host.replace(/:\d+$/, "").toLowerCase()
  const origin = request.headers.origin
  return (
    peer !== undefined &&
    isLoopbackAddress(peer) &&
    loopbackHosts.has(hostname) &&
    (origin === undefined || origin === `http://${host}`)
  )
}

/**
 * `GET /console/dev-tokens`: development mode's tokens (one principal per role) for the console's sign-in. Served
 * only to requests from the server's own machine (`isLocalRequest`), never cached: whoever runs the server can
 * read the same tokens in its terminal and in the tokens file, and nobody else may get them. (Any local user or
 * process can call it, where the tokens file is readable by its owner only: development mode is for one person's
 * machine, as its banner says.)
 *
 * @category layers
 * @since 0.1.0
 */
export const layerDevTokens = (keys: ReadonlyArray<ApiKey>): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.add(
    "GET",
    "/console/dev-tokens",
    Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
      isLocalRequest(request)
        ? HttpServerResponse.jsonUnsafe(
            {
              principals: keys.map((k) => ({
                id: k.principal.id,
                roles: k.principal.roles,
                token: Redacted.value(k.token)
              }))
            },
            { headers: { "cache-control": "no-store" } }
          )
        : HttpServerResponse.jsonUnsafe(
            {
              error: "forbidden",
              message:
                "Development tokens are handed only to the server's own machine (http://localhost); paste a token instead",
              principal: ""
            },
            { status: 403, headers: { "cache-control": "no-store" } }
          )
    )
  )
