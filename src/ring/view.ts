/**
 * Typed views of a ring shared by the writer and the readers.
 * (Internal: not part of the public API.)
 * @module
 */
import { FLAG_WRAP, H_WRITE_POS, maxPayload, readGeometry, type RingGeometry } from "./layout.js";
import { ProtocolError } from "../errors.js";

/** The views and sizes both ends of a ring need. */
export class RingView {
  /** The ring's memory. */
  readonly buffer: SharedArrayBuffer;
  /** The whole buffer as 32-bit words (header fields and frame headers). */
  readonly words: Int32Array;
  /** The whole buffer as bytes. */
  readonly bytes: Uint8Array;
  /** Offset of the data region. */
  readonly base: number;
  /** Data region size (a power of two). */
  readonly capacity: number;
  /** `capacity - 1`. */
  readonly mask: number;
  /** Reader slots. */
  readonly maxReaders: number;
  /** Largest payload. */
  readonly maxPayload: number;

  /** @param buffer - a ring (header already initialised) */
  constructor(buffer: SharedArrayBuffer, geo: RingGeometry = readGeometry(buffer)) {
    this.buffer = buffer;
    this.words = new Int32Array(buffer, 0, (geo.headerBytes + geo.capacity) >> 2);
    this.bytes = new Uint8Array(buffer, 0, geo.headerBytes + geo.capacity);
    this.base = geo.headerBytes;
    this.capacity = geo.capacity;
    this.mask = geo.capacity - 1;
    this.maxReaders = geo.maxReaders;
    this.maxPayload = maxPayload(geo.capacity);
  }

  /** The committed write position. */
  writePos(): number {
    return Atomics.load(this.words, H_WRITE_POS);
  }

  /**
   * Reads the frame at position `pos` (after skipping a wrap marker there) and checks it.
   * Returns the frame's position (after any marker); its length is `frameLength(start)`.
   */
  frameStart(pos: number): number {
    const off = pos & this.mask;
    if ((this.words[((this.base + off) >> 2) + 1] & FLAG_WRAP) !== 0) return (pos + this.capacity - off) | 0;
    return pos;
  }

  /** Payload length of the frame at `pos` (no marker there), validated against the ring. */
  frameLength(pos: number): number {
    const off = pos & this.mask;
    const len = this.words[(this.base + off) >> 2];
    if (len < 0 || len > this.maxPayload || off + 16 + len > this.capacity) {
      throw new ProtocolError(`corrupt frame at offset ${off}: length ${len} in a ${this.capacity}-byte ring`);
    }
    return len;
  }

  /** Sequence number of the frame at `pos`. */
  frameSequence(pos: number): number {
    const i = (this.base + (pos & this.mask)) >> 2;
    return (this.words[i + 2] >>> 0) + (this.words[i + 3] >>> 0) * 0x100000000;
  }
}
