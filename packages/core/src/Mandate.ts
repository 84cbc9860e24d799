/**
 * Every Mandate service on memory in one layer: the embedded default.
 *
 * ```ts
 * const program = Effect.gen(function* () {
 *   const runtime = yield* Runtime
 *   const task = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
 * })
 * program.pipe(Effect.provide(Mandate.layerMemory()), Effect.runPromise)
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { LanguageModel } from "effect/ai"
import { Agents } from "./Agents.ts"
import { Anchor } from "./Anchor.ts"
import { InvalidInput } from "./InvalidInput.ts"
import { Ledger, type LedgerOptions } from "./Ledger.ts"
import { LedgerStore } from "./LedgerStore.ts"
import { Planner } from "./Planner.ts"
import { Policy } from "./Policy.ts"
import { adoptConfigured, PolicyAdmin } from "./PolicyAdmin.ts"
import type { PolicySet } from "./PolicySet.ts"
import { PolicyStore } from "./PolicyStore.ts"
import { Queue, type QueueMemoryOptions } from "./Queue.ts"
import { QueueAdmin } from "./QueueAdmin.ts"
import { Runtime, type RuntimeOptions } from "./Runtime.ts"
import * as Seed from "./Seed.ts"
import * as SeedHandlers from "./SeedHandlers.ts"
import { asRemoteStep, type StepHandler, StepHandlers } from "./StepHandlers.ts"
import { TaskStore } from "./TaskStore.ts"
import { type StepType, singleStepTemplate, type TaskTemplate } from "./Template.ts"
import { UnitOfWork } from "./UnitOfWork.ts"
import { Wallets } from "./Wallets.ts"

/**
 * The services `layerMemory` provides.
 *
 * @category models
 * @since 0.1.0
 */
export type Services =
  | Runtime
  | Policy
  | PolicyStore
  | PolicyAdmin
  | Planner
  | Queue
  | QueueAdmin
  | Agents
  | Ledger
  | Anchor
  | TaskStore
  | UnitOfWork
  | StepHandlers
  | Wallets

/**
 * @category models
 * @since 0.1.0
 */
export interface MemoryOptions {
  /**
   * The policy set to run under (default: the seed policy on a new store, and whatever is active on an existing
   * one). On any store, a set that differs from the active version is published and activated at start (one log
   * line and a `policy.activated` ledger entry); tasks planned earlier stay pinned to their version.
   */
  readonly policy?: PolicySet | undefined
  /** Handlers added to (or replacing) the seed handlers, by step type. */
  readonly handlers?: ReadonlyArray<StepHandler<any, any, never>> | undefined
  /**
   * Step types run by remote agents instead of in process: step type → pool (e.g. `{ onchain_action: "signers" }`).
   * Each keeps its declared params and result schemas (`asRemoteStep`).
   */
  readonly remoteSteps?: { readonly [type: string]: string } | undefined
  /**
   * The principals whose agents may serve each pool (e.g. `{ signers: ["robot"] }`); a pool not named here is open
   * to every principal with the `agent` role.
   */
  readonly poolPrincipals?: { readonly [pool: string]: ReadonlyArray<string> } | undefined
  /** Templates added to (or replacing) the seed templates, by kind. */
  readonly templates?: ReadonlyArray<TaskTemplate> | undefined
  /** Wallet balances for the seed handlers (default: every wallet holds 1,000,000 QU). */
  readonly wallets?: Parameters<typeof Wallets.layerMemory>[0]
  /** Wallets the seed `policy_check` refuses. */
  readonly blockedWallets?: ReadonlyArray<string> | undefined
  readonly runtime?: RuntimeOptions | undefined
  readonly queue?: QueueMemoryOptions | undefined
  readonly ledger?: LedgerOptions | undefined
  /** The chain the ledger anchors on and `onchain_action` submits to (default `Anchor.layerMemory`). */
  readonly anchor?: Layer.Layer<Anchor, unknown> | undefined
  /**
   * Plan `goal` tasks with a language model (`Planner.layerLlm`); other kinds stay on their templates. Default:
   * templates only.
   */
  readonly llm?:
    | {
        readonly model: string
        readonly languageModel: Layer.Layer<LanguageModel.LanguageModel, unknown>
        readonly maxSteps?: number | undefined
      }
    | undefined
}

