/**
 * A request waiting for its response, shared by the duplex clients: responses arrive in order
 * and settle the entry at the head of a FIFO; a caller that stops waiting (timeout, abort)
 * leaves the entry "abandoned" so its response, when it comes, is released unseen.
 * (Internal: not part of the public API.)
 * @module
 */
import { TimeoutError } from "../errors.js";
import { Deferred } from "../util/wait.js";
import type { Deadline } from "../util/blocking.js";
import type { Frame } from "./frame.js";

/** One request in flight. */
export class Pending {
  /** Sequence number of the request once written (0 before). */
  sequence = 0;
  /** The caller stopped waiting. */
  abandoned = false;
  /** Resolved or rejected. */
  settled = false;
  /** Settles with the response. */
  readonly promise: Promise<Frame>;
  private resolveFn!: (f: Frame) => void;
  private rejectFn!: (e: Error) => void;

  constructor() {
    this.promise = new Promise<Frame>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.promise.catch(() => {});
  }

  /** Delivers the response. */
  resolve(f: Frame): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveFn(f);
  }

  /** Fails the request. */
  reject(e: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(e);
  }

  /**
   * The response, bounded by `deadline` and `signal`: on either the entry is abandoned,
   * `onGiveUp` runs, and the promise rejects with TimeoutError / AbortError.
   */
  wait(deadline: Deadline, signal: AbortSignal | undefined, what: string, onGiveUp: () => void): Promise<Frame> {
    if (this.settled) return this.promise;
    const give = new Deferred<Frame>(
      { timeout: deadline.remaining(), signal, what, timeoutError: () => new TimeoutError(`${what}: no response to request ${this.sequence} in time`) },
      undefined,
      (d) => {
        if (!d.rejected || this.settled) return;
        this.abandoned = true;
        this.reject(d.error as Error);
        onGiveUp();
      },
    );
    this.promise.then(
      (f) => give.resolve(f),
      (e: unknown) => give.reject(e),
    );
    return give.promise;
  }
}
