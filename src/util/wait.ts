/**
 * The one wait primitive: a deferred bound to `{ timeout, signal }`, and a FIFO list of them.
 * Every call that waits — for room, for a message, for a slot, for an answer, for a lock —
 * waits on a {@link Deferred}, usually through a {@link WaitList}. A deferred settles once, by
 * its owner (resolve / reject), by its timeout (`TimeoutError`) or by its signal (`AbortError`,
 * `cause` = the signal's reason), and whichever way it settles it leaves its deadline and removes
 * its listener from the signal: no listener stays on a caller's `AbortSignal` after the call.
 *
 * Deadlines share one timer ({@link Deadlines}): a wait with a timeout that settles in time (the
 * usual case: `receive({ timeout })` in a loop) costs a set insertion and deletion, not a Node
 * timer's creation and cancellation (several hundred ns, more than the rest of a ring read).
 *
 * All of Plexus listens to a signal through {@link whenAborted}: one listener per signal
 * however many calls wait on it, so an application that passes one signal (say, its shutdown
 * signal) to a thousand concurrent requests neither piles up listeners nor sees Node's
 * `MaxListenersExceededWarning`.
 * (Internal: not part of the public API.)
 * @module
 */
import { AbortError, TimeoutError } from "../errors.js";

/** The longest single timer Node accepts. */
const MAX_TIMER = 2 ** 31 - 1;

/** Something with a deadline: told once it has passed. */
interface Expiring {
  expire(): void;
}

/**
 * Every wait's deadline, on one Node timer. Deadlines are grouped in buckets by the time they
 * fall due, rounded up (never early) to a width that grows with the timeout: 1 ms up to 64 ms,
 * then about 1/64 of the timeout, at most 64 ms — a 10 s timeout fires at most 64 ms late, which
 * Node's own timers do not promise to beat under load either. A bucket stays (empty or not) until
 * its time, so a stream of waits that settle in time adds nothing but set operations, and the
 * buckets alive at once are bounded by the timeouts in use divided by their widths. The timer
 * keeps the process alive only while a wait is pending, as a timer per wait did.
 */
class Deadlines {
  private readonly buckets = new Map<number, Set<Expiring>>();
  /** Bucket times, a binary min-heap. */
  private readonly heap: number[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  /** Waits in the buckets (the timer is referenced while there are any). */
  private live = 0;
  private readonly fire = (): void => this.expire();

  /** Adds `w`, due in `ms`; returns its bucket (for {@link remove}). */
  add(w: Expiring, ms: number): number {
    const t = Math.min(Math.max(0, ms), MAX_TIMER);
    const width = t <= 64 ? 1 : Math.min(64, 2 ** Math.floor(Math.log2(t / 64)));
    const at = Math.ceil((performance.now() + t) / width) * width;
    let bucket = this.buckets.get(at);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(at, bucket);
      this.push(at);
      if (at < this.timerAt) this.arm(at);
    }
    bucket.add(w);
    if (this.live++ === 0) this.timer?.ref();
    return at;
  }

  /** Removes `w` from bucket `at` (it settled otherwise). */
  remove(w: Expiring, at: number): void {
    if (this.buckets.get(at)?.delete(w) === true && --this.live === 0) this.timer?.unref();
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(0, at - performance.now()));
    if (this.live === 0) this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    const due: Expiring[] = [];
    while (this.heap.length > 0 && this.heap[0] <= now) {
      const at = this.pop();
      const bucket = this.buckets.get(at);
      this.buckets.delete(at);
      if (bucket !== undefined) for (const w of bucket) due.push(w);
    }
    this.live -= due.length;
    if (this.heap.length > 0) this.arm(this.heap[0]);
    for (const w of due) w.expire();
  }

  private push(at: number): void {
    const h = this.heap;
    let i = h.push(at) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent] <= at) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = at;
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as number;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1] < h[l] ? l + 1 : l;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

/** The deadlines of every {@link Deferred}. */
const deadlines = new Deadlines();

/** The one listener Plexus keeps on a signal, and the callbacks it runs. */
interface Watch {
  readonly callbacks: Set<() => void>;
  readonly listener: () => void;
}

/** Signals being watched. */
const watches = new WeakMap<AbortSignal, Watch>();

/**
 * Runs `onAbort` when `signal` aborts; the returned function stops watching (call it when the
 * wait settles). Every callback on one signal shares one listener, removed with the last
 * callback. `signal` must not be aborted yet (callers check `aborted` first).
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  let w = watches.get(signal);
  if (w === undefined) {
    const callbacks = new Set<() => void>();
    const listener = (): void => {
      watches.delete(signal);
      const all = [...callbacks];
      callbacks.clear();
      for (const f of all) f();
    };
    w = { callbacks, listener };
    watches.set(signal, w);
    signal.addEventListener("abort", listener, { once: true });
  }
  const watch = w;
  watch.callbacks.add(onAbort);
  return () => {
    if (!watch.callbacks.delete(onAbort) || watch.callbacks.size > 0) return;
    signal.removeEventListener("abort", watch.listener);
    if (watches.get(signal) === watch) watches.delete(signal);
  };
}

/** How a wait ends if nobody settles it. */
export interface WaitOptions {
  /** Milliseconds before it rejects with `TimeoutError`; `undefined` or `Infinity`: no limit. */
  timeout?: number | undefined;
  /** Rejects it with `AbortError` (`cause` = `signal.reason`) when aborted, at once if already aborted. */
  signal?: AbortSignal | undefined;
  /** What waits, for the errors' messages ("receive" gives "receive timed out after 5 ms"). */
  what: string;
  /** Makes the timeout's error instead of the default `TimeoutError`. */
  timeoutError?: (() => Error) | undefined;
}

