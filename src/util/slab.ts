/**
 * Small buffers carved from larger slabs: one ArrayBuffer per slab instead of one (or one pool
 * refill) per message, which is most of the garbage a small-message stream makes.
 * (Internal: not part of the public API.)
 * @module
 */

/** Bytes of one slab. */
const SLAB_BYTES = 64 << 10;
/** Requests above this size get their own buffer. */
export const SLAB_MAX = 4 << 10;

/** Hands out 8-aligned slices of a slab; a full slab is left to the garbage collector once its slices are. */
export class Slab {
  private buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private at = 0;

  /** An uninitialised buffer of `n` bytes (8-aligned). */
  take(n: number): Buffer {
    if (n > SLAB_MAX) return Buffer.allocUnsafe(n);
    if (this.at + n > SLAB_BYTES) {
      this.buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.at = 0;
    }
    const b = this.buf.subarray(this.at, this.at + n);
    this.at = (this.at + n + 7) & ~7;
    return b;
  }
}
