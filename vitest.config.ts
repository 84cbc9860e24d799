import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.ts"

// Vitest 5 has no workspace file of its own: the list lives in vitest.workspace.ts
export default defineConfig({ test: { projects, passWithNoTests: true } })
