/**
 * The one wait primitive: a deferred bound to `{ timeout, signal }`, and a FIFO list of them.
 * Every call that waits — for room, for a message, for a slot, for an answer, for a lock —
 * waits on a {@link Deferred}, usually through a {@link WaitList}. A deferred settles once, by
 * its owner (resolve / reject), by its timeout (`TimeoutError`) or by its signal (`AbortError`,
 * `cause` = the signal's reason), and whichever way it settles it clears its timer and removes
 * its listener from the signal: no listener stays on a caller's `AbortSignal` after the call.
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
  private timer: ReturnType<typeof setTimeout> | undefined;
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
      const make = opts.timeoutError;
      this.timer = setTimeout(() => this.reject(make !== undefined ? make() : new TimeoutError(`${opts.what} timed out after ${t} ms`)), Math.min(Math.max(0, t), MAX_TIMER));
    }
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
    if (this.timer !== undefined) clearTimeout(this.timer);
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
