/**
 * Splits a byte stream into frames (frame.ts), for every protocol built on them. Every header is
 * checked before its payload is allocated — the connection's own types here, the protocol's by
 * its {@link FrameTable} — so an unknown type, a malformed control frame or a length above the
 * limit ends the stream with a typed error, and nothing larger than the limit is ever allocated.
 * Heartbeats are taken here and not delivered.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { FrameTooLargeError, ProtocolError } from "../errors.js";
import { Slab } from "../util/slab.js";
import { checkNetHeader, FIRST_NET_TYPE, FRAME_HEADER as HEADER_BYTES, NetType, readFrameHeader as readHeader, type FrameHeader as Header } from "./frame.js";
import { ANSWER_BYTES, foreignAnswer, type HandshakeSpec } from "./handshake.js";

/** What a protocol declares about its own frame types (below 0x80). */
export interface FrameTable {
  /**
   * Checks the header of one of the protocol's frames before anything is allocated for it:
   * throws `ProtocolError` for an unknown type, flags or a malformed control frame; returns
   * "too-large" for a message above the limit this end announced (the parser raises
   * `FrameTooLargeError`), else "ok".
   */
  check(h: Header): "ok" | "too-large";
  /** Largest message this end accepts (named in the `FrameTooLargeError`). */
  readonly maxMessage: number;
}

/**
 * Checks a header before anything is allocated for its payload: the connection's own types
 * here, the protocol's by its `table`. Throws `ProtocolError`, or `FrameTooLargeError` for a
 * message above the table's limit. (Transports that carry whole frames, like MQTT messages,
 * check with this too.)
 */
export function checkFrame(table: FrameTable, h: Header): void {
  if (h.type >= FIRST_NET_TYPE) return checkNetHeader(h);
  if (table.check(h) === "too-large") {
    throw new FrameTooLargeError(`a peer announced a ${h.length}-byte message; this end accepts at most ${table.maxMessage} bytes`);
  }
}

/**
 * One frame carried whole by a message-based transport (an MQTT message, a gRPC message): its
 * header checked with `table` ({@link checkFrame}), its length equal to what the message
 * carries, and its payload copied to memory of its own (8-aligned, so typed arrays in it decode
 * as views). Undefined for a PING (the liveness it proves is the caller's). Throws
 * `ProtocolError` or `FrameTooLargeError`. `what` names the message in errors ("MQTT message").
 */
export function readMessageFrame(table: FrameTable, message: Buffer, what: string): { header: Header; payload: Buffer } | undefined {
  if (message.length < HEADER_BYTES) throw new ProtocolError(`${what} of ${message.length} bytes is shorter than a frame header`);
  const h = readHeader(message, 0);
  checkFrame(table, h);
  if (h.length !== message.length - HEADER_BYTES) throw new ProtocolError(`frame says ${h.length} bytes, ${what} carries ${message.length - HEADER_BYTES}`);
  if (h.type === NetType.Ping) return undefined;
  const payload = Buffer.allocUnsafe(h.length);
  message.copy(payload, 0, HEADER_BYTES);
  return { header: h, payload };
}

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

/**
 * Called with each complete frame: its parsed header and the whole frame (header and payload),
 * owned by the callee — a copy, or a view of a read buffer nobody else uses. The payload starts
 * at offset 16 of `frame`.
 */
export type FrameHandler = (h: Header, frame: Buffer) => void;

/** An incremental frame parser for one connection. */
export class FrameParser {
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private current: Header | undefined;
  private payload: Buffer | undefined;
  private fill = 0;
  private readonly slab = new Slab();
  /** The read buffer {@link readTarget} hands out between payloads; replaced once a frame is a view of it. */
  private staging: Buffer | undefined;
  /** Set when {@link push} handed out a view of its chunk. */
  private viewed = false;
  /** The last frame was large: read the next header alone, then its payload in place. */
  private large = false;
  /** A client's stream whose first bytes are not judged yet ({@link expectWelcome}): the protocol, the server, what came so far. */
  private answer: { spec: HandshakeSpec; peer: string; seen: Buffer } | undefined;

  /**
   * @param table - the protocol's frame types
   * @param onFrame - receives each frame (not heartbeats)
   */
  constructor(
    private readonly table: FrameTable,
    private readonly onFrame: FrameHandler,
  ) {}

  /**
   * Declares the stream a client's, of `spec`'s protocol: the server at `peer` (`host:port`)
   * answers its HELLO with a WELCOME. First bytes that cannot begin one (an HTTP server's
   * answer, any other program's) end the stream with the `ProtocolError` of
   * {@link foreignAnswer} ("… is not a Plexus queue server (it answered HTTP)"), before they are
   * read as a frame.
   */
  expectWelcome(spec: HandshakeSpec, peer: string): void {
    this.answer = { spec, peer, seen: Buffer.alloc(0) };
  }

  /** Feeds bytes; throws `ProtocolError` / `FrameTooLargeError` on the first bad header. */
  push(chunk: Buffer): void {
    if (this.answer !== undefined) this.judge(chunk);
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
            this.deliver(h, chunk.subarray(end - h.length - HEADER_BYTES, end));
            continue;
          }
          this.begin(h, chunk, at);
        } else {
          chunk.copy(this.head, this.headFill, at, at + take);
          this.headFill += take;
          if (this.headFill < HEADER_BYTES) return;
          this.begin(readHeader(this.head, 0), this.head, 0);
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
      if (p !== undefined && p.length - HEADER_BYTES >= DIRECT_MIN) return p.subarray(this.fill);
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
      if (this.headFill === HEADER_BYTES) this.begin(readHeader(this.head, 0), this.head, 0);
      return;
    }
    this.fill += n;
    if (this.fill === (this.payload as Buffer).length) this.emit();
  }

  /** True when the stream stopped between frames. */
  get idle(): boolean {
    return this.current === undefined && this.headFill === 0;
  }

  /** Looks at the first bytes of a client's stream ({@link expectWelcome}); throws if they are no Plexus server's. */
  private judge(chunk: Buffer): void {
    const a = this.answer as { spec: HandshakeSpec; peer: string; seen: Buffer };
    const seen = a.seen.length === 0 ? chunk : Buffer.concat([a.seen, chunk]);
    const err = foreignAnswer(a.spec, a.peer, seen);
    if (err !== undefined || seen.length >= ANSWER_BYTES) this.answer = undefined;
    else a.seen = Buffer.from(seen); // (a copy: the chunk may be a read buffer used again)
    if (err !== undefined) throw err;
  }

  private check(h: Header): void {
    checkFrame(this.table, h);
  }

  /**
   * A whole header, from `src[at ..]`: checked, its frame allocated (the header copied in); a
   * frame without payload is delivered at once.
   */
  private begin(h: Header, src: Buffer, at: number): void {
    this.check(h);
    this.current = h;
    this.headFill = 0;
    // 8-aligned memory, so typed arrays in the payload (at offset 16) decode as views.
    const f = this.slab.take(HEADER_BYTES + h.length);
    src.copy(f, 0, at, at + HEADER_BYTES);
    this.payload = f;
    this.fill = HEADER_BYTES;
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

  private deliver(h: Header, frame: Buffer): void {
    this.large = h.length >= DIRECT_MIN;
    if (h.type !== NetType.Ping) this.onFrame(h, frame);
  }
}
