/**
 * Timeouts and abort signals for everything that can block.
 * (Internal: not part of the public API.)
 * @module
 */
import { performance } from "node:perf_hooks";
import { AbortError, TimeoutError } from "../errors.js";
import { optionError, timeoutOption } from "./options.js";
import { whenAborted } from "./wait.js";

/** Options every blocking call takes. */
export interface BlockingOptions {
  /** Milliseconds before the call rejects with a `TimeoutError`. Default: the handle's own default. */
  timeout?: number;
  /** Aborts the call with an `AbortError` whose `cause` is `signal.reason`. */
  signal?: AbortSignal;
}

/** Throws an {@link AbortError} (cause = reason) if `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortError(`${what} aborted`, { cause: signal.reason });
}

/**
 * Checks a user-supplied timeout (a non-negative number of ms or `Infinity`; undefined:
 * `fallback`); `name` and `where` name it in the error (see `util/options.ts`).
 */
export function checkTimeout(timeout: number | undefined, fallback: number, name = "timeout", where = ""): number {
  return timeoutOption(name, timeout, fallback, where);
}

/** Validates blocking options up front: a bad timeout throws, an aborted signal rejects at once. */
export function checkOptions(opts: BlockingOptions, what: string): void {
  if (opts.timeout !== undefined) checkTimeout(opts.timeout, 0);
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw optionError("", "signal", "an AbortSignal", opts.signal);
  throwIfAborted(opts.signal, what);
}

/** An absolute deadline derived from a relative timeout (Infinity = none). */
export class Deadline {
  private readonly end: number;
  /** @param timeoutMs - relative timeout; Infinity for none */
  constructor(timeoutMs: number) {
    this.end = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
  }
  /** Milliseconds left, never negative. */
  remaining(): number {
    return this.end === Infinity ? Infinity : Math.max(0, this.end - performance.now());
  }
  /** Throws a {@link TimeoutError} once the deadline has passed. */
  check(what: string): void {
    if (this.end !== Infinity && performance.now() >= this.end) throw new TimeoutError(`${what} timed out`);
  }
}

/** The longest single timer Node accepts. */
const MAX_TIMER = 2 ** 31 - 1;

/**
 * One pending sleep at a time, ended by {@link Sleeper.wake}, a timeout (resolves), or an
 * abort (rejects). Keeps the event loop alive while sleeping (its timer is referenced only
 * then), because some wake-up sources (`Atomics.waitAsync`, an unref'd watcher) do not. The
 * timer is reused across sleeps (`refresh()`), so a sleep allocates nothing but its promise.
 */
export class Sleeper {
  private pending: (() => void) | undefined;
  private reject: ((err: unknown) => void) | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerMs = -1;
  private signal: AbortSignal | undefined;
  private unwatch: (() => void) | undefined;
  private readonly fire = (): void => this.wake();
  private readonly onAbort = (): void => {
    const reason: unknown = this.signal?.reason;
    this.fail(new AbortError("wait aborted", { cause: reason }));
  };

  /** True while a sleep is pending. */
  get sleeping(): boolean {
    return this.pending !== undefined;
  }

  /**
   * Sleeps until woken, for at most `timeoutMs` (then resolves too: callers re-check their
   * condition and their deadline), or rejects with `AbortError` when `signal` aborts.
   */
  sleep(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.pending) throw new Error("Sleeper: a sleep is already pending");
    if (signal?.aborted) return Promise.reject(new AbortError("wait aborted", { cause: signal.reason }));
    const ms = Math.max(1, Math.min(timeoutMs, MAX_TIMER));
    return new Promise<void>((resolve, reject) => {
      this.pending = resolve;
      this.reject = reject;
      if (this.timer !== undefined && ms === this.timerMs) {
        this.timer.refresh();
        this.timer.ref();
      } else {
        clearTimeout(this.timer);
        this.timer = setTimeout(this.fire, ms);
        this.timerMs = ms;
      }
      if (signal) {
        this.signal = signal;
        this.unwatch = whenAborted(signal, this.onAbort);
      }
    });
  }

  /** Ends the pending sleep, if any. */
  wake(): void {
    const resolve = this.pending;
    if (resolve === undefined) return;
    this.settle();
    resolve();
  }

  /** Rejects the pending sleep, if any, with `err`. */
  fail(err: unknown): void {
    const reject = this.reject;
    if (reject === undefined) return;
    this.settle();
    reject(err);
  }

  /** Wakes a pending sleep and drops the timer for good. */
  dispose(): void {
    this.wake();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private settle(): void {
    this.timer?.unref();
    if (this.signal) {
      this.unwatch?.();
      this.unwatch = undefined;
      this.signal = undefined;
    }
    this.pending = undefined;
    this.reject = undefined;
  }
}

/**
 * Wraps a user's report callback (`onPeerError`) so that a throw in it is contained: it runs
 * from socket and timer handlers, where a throw would be an uncaught exception that stops every
 * other connection with it.
 */
export function contained<A>(callback: ((arg: A) => void) | undefined): ((arg: A) => void) | undefined {
  if (callback === undefined) return undefined;
  return (arg) => {
    try {
      callback(arg);
    } catch {
      // the callback's own failure is its owner's; the server serves on
    }
  };
}
