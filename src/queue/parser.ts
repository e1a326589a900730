/**
 * Splits a byte stream into queue frames. Every header is checked before its payload is
 * allocated: an unknown type, a malformed control frame or a DATA length above the limit ends
 * the stream with a typed error, and nothing larger than the limit is ever allocated.
 * (Internal: not part of the public API.)
 * @module
 */
import { FrameTooLargeError } from "../errors.js";
import { Slab } from "./slab.js";
import { checkHeader, HEADER_BYTES, readHeader, type Header } from "./wire.js";

/**
 * Frames at least this large that arrive within one read are handed out as views of the read
 * buffer (no copy; the codec copies only buffers it cannot align). Smaller ones are copied, so
 * a small message never keeps a whole read buffer alive.
 */
const ZERO_COPY_MIN = 16 << 10;

/** Bytes of a read buffer when the parser chooses where reads go ({@link FrameParser.readTarget}). */
const READ_BYTES = 64 << 10;

/**
 * Payloads at least this large are read in place: what is missing of one once its header is
 * read goes straight into its buffer, and after such a frame the next read takes only the next
 * header, so a large payload that follows is read whole into its own buffer.
 */
const DIRECT_MIN = 32 << 10;

/** Called with each complete frame; `payload` is owned by the callee (a copy, or a view of a read buffer nobody else uses). */
export type FrameHandler = (h: Header, payload: Buffer) => void;

/** An incremental frame parser for one connection. */
export class FrameParser {
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private current: Header | undefined;
  private payload: Buffer | undefined;
  private fill = 0;
  private static readonly EMPTY = Buffer.alloc(0);
  private readonly slab = new Slab();
  /** The read buffer {@link readTarget} hands out between payloads; replaced once a frame is a view of it. */
  private staging: Buffer | undefined;
  /** Set when {@link push} handed out a view of its chunk. */
  private viewed = false;
  /** The last frame was large: read the next header alone, then its payload in place. */
  private large = false;

  /**
   * @param maxMessage - largest DATA payload accepted
   * @param onFrame - receives each frame
   */
  constructor(
    private readonly maxMessage: number,
    private readonly onFrame: FrameHandler,
  ) {}

  /** Feeds bytes; throws `ProtocolError` / `FrameTooLargeError` on the first bad header. */
  push(chunk: Buffer): void {
    let at = 0;
    const n = chunk.length;
    while (at < n) {
      if (this.current === undefined) {
        const take = Math.min(HEADER_BYTES - this.headFill, n - at);
        if (this.headFill === 0 && take === HEADER_BYTES) {
          const h = readHeader(chunk, at);
          const end = at + HEADER_BYTES + h.length;
          if (h.length >= ZERO_COPY_MIN && end <= n) {
            // The whole frame is in this read: hand out a view of it, no copy.
            this.check(h);
            at = end;
            this.viewed = true;
            this.deliver(h, chunk.subarray(end - h.length, end));
            continue;
          }
          this.begin(h);
        } else {
          chunk.copy(this.head, this.headFill, at, at + take);
          this.headFill += take;
          if (this.headFill < HEADER_BYTES) return;
          this.begin(readHeader(this.head, 0));
        }
        at += take;
        continue;
      }
      const payload = this.payload!;
      const take = Math.min(payload.length - this.fill, n - at);
      chunk.copy(payload, this.fill, at, at + take);
      this.fill += take;
      at += take;
      if (this.fill === payload.length) this.emit();
    }
  }

  /**
   * Where the next socket read should go (a socket reading with `onread`): the rest of a large
   * payload being assembled — the kernel writes it in place, no copy — or, after a large frame,
   * the next header alone (so the payload after it is read in place too), or else a read buffer.
   * Pass what it returned, with the bytes read into it, to {@link read}.
   */
  readTarget(): Buffer {
    const p = this.payload;
    if (this.current !== undefined) {
      // A large payload: all of the rest, however short (a read buffer would copy the next
      // payload's start with it). A small one: the read buffer, with the frames after it.
      if (p !== undefined && p.length >= DIRECT_MIN) return p.subarray(this.fill);
    } else if (this.large) {
      return this.head.subarray(this.headFill);
    }
    return (this.staging ??= Buffer.allocUnsafe(READ_BYTES));
  }

  /** `n` bytes were read into `target` (from {@link readTarget}); throws as {@link push}. */
  read(n: number, target: Uint8Array): void {
    if (target === this.staging) {
      this.viewed = false;
      try {
        this.push(this.staging.subarray(0, n));
      } finally {
        if (this.viewed) this.staging = undefined; // a frame is a view of it: the next read gets a fresh one
      }
      return;
    }
    if (target.buffer === this.head.buffer) {
      this.headFill += n;
      if (this.headFill === HEADER_BYTES) this.begin(readHeader(this.head, 0));
      return;
    }
    this.fill += n;
    if (this.fill === (this.payload as Buffer).length) this.emit();
  }

  /** True when the stream stopped between frames. */
  get idle(): boolean {
    return this.current === undefined && this.headFill === 0;
  }

  private check(h: Header): void {
    if (checkHeader(h, this.maxMessage) === "too-large") {
      throw new FrameTooLargeError(`a peer announced a ${h.length}-byte message; this end accepts at most ${this.maxMessage} bytes`);
    }
  }

  /** A whole header: checked, its payload allocated; a frame without payload is delivered at once. */
  private begin(h: Header): void {
    this.check(h);
    this.current = h;
    this.headFill = 0;
    // 8-aligned memory, so typed arrays in the frame decode as views.
    this.payload = h.length === 0 ? FrameParser.EMPTY : this.slab.take(h.length);
    this.fill = 0;
    if (h.length === 0) this.emit();
  }

  private emit(): void {
    const h = this.current!;
    const p = this.payload!;
    this.current = undefined;
    this.payload = undefined;
    this.fill = 0;
    this.deliver(h, p);
  }

  private deliver(h: Header, payload: Buffer): void {
    this.large = h.length >= DIRECT_MIN;
    this.onFrame(h, payload);
  }
}
