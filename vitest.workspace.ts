import { project } from "./vitest.shared.ts"

/** The test projects (run one with `npx vitest run --project core`). */
export default [
  project("core", "packages/core"),
  project("adapters", "packages/adapters", undefined, {
    globalSetup: ["test/utils/postgresSetup.ts", "test/utils/redisSetup.ts"]
  }),
  // the server's Postgres and Redis runs use the adapters' test support, probed by the same global setup
  project("server", "packages/server", undefined, {
    globalSetup: ["../adapters/test/utils/postgresSetup.ts", "../adapters/test/utils/redisSetup.ts"]
  }),
  project("examples", "examples", ["*/test/**/*.test.ts"])
]
