/**
 * The async iterator every receiving handle offers: each item is released when the loop moves
 * on, and leaving the loop early (`break`, `return`, a throw) closes the handle.
 * (Internal: not part of the public API.)
 * @module
 */

/** Something a loop hands out and takes back. */
export interface Releasable {
  /** Gives the item back. */
  release(): void;
}

/**
 * An iterator over `next()` until it yields null; releases the previous item before fetching
 * the next, and on early exit releases it and calls `close()`.
 */
export function releasingIterator<T extends Releasable>(next: () => Promise<T | null>, close: () => Promise<void>): AsyncIterator<T> {
  let previous: T | null = null;
  return {
    next: async (): Promise<IteratorResult<T>> => {
      previous?.release();
      previous = null;
      const item = await next();
      if (item === null) return { done: true, value: undefined };
      previous = item;
      return { done: false, value: item };
    },
    return: async (): Promise<IteratorResult<T>> => {
      previous?.release();
      previous = null;
      await close();
      return { done: true, value: undefined };
    },
  };
}
