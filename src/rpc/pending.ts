/**
 * The requests a client has in flight, by request id: a fixed table of slots instead of a map
 * (a map's set/get/delete cost more than the rest of a 1-in-flight request's bookkeeping).
 * An id names a slot (its low bits) and that slot's use (the high bits), so the answer to a
 * request that timed out never matches the next request in the same slot. Freed slots are taken
 * again in turn (first freed, first taken): every slot is used as often as the others, so ids
 * repeat only after about 2^32 requests, as a plain counter's would.
 * (Internal: not part of the public API.)
 * @module
 */

/** What the table holds: anything that remembers its id. */
export interface HasId {
  /** The request id it was given by {@link PendingTable.open}. */
  readonly id: number;
}

/** Requests in flight, at most `capacity` at once. */
export class PendingTable<T extends HasId> {
  private readonly slots: (T | undefined)[];
  /** How often each slot was used (the high bits of its ids). */
  private readonly uses: number[];
  /** Free slots in the order they were freed: a ring of `size` entries from `head`. */
  private readonly free: Int32Array;
  private head = 0;
  private freeCount: number;
  private readonly mask: number;
  /** Uses of a slot before its ids repeat. */
  private readonly cycle: number;
  private count = 0;

  /** @param capacity - most entries at once (1 .. 65536) */
  constructor(capacity: number) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.mask = size - 1;
    this.cycle = 2 ** 32 / size;
    this.slots = new Array<T | undefined>(size).fill(undefined);
    this.uses = new Array<number>(size).fill(0);
    this.free = new Int32Array(size);
    for (let s = 0; s < size; s++) this.free[s] = s;
    this.freeCount = size;
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  /** A fresh id (never 0) for an entry to {@link set} at once; throws if the table is full. */
  open(): number {
    if (this.freeCount === 0) throw new RangeError("pending table is full");
    const slot = this.free[this.head];
    this.head = (this.head + 1) & this.mask;
    this.freeCount--;
    let use = this.uses[slot] + 1;
    if (use === this.cycle) use = 1; // wrapped: id 0 stays unused
    this.uses[slot] = use;
    this.count++;
    return use * (this.mask + 1) + slot;
  }

  /** Stores `entry` under the id {@link open} gave it. */
  set(entry: T): void {
    this.slots[entry.id & this.mask] = entry;
  }

  /** The entry of request `id`, if it is still in flight. */
  get(id: number): T | undefined {
    const e = this.slots[id & this.mask];
    return e !== undefined && e.id === id ? e : undefined;
  }

  /** Removes the entry of `id` and frees its slot (nothing if it is not held). */
  delete(id: number): void {
    const slot = id & this.mask;
    const e = this.slots[slot];
    if (e === undefined || e.id !== id) return; // gone, or an older id of a slot in use again
    this.slots[slot] = undefined;
    this.free[(this.head + this.freeCount) & this.mask] = slot;
    this.freeCount++;
    this.count--;
  }

  /** The entries held now (a copy: safe to delete while iterating). */
  entries(): T[] {
    const out: T[] = [];
    for (const e of this.slots) if (e !== undefined) out.push(e);
    return out;
  }
}
