/**
 * What the connections of one `tcp` sender share for writing: the one flush per tick (what a
 * tick wrote to a connection goes out on the next as one vectored write), the batch buffers
 * small frames are copied into (reused across connections once their socket let go of them),
 * the scratch buffer small frames are encoded in, and the references to pooled large frames.
 * (Internal: not part of the public API.)
 * @module
 */
import type { FrameRefs } from "./tcp-pool.js";

/** Frames up to this size are batched (copied) per connection rather than written one by one. */
export const SMALL = 8 << 10;
/** Size of a batch buffer. */
const BATCH = 256 << 10;
/** Batch buffers kept for reuse (per sender). */
const MAX_SPARE_BATCHES = 8;

/**
 * A buffer small frames are appended to; each chunk `[start, end)` is written once and never
 * touched again. Reused once full and every chunk of it was written (the socket let go).
 */
export class Batch {
  /** Start of the part not yet handed to the socket. */
  start = 0;
  /** End of the frames appended so far. */
  end = 0;
  /** Chunks handed to the socket and not yet written. */
  writing = 0;
  /** Full: no more appends; recycle when `writing` drops to 0. */
  retired = false;
  /** A write failed (connection gone): the socket may still hold it, never reuse. */
  failed = false;
  /** @param buf - the batch buffer ({@link BATCH} bytes) */
  constructor(readonly buf: Buffer) {}
}

/** A connection the next flush visits. */
export interface Flushable {
  /** Listed for the next flush ({@link Outbox.schedule} sets it, {@link flush} clears it). */
  scheduled: boolean;
  /** Hands what this tick wrote to the socket; clears {@link scheduled}. */
  flush(): void;
}

/** The writing side one sender's connections share. */
export class Outbox {
  /** Where small frames are encoded before being copied into each connection's batch. */
  readonly scratch = Buffer.allocUnsafeSlow(SMALL);
  /** Spare batch buffers. */
  private readonly spares: Batch[] = [];
  /** Connections written to since the last flush. */
  private touched: Flushable[] = [];
  private flushQueued = false;
  /** Flushes every connection written to since the last flush (queued for the next tick). */
  readonly flush = (): void => {
    this.flushQueued = false;
    const list = this.touched;
    this.touched = [];
    for (const p of list) p.flush();
  };

  /** @param refs - holders of the pooled large frames in flight */
  constructor(readonly refs: FrameRefs) {}

  /** Lists `p` for the next flush (once per tick: the caller checks `scheduled`). */
  schedule(p: Flushable): void {
    p.scheduled = true;
    this.touched.push(p);
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flush);
    }
  }

  /** An empty batch: a spare one, or a new one. */
  batch(): Batch {
    return this.spares.pop() ?? new Batch(Buffer.allocUnsafeSlow(BATCH));
  }

  /** Keeps a fully written batch for reuse. */
  recycle(b: Batch): void {
    if (b.failed || this.spares.length >= MAX_SPARE_BATCHES) return;
    b.start = b.end = 0;
    b.retired = false;
    this.spares.push(b);
  }
}
