/**
 * Tasks this process created and the ledger has not appended for yet, shared by the task store and the ledger
 * store built over one `SqlClient`: a task's first entries then chain from genesis without reading the task's
 * (empty) history first. The ledger only guesses from it: `ledger_append` checks under the lock that the task has
 * no entry, and a wrong guess costs a retry, never a wrong entry.
 *
 * @internal
 */

// Bounded: a task created but never appended for falls out after this many newer ones
const limit = 10_000

const registries = new WeakMap<object, Set<string>>()

const registryOf = (client: object): Set<string> => {
  let registry = registries.get(client)
  if (registry === undefined) {
    registry = new Set()
    registries.set(client, registry)
  }
  return registry
}

/**
 * Records a task id the store just inserted.
 *
 * @internal
 */
export const addFresh = (client: object, taskId: string): void => {
  const registry = registryOf(client)
  registry.add(taskId)
  if (registry.size > limit) registry.delete(registry.values().next().value!)
}

/**
 * Whether the task was created here and not yet appended for; it is forgotten either way.
 *
 * @internal
 */
export const takeFresh = (client: object, taskId: string): boolean => registryOf(client).delete(taskId)
