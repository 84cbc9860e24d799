import { describe } from "@effect/vitest"
import { suite } from "./utils/suite.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import * as TestRedis from "./utils/TestRedis.ts"
import * as TestServer from "./utils/TestServer.ts"

describe("server over HTTP", () => {
  suite("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    suite("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    suite("redis", TestRedis.services())
  })
})
