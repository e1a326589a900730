/**
 * One `put()`: a message encoded once, handed to one or more sessions, settled when every one
 * acknowledged it (resolve) or the first one failed, the timeout passed or the signal aborted
 * (reject). Every put settles exactly once.
 * @internal
 * @module
 */
import { AbortError, TimeoutError } from "../errors.js";

/** A put's message on its way to one peer. */
export interface Entry {
  /** The put it belongs to. */
  readonly op: PutOp;
  /**
   * The frame as pieces: the first starts with 12 bytes of room for the
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
  private signal: AbortSignal | undefined;
  private readonly onAbort = (): void => this.fail(new AbortError("put aborted", { cause: this.signal?.reason }));
  /** Called once when the put settles (to drop entries still waiting for a slot). */
  onSettle: (() => void) | undefined;

  /**
   * @param peers - acknowledgements needed
   * @param timeout - ms before `TimeoutError` (Infinity: none)
   * @param signal - aborts with `AbortError`
   */
  constructor(peers: number, timeout: number, signal: AbortSignal | undefined) {
    this.remaining = peers;
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (timeout !== Infinity) {
      this.timer = setTimeout(() => this.fail(new TimeoutError(`put not acknowledged within ${timeout} ms`)), timeout);
    }
    if (signal !== undefined) {
      this.signal = signal;
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** One peer acknowledged. */
  done(): void {
    if (this.settled) return;
    if (--this.remaining === 0) {
      this.cleanup();
      this.resolveFn();
    }
  }

  /** Rejects the put (first error wins). */
  fail(err: Error): void {
    if (this.settled) return;
    this.cleanup();
    this.rejectFn(err);
  }

  private cleanup(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this.onAbort);
    this.onSettle?.();
  }
}
