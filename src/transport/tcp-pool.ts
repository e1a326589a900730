/**
 * Reuse of large outgoing frames. A fresh multi-megabyte buffer costs several times the copy
 * into it (the kernel maps and zeroes new pages), so frames of {@link POOL_MIN} bytes or more
 * come from blocks of a few sizes per power of two that go back to the pool once every receiver has
 * acknowledged (released) the frame — by then no socket can still be reading from it.
 * {@link FrameRefs} counts who still holds each one.
 * (Internal: not part of the public API.)
 * @module
 */

/** Frames at least this large are pooled; smaller ones come from Node's own allocator. */
export const POOL_MIN = 64 << 10;

/** The block size for `size` bytes: 8 classes per power of two (at most 12.5% unused). */
export function sizeClass(size: number): number {
  let octave = POOL_MIN;
  while (octave * 2 <= size) octave *= 2;
  const step = octave / 8;
  return Math.ceil(size / step) * step;
}

/** Free blocks by size class, bounded in total bytes. */
export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooled = 0;

  /** @param maxBytes - most bytes kept in free blocks */
  constructor(private readonly maxBytes: number) {}

  /** A buffer of exactly `size` bytes; contents undefined. */
  take(size: number): Buffer {
    if (size < POOL_MIN) return Buffer.allocUnsafe(size);
    const cls = sizeClass(size);
    const block = this.free.get(cls)?.pop();
    if (block === undefined) return Buffer.allocUnsafeSlow(cls).subarray(0, size);
    this.pooled -= cls;
    return Buffer.from(block, 0, size);
  }

  /** Returns the block under `buf` (from {@link take}); nothing may use `buf` any more. */
  give(buf: Buffer): void {
    const block = buf.buffer;
    const cls = block.byteLength;
    if (buf.length < POOL_MIN || !(block instanceof ArrayBuffer) || this.pooled + cls > this.maxBytes) return;
    let list = this.free.get(cls);
    if (list === undefined) this.free.set(cls, (list = []));
    list.push(block);
    this.pooled += cls;
  }
}

/**
 * Holders of pooled frames in flight: one for each receiver a frame was written to (until it
 * acknowledges the frame) or queued for, and one while the sender hands it out. The last holder
 * to let go returns the frame to the pool.
 */
export class FrameRefs {
  private readonly counts = new Map<Buffer, number>();

  /** @param pool - where frames go back */
  constructor(private readonly pool: FramePool) {}

  /** Starts counting `frame` (a pooled frame being handed out) with its first holder. */
  hold(frame: Buffer): void {
    this.counts.set(frame, 1);
  }

  /** Counts one more holder; false if `frame` is not counted (not pooled, or forgotten). */
  ref(frame: Buffer): boolean {
    const n = this.counts.get(frame);
    if (n === undefined) return false;
    this.counts.set(frame, n + 1);
    return true;
  }

  /** Drops one holder; the last one returns the frame to the pool. */
  unref(frame: Buffer): void {
    const n = this.counts.get(frame);
    if (n === undefined) return;
    if (n > 1) {
      this.counts.set(frame, n - 1);
      return;
    }
    this.counts.delete(frame);
    this.pool.give(frame);
  }

  /** Stops counting `frame`: a socket may still read it, so it is never reused (only collected). */
  forget(frame: Buffer): void {
    this.counts.delete(frame);
  }
}
