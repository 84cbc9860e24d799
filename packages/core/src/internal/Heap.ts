/**
 * A binary min-heap over an array, ordered by a comparator. Used by the memory queue for its ready,
 * delayed and lease-expiry indexes; entries are removed lazily (callers skip stale tops), so there is no
 * `remove(x)`.
 *
 * @since 0.1.0
 * @internal
 */

/** @internal */
export class Heap<A> {
  private readonly items: Array<A> = []
  private readonly less: (a: A, b: A) => boolean
  constructor(less: (a: A, b: A) => boolean) {
    this.less = less
  }

  get size(): number {
    return this.items.length
  }

  peek(): A | undefined {
    return this.items[0]
  }

  push(item: A): void {
    const items = this.items
    let i = items.length
    items.push(item)
    // sift up
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent]!
      if (!this.less(item, p)) break
      items[i] = p
      i = parent
    }
    items[i] = item
  }

  pop(): A | undefined {
    const items = this.items
    const n = items.length
    if (n === 0) return undefined
    const top = items[0]!
    const last = items.pop()!
    if (n > 1) {
      // sift the last item down from the root
      const size = n - 1
      let i = 0
      while (true) {
        const left = 2 * i + 1
        if (left >= size) break
        const right = left + 1
        let child = left
        if (right < size && this.less(items[right]!, items[left]!)) child = right
        if (!this.less(items[child]!, last)) break
        items[i] = items[child]!
        i = child
      }
      items[i] = last
    }
    return top
  }
}