/**
 * A promise with its settle functions, bound to a timeout and an abort signal. `onSettle`
 * runs once, however it settles (its owner drops it from a list, wakes the next, ...).
 */
export class Deferred<T, D = undefined> {
  /** Settles once: with the value given to {@link resolve}, or an error. */
  readonly promise: Promise<T>;
  /** Whether it has settled. */
  settled = false;
  /** Whether it settled with an error (set before `onSettle` runs). */
  rejected = false;
  /** The error it settled with, if {@link rejected}. */
  error: unknown;
  private res!: (v: T) => void;
  private rej!: (e: unknown) => void;
  /** Its deadline's bucket, -1 without a timeout. */
  private due = -1;
  /** The options it was made with, kept (only with a timeout) to make the timeout's error. */
  private timeoutOpts: WaitOptions | undefined;
  private unwatch: (() => void) | undefined;

  /**
   * @param opts - timeout, signal and what waits
   * @param data - what the owner keeps with the wait (a condition to retry, a value to deliver)
   * @param onSettle - runs once when it settles, before the promise's reactions
   */
  constructor(
    opts: WaitOptions,
    readonly data: D,
    private readonly onSettle?: (d: Deferred<T, D>) => void,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.res = resolve;
      this.rej = reject;
    });
    const signal = opts.signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.reject(new AbortError(`${opts.what} aborted`, { cause: signal.reason }));
        return;
      }
      this.unwatch = whenAborted(signal, () => this.reject(new AbortError(`${opts.what} aborted`, { cause: signal.reason })));
    }
    const t = opts.timeout;
    if (t !== undefined && t !== Infinity) {
      this.timeoutOpts = opts;
      this.due = deadlines.add(this, t);
    }
  }

  /** @internal Its deadline passed: rejects with the timeout's error. */
  expire(): void {
    this.due = -1;
    const o = this.timeoutOpts;
    if (o === undefined) return;
    this.reject(o.timeoutError !== undefined ? o.timeoutError() : new TimeoutError(`${o.what} timed out after ${o.timeout} ms`));
  }

  /** Settles with `value`; false if it had settled already. */
  resolve(value: T): boolean {
    if (this.settled) return false;
    this.finish();
    this.res(value);
    return true;
  }

  /** Settles with `err`; false if it had settled already. */
  reject(err: unknown): boolean {
    if (this.settled) return false;
    this.rejected = true;
    this.error = err;
    this.finish();
    this.rej(err);
    return true;
  }

  private finish(): void {
    this.settled = true;
    if (this.due >= 0) {
      deadlines.remove(this, this.due);
      this.due = -1;
    }
    if (this.unwatch !== undefined) {
      this.unwatch();
      this.unwatch = undefined;
    }
    this.onSettle?.(this);
  }
}

/**
 * Waits in FIFO order. A wait that times out or is aborted leaves the list by itself; the owner
 * wakes the first ({@link wakeOne}), looks at it ({@link first}) or ends them all.
 */
export class WaitList<T, D = undefined> {
  private readonly waits = new Set<Deferred<T, D>>();
  private readonly leave = (d: Deferred<T, D>): void => {
    this.waits.delete(d);
    this.onLeave?.(d);
  };

  /** @param onLeave - runs when a wait leaves the list, however it settled */
  constructor(private readonly onLeave?: (d: Deferred<T, D>) => void) {}

  /** Waits at the end of the list. */
  wait(opts: WaitOptions, data?: D): Promise<T> {
    const d = new Deferred<T, D>(opts, data as D, this.leave);
    if (!d.settled) this.waits.add(d);
    return d.promise;
  }

  /** Waits in the list. */
  get size(): number {
    return this.waits.size;
  }

  /** The first wait, or undefined. */
  first(): Deferred<T, D> | undefined {
    if (this.waits.size === 0) return undefined; // no iterator made on the common path: nobody waits
    for (const d of this.waits) return d;
    return undefined;
  }

  /** Resolves the first wait with `value`; false if none waits. */
  wakeOne(value: T): boolean {
    const d = this.first();
    return d !== undefined && d.resolve(value);
  }

  /** Resolves every wait with `value`. */
  wakeAll(value: T): void {
    for (const d of [...this.waits]) d.resolve(value);
  }

  /** Rejects every wait with `err`. */
  failAll(err: unknown): void {
    for (const d of [...this.waits]) d.reject(err);
  }
}
