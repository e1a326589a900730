/**
 * Samples and the bounded queue a subscriber reads them from.
 * @module
 */
import { AsyncQueue } from "../util/async-queue.js";

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

/** A sample and what holds its memory (a ring frame, released with it; none for a value handed over in one thread). */
export class SampleImpl<T> implements Sample<T> {
  private released = false;
  constructor(
    readonly value: T,
    readonly topic: string,
    readonly sequence: number,
    readonly publisher: string,
    private readonly holder: { release(): void } | undefined,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.holder?.release();
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/** The bounded queue a subscriber reads its samples from (policies `block`, `drop-oldest`, `fail`). */
export class SampleQueue<T> extends AsyncQueue<Sample<T>> {}
