/**
 * Samples and the bounded queue a subscriber reads them from.
 * @module
 */
import { AbortError, BackpressureError, TimeoutError } from "../errors.js";
import type { BackpressurePolicy } from "../transport/transport.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";

/** One received message. */
export interface Sample<T = unknown> extends Disposable {
  /** The message: the publisher's value itself (same thread) or its decoded copy whose typed arrays are views into shared memory. Read-only by contract. */
  readonly value: T;
  /** Topic it was published on. */
  readonly topic: string;
  /** Sequence number given by its publisher (from 1). */
  readonly sequence: number;
  /** Id of the publisher. */
  readonly publisher: string;
  /** Gives the message's memory back to the publisher; idempotent. */
  release(): void;
}

/** A sample with its release action. */
export class SampleImpl<T> implements Sample<T> {
  private released = false;
  constructor(
    readonly value: T,
    readonly topic: string,
    readonly sequence: number,
    readonly publisher: string,
    private readonly onRelease: (() => void) | undefined,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * A bounded FIFO of samples with waiting on both ends. `push` applies the policy when full:
 * `block` waits for room, `drop-oldest` drops (and counts) the oldest, `fail` rejects.
 */
export class SampleQueue<T> {
  private items: Sample<T>[] = [];
  private readers: ((s: Sample<T> | null) => void)[] = [];
  private room: (() => void)[] = [];
  private ended = false;
  private failure: Error | undefined;
  /** Samples dropped by `drop-oldest` not yet reported. */
  missed = 0;
  /** Samples taken in since creation (statistics). */
  accepted = 0;
  /** Samples dropped since creation, here or upstream (statistics; `missed` is reset by its reader). */
  dropped = 0;

  /** @param depth - most samples queued; @param policy - what `push` does when full */
  constructor(
    private readonly depth: number,
    readonly policy: BackpressurePolicy,
  ) {}

  /** Queued samples. */
  get length(): number {
    return this.items.length;
  }

  /** True if a `fail` queue would refuse a sample now (nobody waits and it is full). */
  get refuses(): boolean {
    return this.policy === "fail" && this.readers.length === 0 && this.items.length >= this.depth;
  }

  /**
   * Adds a sample. Returns nothing when it was taken at once (no promise on the fast path), or a
   * promise while it waits for room under `block` (at most `opts.timeout` ms).
   */
  push(sample: Sample<T>, opts: BlockingOptions = {}, policy: BackpressurePolicy = this.policy): void | Promise<void> {
    if (this.ended) {
      sample.release();
      return;
    }
    const reader = this.readers.shift();
    if (reader) {
      this.accepted++;
      return reader(sample);
    }
    while (this.items.length >= this.depth) {
      if (policy === "drop-oldest") {
        this.items.shift()?.release();
        this.missed++;
        this.dropped++;
      } else if (policy === "fail") {
        sample.release();
        throw new BackpressureError(`subscriber queue is full (${this.depth}) under policy "fail"`);
      } else {
        return this.pushWhenRoom(sample, opts, policy);
      }
    }
    this.items.push(sample);
    this.accepted++;
  }

  private async pushWhenRoom(sample: Sample<T>, opts: BlockingOptions, policy: BackpressurePolicy): Promise<void> {
    try {
      await this.waitForRoom(opts);
    } catch (err) {
      sample.release();
      throw err;
    }
    return this.push(sample, opts, policy);
  }

  /** True if a `block` push would have to wait now. */
  get full(): boolean {
    return !this.ended && this.readers.length === 0 && this.items.length >= this.depth;
  }

  /** Resolves when a sample may be taken without waiting (or the queue ended). */
  async waitForRoom(opts: BlockingOptions): Promise<void> {
    while (this.full) await this.nextRoom(opts);
  }

  private nextRoom(opts: BlockingOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        const i = this.room.indexOf(wake);
        if (i >= 0) this.room.splice(i, 1);
        if (err) reject(err);
        else resolve();
      };
      const wake = (): void => settle();
      const onAbort = (): void => settle(new AbortError("publish aborted", { cause: opts.signal?.reason }));
      this.room.push(wake);
      if (opts.timeout !== undefined && opts.timeout !== Infinity) {
        timer = setTimeout(() => settle(new TimeoutError(`a subscriber stayed full for ${opts.timeout} ms`)), opts.timeout);
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The next sample without waiting, or null. */
  tryShift(): Sample<T> | null {
    const s = this.items.shift() ?? null;
    if (s) this.room.shift()?.();
    return s;
  }

  /** The next sample; null once ended and empty; rejects after a failure once empty. */
  shift(opts: BlockingOptions = {}): Promise<Sample<T> | null> {
    checkOptions(opts, "receive");
    const s = this.tryShift();
    if (s) return Promise.resolve(s);
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(null);
    return new Promise<Sample<T> | null>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => finish(undefined, new AbortError("receive aborted", { cause: opts.signal?.reason }));
      const finish = (v: Sample<T> | null | undefined, err?: Error): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        const i = this.readers.indexOf(reader);
        if (i >= 0) this.readers.splice(i, 1);
        if (err) reject(err);
        else resolve(v ?? null);
      };
      const reader = (v: Sample<T> | null): void => finish(v, v === null && this.failure ? this.failure : undefined);
      this.readers.push(reader);
      if (opts.timeout !== undefined) {
        timer = setTimeout(() => finish(undefined, new TimeoutError(`receive timed out after ${opts.timeout} ms`)), opts.timeout);
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Ends the queue: readers get what is queued, then null (or `error`). */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    for (const r of this.readers.splice(0)) r(null);
    for (const r of this.room.splice(0)) r();
  }

  /** Drops everything queued (releasing it) and ends. */
  clear(): void {
    for (const s of this.items.splice(0)) s.release();
    this.end();
  }
}
