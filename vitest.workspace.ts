import { project } from "./vitest.shared.ts"

/** The test projects (run one with `npx vitest run --project core`). */
export default [
  project("core", "packages/core"),
  project("adapters", "packages/adapters", undefined, {
    globalSetup: ["test/utils/postgresSetup.ts", "test/utils/redisSetup.ts"]
  }),
  project("server", "packages/server"),
  project("examples", "examples", ["*/test/**/*.test.ts"])
]
