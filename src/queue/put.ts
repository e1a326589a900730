/**
 * One `put()`: a message encoded once, handed to one or more sessions, settled when every one
 * acknowledged it (resolve) or the first one failed, the timeout passed or the signal aborted
 * (reject). Every put settles exactly once.
 * (Internal: not part of the public API.)
 * @module
 */
import { AbortError, TimeoutError } from "../errors.js";
import { whenAborted } from "../util/wait.js";

/** A put's message on its way to one peer. */
export interface Entry {
  /** The put it belongs to. */
  readonly op: PutOp;
  /**
   * The frame as pieces: the first starts with 16 bytes of room for the
   * queue header (written per peer just before each write), then the encoded message; the
   * value's large buffers follow uncopied. Shared by every peer of the put.
   */
  readonly chunks: readonly Uint8Array[];
  /** Total bytes of `chunks`. */
  readonly bytes: number;
  /** DATA flags (reliable or not). */
  readonly flags: number;
}

/** The state of one put across its peers. */
export class PutOp {
  /** True once resolved or rejected. */
  settled = false;
  /** Writes of the shared first chunk so far (the first peer's write uses it, others a copy). */
  written = 0;
  /** Resolves when every peer acknowledged; rejects with the first typed error. */
  readonly promise: Promise<void>;
  private remaining: number;
  private resolveFn!: () => void;
  private rejectFn!: (err: unknown) => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unwatch: (() => void) | undefined;
  /** Told once when the put settles. */
  owner: { settled(op: PutOp): void } | undefined;

  /** `performance.now()` after which the put times out (when it waits in a {@link Deadlines} list). */
  deadline = Infinity;
  /** The timeout in ms, for the error message. */
  timeout = Infinity;

  /**
   * @param peers - acknowledgements needed
   * @param timeout - ms before `TimeoutError` (Infinity: none)
   * @param signal - aborts with `AbortError`
   * @param shared - the endpoint's list for puts with its default timeout (one timer for all of them)
   */
  constructor(peers: number, timeout: number, signal: AbortSignal | undefined, shared?: Deadlines) {
    this.remaining = peers;
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timeout = timeout;
    if (timeout !== Infinity) {
      if (shared !== undefined) shared.add(this, performance.now() + timeout);
      else this.timer = setTimeout(() => this.expire(), timeout);
    }
    if (signal !== undefined) this.unwatch = whenAborted(signal, () => this.fail(new AbortError("put aborted", { cause: signal.reason })));
  }

  /** One peer acknowledged. */
  done(): void {
    if (this.settled) return;
    if (--this.remaining === 0) {
      this.cleanup();
      this.resolveFn();
    }
  }

  /** Rejects the put with `TimeoutError`. */
  expire(): void {
    this.fail(new TimeoutError(`put not acknowledged within ${this.timeout} ms`));
  }

  /** Rejects the put (first error wins). */
  fail(err: Error): void {
    if (this.settled) return;
    this.cleanup();
    this.rejectFn(err);
  }

  private cleanup(): void {
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.unwatch?.();
    this.owner?.settled(this);
  }
}

/**
 * Puts that all have the same timeout, so their deadlines come in order: one timer, armed for
 * the oldest, instead of one per put.
 */
export class Deadlines {
  private items: PutOp[] = [];
  private head = 0;
  private compactAt = 1024;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** Puts held (waiting for their deadline, or settled and not yet dropped). */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Adds `op`, whose deadline is not earlier than any before it. */
  add(op: PutOp, deadline: number): void {
    op.deadline = deadline;
    if (this.items.length - this.head >= this.compactAt) this.compact();
    this.items.push(op);
    if (this.timer === undefined) this.arm();
  }

  /**
   * Drops the puts that settled before their deadline. Without it every put would be held until
   * its deadline passed: at a high put rate, millions of settled puts for the default 30 s.
   * Runs when the list doubled since the last time, so it costs O(1) per put.
   */
  private compact(): void {
    this.items = this.items.slice(this.head).filter((op) => !op.settled);
    this.head = 0;
    this.compactAt = Math.max(1024, 2 * this.items.length);
  }

  private arm(): void {
    while (this.head < this.items.length && this.items[this.head].settled) this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
      this.timer = undefined;
      return;
    }
    if (this.head > 1024) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    const wait = Math.max(1, this.items[this.head].deadline - performance.now());
    this.timer = setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    const t = performance.now();
    while (this.head < this.items.length && (this.items[this.head].settled || this.items[this.head].deadline <= t)) {
      const op = this.items[this.head++];
      if (!op.settled) op.expire();
    }
    this.arm();
  }

  /** Stops the timer (the endpoint is closed; its puts were settled). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.items = [];
    this.head = 0;
  }
}
