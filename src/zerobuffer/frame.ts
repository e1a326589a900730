/**
 * A received frame: a zero-copy view of the ring, released in FIFO order.
 * @module
 */

/** What a frame tells when it is released (implemented by the readers; not part of the public API). */
export interface ReleaseTarget {
  /** Credits every released frame at the head of the FIFO back to the writer. @internal */
  releaseFrames(): void;
}

/**
 * One frame read from a buffer. `data` is a view of the shared memory itself: read-only by
 * contract and valid until the frame is released — `release()`, a `using` declaration, or the
 * next turn of a `for await` loop. Frames are given back to the writer in the order they were
 * read: releasing a later frame first only marks it, and its space returns with the earlier
 * ones (docs/zerobuffer-protocol.md §6: space is counted, so an out-of-order release would let
 * the writer overwrite a frame still held).
 */
export class Frame implements Disposable {
  /** True once released. */
  released = false;

  /**
   * @param target - the owner (reader) to notify on release
   * @param data - the frame's bytes, a view of the ring
   * @param sequence - the writer's sequence number (from 1)
   * @param total - bytes the frame occupies in the ring (header included)
   * @internal
   */
  constructor(
    private readonly target: ReleaseTarget,
    /** The frame's bytes: a view of the shared memory, valid until released. */
    readonly data: Uint8Array,
    /** Sequence number given by the writer (from 1, one per frame). */
    readonly sequence: number,
    /** Bytes the frame occupies in the ring, header included. @internal */
    readonly total: number,
  ) {}

  /** Number of data bytes. */
  get size(): number {
    return this.data.length;
  }

  /** Gives the frame's space back to the writer (in FIFO order); idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.target.releaseFrames();
  }

  /** Same as {@link release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/** An entry of a reader's release FIFO: a frame, or wasted bytes (a wrap) credited in turn. @internal */
export interface Held {
  /** Bytes to credit to `payload_free_bytes`. */
  total: number;
  /** The frame, or undefined for a wrap's tail (credited as soon as it reaches the head). */
  frame: { released: boolean } | undefined;
}

/**
 * A FIFO of held frames and wrap tails. `drain` pops the released head entries and credits
 * them, so space returns in ring order whatever the order of the releases. @internal
 */
export class ReleaseFifo {
  private items: Held[] = [];
  private head = 0;

  /** Entries not yet credited. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends an entry. */
  push(total: number, frame: { released: boolean } | undefined): void {
    this.items.push({ total, frame });
  }

  /**
   * Pops released entries from the head; `credit(total, isFrame)` is called for each in order.
   */
  drain(credit: (total: number, isFrame: boolean) => void): void {
    while (this.head < this.items.length) {
      const e = this.items[this.head] as Held;
      if (e.frame !== undefined && !e.frame.released) break;
      this.head++;
      credit(e.total, e.frame !== undefined);
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
  }
}
