/**
 * Reuse of large outgoing frames. A fresh multi-megabyte buffer costs several times the copy
 * into it (the kernel maps and zeroes new pages), so frames of {@link POOL_MIN} bytes or more
 * come from blocks of a few sizes per power of two that go back to the pool once every receiver has
 * acknowledged (released) the frame — by then no socket can still be reading from it.
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
