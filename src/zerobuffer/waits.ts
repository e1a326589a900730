/**
 * Waiting without blocking the event loop: semaphore waits on the addon's waiter thread with
 * abort support, polling sleeps, process liveness, and a FIFO lock that serialises the
 * operations of one handle.
 * @internal
 * @module
 */
import { AbortError, ClosedError, InvalidArgumentError, TimeoutError } from "../errors.js";
import { native, type Semaphore } from "../native.js";

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
  const onAbort = (): void => sem.cancelWait();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await sem.wait(ms);
  } finally {
    signal.removeEventListener("abort", onAbort);
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

/** Checks a `spinMicros` option (0..1e6). */
export function checkSpin(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1e6) {
    throw new InvalidArgumentError(`spinMicros must be a number of µs from 0 to 1000000, got ${String(value)}`);
  }
  return value;
}

/** Sleeps `ms` (a referenced timer); rejects with AbortError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortError("wait aborted", { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortError("wait aborted", { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Settles with `p`, or as soon as `signal` aborts (a handler still running after close is not awaited). */
export function raceAbort(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * Combines a caller's signal with a handle's close signal: aborted when either aborts. The
 * returned `dispose` removes the listeners.
 */
export function linkSignals(a: AbortSignal | undefined, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  if (a === undefined) return { signal: b, dispose: () => {} };
  const c = new AbortController();
  const onA = (): void => c.abort(a.reason);
  const onB = (): void => c.abort(b.reason);
  if (a.aborted) onA();
  else if (b.aborted) onB();
  else {
    a.addEventListener("abort", onA, { once: true });
    b.addEventListener("abort", onB, { once: true });
  }
  return {
    signal: c.signal,
    dispose: () => {
      a.removeEventListener("abort", onA);
      b.removeEventListener("abort", onB);
    },
  };
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

interface Waiter {
  grant: () => void;
  fail: (err: Error) => void;
}

/**
 * A FIFO lock: operations of one handle (reads, writes) run one at a time, in call order.
 * `tryAcquire` is synchronous, so an idle handle takes its fast path without a promise.
 */
export class Lock {
  private held = false;
  private readonly waiters: Waiter[] = [];

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
    if (signal?.aborted) return Promise.reject(new AbortError(`${what} aborted`, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          cleanup();
          resolve();
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
      };
      const leave = (err: Error): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        waiter.fail(err);
      };
      const onAbort = (): void => leave(new AbortError(`${what} aborted`, { cause: signal?.reason }));
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => leave(new TimeoutError(`${what} timed out waiting for earlier operations`)), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Passes the lock to the next waiter, or frees it. */
  release(): void {
    const next = this.waiters.shift();
    if (next === undefined) this.held = false;
    else next.grant();
  }

  /** Rejects every waiter (the handle closed). */
  failAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.fail(err);
  }
}
