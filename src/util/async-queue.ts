/**
 * The one async queue: a bounded FIFO with waiting on both ends and the three backpressure
 * policies. Its waits are {@link WaitList}s.
 * (Internal: not part of the public API.)
 * @module
 */
import { BackpressureError, TimeoutError } from "../errors.js";
import { checkOptions, type BlockingOptions } from "./blocking.js";
import { WaitList } from "./wait.js";

/** What a full queue does with one more item: wait for room, drop its oldest, or refuse. */
export type QueuePolicy = "block" | "drop-oldest" | "fail";

/** Every {@link QueuePolicy}: the values a `backpressure` option accepts. */
export const BACKPRESSURE_POLICIES: readonly QueuePolicy[] = ["block", "drop-oldest", "fail"];

/** What the queue holds: items whose resources it gives back when it drops them. */
export interface Releasable {
  /** Gives the item's resources back (idempotent). */
  release(): void;
}

/**
 * A bounded FIFO. `push` applies the policy when full: `block` waits for room (bounded by
 * `timeout` and `signal`), `drop-oldest` drops — releasing it — and counts the oldest item,
 * `fail` throws `BackpressureError`. `shift` waits for an item.
 */
export class AsyncQueue<T extends Releasable> {
  private readonly items: T[] = [];
  private readonly readers = new WaitList<T | null>();
  private readonly room = new WaitList<void>();
  private ended = false;
  private failure: Error | undefined;
  /** Items dropped by `drop-oldest` not yet reported. */
  missed = 0;
  /** Items taken in since creation (statistics). */
  accepted = 0;
  /** Items dropped since creation, here or upstream (statistics; `missed` is reset by its reader). */
  dropped = 0;
  /**
   * A synchronous consumer: offered, in `push`, each item that finds the queue empty while a
   * reader waits (the consumer is idle: everything before was taken); it takes the item by
   * returning true, else the item goes to the reader. So the item comes after everything pushed
   * before it: once a reader was handed an item it does not wait, and later items queue up until
   * it asks again. The taker sees each item in its producer's call, without a promise or a turn
   * of the event loop.
   */
  taker: ((item: T) => boolean) | undefined;
  /** Items the {@link taker} took since creation (included in `accepted`). */
  taken = 0;
  /** True while the taker's consumer still handles an item it took: the reader is then not {@link starved}. */
  busy: (() => boolean) | undefined;

  /** @param depth - most items queued; @param policy - what `push` does when full */
  constructor(
    private readonly depth: number,
    readonly policy: QueuePolicy,
  ) {}

  /** Queued items. */
  get length(): number {
    return this.items.length;
  }

  /** True while a reader waits on an empty queue (it asked for an item and none is there), its taker idle. */
  get starved(): boolean {
    return this.readers.size > 0 && this.busy?.() !== true;
  }

  /** True if a `fail` queue would refuse an item now (nobody waits and it is full). */
  get refuses(): boolean {
    return this.policy === "fail" && this.readers.size === 0 && this.items.length >= this.depth;
  }

  /** True if a `block` push would have to wait now. */
  get full(): boolean {
    return !this.ended && this.readers.size === 0 && this.items.length >= this.depth;
  }

  /**
   * Adds an item. Returns nothing when it was taken at once (no promise on the fast path), or a
   * promise while it waits for room under `block` (at most `opts.timeout` ms).
   */
  push(item: T, opts: BlockingOptions = {}, policy: QueuePolicy = this.policy): void | Promise<void> {
    if (this.ended) {
      item.release();
      return;
    }
    if (this.taker !== undefined && this.items.length === 0 && this.readers.size > 0 && this.taker(item)) {
      this.taken++;
      this.accepted++;
      return;
    }
    if (this.readers.wakeOne(item)) {
      this.accepted++;
      return;
    }
    while (this.items.length >= this.depth) {
      if (policy === "drop-oldest") {
        this.items.shift()?.release();
        this.missed++;
        this.dropped++;
      } else if (policy === "fail") {
        item.release();
        throw new BackpressureError(`subscriber queue is full (${this.depth}) under policy "fail"`);
      } else {
        return this.pushWhenRoom(item, opts, policy);
      }
    }
    this.items.push(item);
    this.accepted++;
  }

  private async pushWhenRoom(item: T, opts: BlockingOptions, policy: QueuePolicy): Promise<void> {
    try {
      await this.waitForRoom(opts);
    } catch (err) {
      item.release();
      throw err;
    }
    return this.push(item, opts, policy);
  }

  /** Resolves when an item may be pushed without waiting (or the queue ended). */
  async waitForRoom(opts: BlockingOptions): Promise<void> {
    while (this.full) {
      const timeout = opts.timeout;
      await this.room.wait({ timeout, signal: opts.signal, what: "publish", timeoutError: () => new TimeoutError(`a subscriber stayed full for ${timeout} ms`) });
    }
  }

  /** The next item without waiting, or null. */
  tryShift(): T | null {
    const s = this.items.shift() ?? null;
    if (s) this.room.wakeOne();
    return s;
  }

  /** The next item; null once ended and empty; rejects after a failure once empty. */
  shift(opts: BlockingOptions = {}): Promise<T | null> {
    checkOptions(opts, "receive");
    const s = this.tryShift();
    if (s) return Promise.resolve(s);
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(null);
    return this.readers.wait({ timeout: opts.timeout, signal: opts.signal, what: "receive" });
  }

  /** Ends the queue: readers get what is queued, then null (or `error`). */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    if (error !== undefined) this.readers.failAll(error);
    else this.readers.wakeAll(null);
    this.room.wakeAll();
  }

  /** Drops everything queued (releasing it) and ends. */
  clear(): void {
    for (const s of this.items.splice(0)) s.release();
    this.end();
  }
}