/**
 * The stores under the services: what a backend (memory, Postgres, Redis) provides.
 *
 * @category models
 * @since 0.1.0
 */
export type Stores = TaskStore | Queue | Agents | UnitOfWork | LedgerStore | PolicyStore

/**
 * Every store on memory (the policy store holding `options.policy`, the seed policy by default).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemoryStores = (options?: Pick<MemoryOptions, "policy" | "queue"> | undefined): Layer.Layer<Stores> =>
  Layer.mergeAll(
    TaskStore.layerMemory,
    Queue.layerMemory(options?.queue),
    Agents.layerMemory(),
    UnitOfWork.layerMemory,
    LedgerStore.layerMemory,
    PolicyStore.layerMemory(options?.policy)
  )

/**
 * Every service over the given stores: the ledger, policy, planner, step handlers and runtime built on them.
 * Handlers' step types are known to the planner, so a host that registers a handler can plan steps of its type.
 * `options.policy` becomes the active policy of the stores (see `MemoryOptions.policy`); `options.queue` is
 * ignored here: it configures memory stores (`layerMemoryStores`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <E, R>(
  stores: Layer.Layer<Stores, E, R>,
  options?: MemoryOptions
): Layer.Layer<Services | LedgerStore, unknown, R> => {
  const remote = options?.remoteSteps ?? {}
  const handlers = [...SeedHandlers.handlers({ blockedWallets: options?.blockedWallets }), ...(options?.handlers ?? [])]
    .map((h) => (Object.hasOwn(remote, h.type) ? asRemoteStep(h, remote[h.type]!) : h))
    .map((h) => {
      const principals = h.pool === undefined ? undefined : options?.poolPrincipals?.[h.pool]
      return principals === undefined ? h : { ...h, principals: [...(h.principals ?? []), ...principals] }
    })
  const unknownPool = Object.keys(options?.poolPrincipals ?? {}).find((pool) => !handlers.some((h) => h.pool === pool))
  if (unknownPool !== undefined) {
    return Layer.effectDiscard(
      InvalidInput.at(
        `$.poolPrincipals[${JSON.stringify(unknownPool)}]`,
        "Expected a pool that serves a remote step type"
      )
    ) as unknown as Layer.Layer<Services | LedgerStore, unknown, R>
  }
  const unknownRemote = Object.keys(remote).find((type) => !handlers.some((h) => h.type === type))
  if (unknownRemote !== undefined) {
    return Layer.effectDiscard(
      InvalidInput.at(`$.remoteSteps[${JSON.stringify(unknownRemote)}]`, "Expected a step type with a handler")
    ) as unknown as Layer.Layer<Services | LedgerStore, unknown, R>
  }
  const stepTypes: Array<StepType> = [...Seed.stepTypes, ...handlers]
  // Every step type can also run alone, as a one-step task (`step.<type>`, what `POST /execute` starts)
  const templates = [...stepTypes.map(singleStepTemplate), ...(options?.templates ?? [])]
  const base = Layer.mergeAll(
    stores,
    Wallets.layerMemory(options?.wallets ?? { defaultBalance: 1_000_000 }),
    options?.anchor ?? Anchor.layerMemory
  )
  const services = Layer.mergeAll(
    PolicyAdmin.layer.pipe(Layer.provideMerge(Ledger.layer(options?.ledger))),
    StepHandlers.layer(handlers),
    QueueAdmin.layer,
    (options?.llm === undefined
      ? Planner.layerTemplates({ templates, stepTypes })
      : Planner.layerLlm({
          templates,
          stepTypes,
          model: options.llm.model,
          maxSteps: options.llm.maxSteps
        }).pipe(Layer.provide(options.llm.languageModel))
    ).pipe(Layer.provideMerge(Policy.layer))
  ).pipe(Layer.provideMerge(base))
  // The configured policy is active before the runtime plans anything
  const policy = options?.policy
  const adoption = policy === undefined ? Layer.empty : Layer.effectDiscard(Effect.asVoid(adoptConfigured(policy)))
  return Runtime.layer(options?.runtime).pipe(Layer.provide(adoption), Layer.provideMerge(services))
}

/**
 * Every service on memory. Handlers' step types are known to the planner, so a host that registers a handler
 * can plan steps of its type.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<Services, unknown> =>
  layer(layerMemoryStores(options), options)
