import { defineProject } from "vitest/config"

/**
 * One test project per package: tests under test/, workspace packages resolved from source
 * (the `mandate-source` export condition), so tests never need a build.
 */
export const project = (
  name: string,
  root: string,
  include = ["test/**/*.test.ts"],
  options?: { readonly globalSetup?: ReadonlyArray<string> }
) =>
  defineProject({
    root,
    resolve: { conditions: ["mandate-source"] },
    ssr: { resolve: { conditions: ["mandate-source"], externalConditions: ["mandate-source"] } },
    test: {
      name,
      include,
      testTimeout: 30_000,
      hookTimeout: 60_000,
      ...(options?.globalSetup ? { globalSetup: [...options.globalSetup] } : {})
    }
  })
