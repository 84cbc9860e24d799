/** Run: npm start (from the repository root), or npm start -w @mandate/example-embed. */
import { Effect } from "effect"
import { demo, layer } from "./app.ts"

Effect.runPromise(demo((line) => console.log(line)).pipe(Effect.provide(layer)))
