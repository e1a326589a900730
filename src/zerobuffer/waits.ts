/**
 * Waiting without blocking the event loop: semaphore waits on the addon's waiter thread with
 * abort support, polling sleeps, process liveness, and a FIFO lock that serialises the
 * operations of one handle.
 * (Internal: not part of the public API.)
 * @module
 */
import { AbortError, ClosedError, TimeoutError } from "../errors.js";
import { native, type Semaphore } from "../native.js";
import { Deferred, WaitList, whenAborted } from "../util/wait.js";

/** Liveness checks and semaphore waits are done in slices of this length (like C++'s writer). */
export const SLICE_MS = 100;

/** Largest pid Linux hands out (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 4194304;

/** `kill(pid, 0)`: true if `pid` names a live process (EPERM counts as alive). 0 and garbage are dead. */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid > MAX_PID) return false;
  return native().processAlive(pid);
}

/**
 * Waits on `sem` for at most `ms` on its waiter thread. Resolves true if decremented, false on
 * timeout or when `signal` aborts (the caller then checks the signal).
 */
export async function semWait(sem: Semaphore, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return false;
  if (signal === undefined) return sem.wait(ms);
  const unwatch = whenAborted(signal, () => sem.cancelWait());
  try {
    return await sem.wait(ms);
  } finally {
    unwatch();
  }
}

/**
 * Busy-polls `sem` with `sem_trywait` for up to `micros` µs (blocking the event loop meanwhile);
 * true once decremented. The opt-in low-latency mode (`spinMicros`): a wake-up through the
 * semaphore's waiter thread costs tens of µs, a poll well under one, at the price of a busy core.
 */
export function spinTry(sem: Semaphore, micros: number): boolean {
  const end = performance.now() + micros / 1000;
  do {
    if (sem.tryWait()) return true;
  } while (performance.now() < end);
  return false;
}

/** Sleeps `ms` (a referenced timer); rejects with AbortError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined; // before the Deferred: an aborted signal settles it at once
  const d = new Deferred<void>({ signal, what: "wait" }, undefined, () => clearTimeout(timer));
  if (!d.settled) timer = setTimeout(() => d.resolve(), ms);
  return d.promise;
}

/** Settles with `p`, or as soon as `signal` aborts (a handler still running after close is not awaited). */
export function raceAbort(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  const d = new Deferred<void>({ what: "close" }, undefined, () => unwatch());
  const unwatch = whenAborted(signal, () => d.resolve());
  p.then(
    () => d.resolve(),
    (err: unknown) => d.reject(err instanceof Error ? err : new Error(String(err))),
  );
  return d.promise;
}

/**
 * Combines a caller's signal with a handle's close signal: aborted when either aborts. The
 * returned `dispose` stops watching both.
 */
export function linkSignals(a: AbortSignal | undefined, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  if (a === undefined) return { signal: b, dispose: () => {} };
  const c = new AbortController();
  if (a.aborted) c.abort(a.reason);
  else if (b.aborted) c.abort(b.reason);
  else {
    const stopA = whenAborted(a, () => c.abort(a.reason));
    const stopB = whenAborted(b, () => c.abort(b.reason));
    return {
      signal: c.signal,
      dispose: () => {
        stopA();
        stopB();
      },
    };
  }
  return { signal: c.signal, dispose: () => {} };
}

/**
 * Turns the end of a wait into the right error: ClosedError if the handle closed, AbortError
 * (cause = reason) if the caller's signal aborted, otherwise TimeoutError.
 */
export function waitEndError(closed: boolean, signal: AbortSignal | undefined, what: string): Error {
  if (closed) return new ClosedError(`${what}: the handle was closed`);
  if (signal?.aborted) return new AbortError(`${what} aborted`, { cause: signal.reason });
  return new TimeoutError(`${what} timed out`);
}

/**
 * A FIFO lock: operations of one handle (reads, writes) run one at a time, in call order.
 * `tryAcquire` is synchronous, so an idle handle takes its fast path without a promise.
 */
export class Lock {
  private held = false;
  private readonly waiters = new WaitList<void>();

  /** True while some operation holds the lock. */
  get busy(): boolean {
    return this.held;
  }

  /** Takes the lock now if it is free. */
  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  /**
   * Takes the lock, waiting in FIFO order; rejects with TimeoutError after `timeoutMs` or
   * AbortError when `signal` aborts (the waiter then leaves the queue).
   */
  acquire(timeoutMs: number, signal: AbortSignal | undefined, what: string): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return this.waiters.wait({ timeout: timeoutMs, signal, what, timeoutError: () => new TimeoutError(`${what} timed out waiting for earlier operations`) });
  }

  /** Passes the lock to the next waiter, or frees it. */
  release(): void {
    if (!this.waiters.wakeOne()) this.held = false;
  }

  /** Rejects every waiter (the handle closed). */
  failAll(err: Error): void {
    this.waiters.failAll(err);
  }
}
