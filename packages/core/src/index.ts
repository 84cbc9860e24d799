/**
 * @mandate/core — governed autonomous execution on Effect: the domain model, the services and their memory
 * layers.
 *
 * @since 0.1.0
 */
export * from "./Anchor.ts"
export * from "./Approval.ts"
export * as Canonical from "./Canonical.ts"
export * from "./Ids.ts"
export * from "./InvalidInput.ts"
export * from "./Job.ts"
export * from "./LedgerEntry.ts"
export * as Plan from "./Plan.ts"
export * from "./Planner.ts"
export * from "./Policy.ts"
export * as PolicySet from "./PolicySet.ts"
export * from "./PolicyStore.ts"
export * as Principal from "./Principal.ts"
export * from "./RateLimit.ts"
export * as Seed from "./Seed.ts"
export * as SeedHandlers from "./SeedHandlers.ts"
export * as Step from "./Step.ts"
export * from "./StepHandlers.ts"
export * as Task from "./Task.ts"
export { IllegalTransition } from "./Task.ts"
export * from "./TaskStore.ts"
export * from "./Template.ts"
export * from "./UnitOfWork.ts"
export * from "./Wallets.ts"
