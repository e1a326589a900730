/**
 * What the bridge puts in a NATS message (docs/protocol.md, *The NATS bridge*): a 32-byte header,
 * the sending graph's name and the sending port's id, then the Plexus codec frame of the value —
 * or one chunk of it, when the frame is larger than the server's `max_payload` — or, in a batch,
 * several messages of one port, each with its sequence number. `Reassembler` puts chunks back
 * together, holding at most a bounded amount of memory for incomplete messages.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { FrameTooLargeError, ProtocolError, ResourceExhaustedError } from "../errors.js";
import { copyBytes, encodeChunks, encodedSize, encodeInto, FRAME_HEADER_BYTES, rawFrameLength, writeRawFrame, type FramePlan } from "../codec/index.js";
import { get32, put32 } from "../net/frame.js";

/** "PXN1", little-endian. */
const MAGIC = 0x314e5850;
/** The envelope's version. */
export const ENVELOPE_VERSION = 1;
/** Bytes of the fixed header. */
export const ENVELOPE_HEADER = 32;

/** What a message is. */
export const enum Kind {
  /** A pub/sub message (or a chunk of one). */
  Message = 1,
  /** A request to a service; answered on the NATS reply subject. */
  Request = 2,
  /** A request's answer: the value. */
  Answer = 3,
  /** A request's answer: the failure, `{ code, name, message, handler }`. */
  Failure = 4,
  /** A bridge's announcement of its graph (discovery). */
  Announce = 5,
  /** Several pub/sub messages of one port, in order (never chunked): {@link readBatch}. */
  Batch = 6,
}

/** Bytes before each message of a batch: its frame's length, 0, its sequence number. */
export const BATCH_ITEM_HEADER = 16;

/** The header of a received envelope. */
export interface Envelope {
  /** What it is. */
  kind: Kind;
  /** The graph it left. */
  origin: string;
  /** The port that sent it (a publisher id, for messages). */
  port: string;
  /** The publisher's sequence number (messages), 0 otherwise. */
  sequence: number;
  /** This chunk's index. */
  index: number;
  /** How many chunks the frame was cut into (1: not chunked). */
  count: number;
  /** The whole frame's length (a batch: the bytes of its messages, their headers and padding included). */
  total: number;
  /** How many messages a batch holds (1 otherwise). */
  items: number;
  /** This chunk's bytes (a view of the received message); a batch's messages. */
  chunk: Uint8Array;
}

/** One message of a batch: its sequence number and its codec frame (a view of the batch). */
export interface BatchItem {
  /** The publisher's sequence number. */
  sequence: number;
  /** The codec frame. */
  frame: Uint8Array;
}

/** `n` rounded up to a multiple of 8 (plain arithmetic: `n` may exceed 31 bits). */
function align8(n: number): number {
  return n + ((8 - (n % 8)) % 8);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * `n` bytes that are written whole before anyone reads them: not zeroed first (a 1 MiB message
 * would otherwise cost a memset of its own). A plain `Uint8Array` view, so that what the codec
 * decodes from it is what it would decode from any received message.
 */
function uninitialized(n: number): Uint8Array {
  const b = Buffer.allocUnsafe(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** The bytes of a graph name or a port id (1..255 UTF-8 bytes; a port id may be empty). */
export function label(text: string, what: string, empty = false): Uint8Array {
  const b = encoder.encode(text);
  if (b.length > 255 || (b.length === 0 && !empty)) throw new ProtocolError(`${what} must be ${empty ? 0 : 1}..255 bytes of UTF-8, got ${b.length}`);
  return b;
}

/** Writes a header at the start of `out`; returns where the payload starts. */
function writeHeader(out: Uint8Array, kind: Kind, origin: Uint8Array, port: Uint8Array, sequence: number, index: number, count: number, total: number, items = 0): number {
  put32(out, 0, MAGIC);
  out[4] = ENVELOPE_VERSION;
  out[5] = kind;
  out[6] = origin.length;
  out[7] = port.length;
  f64[0] = sequence;
  out.set(f64Bytes, 8);
  put32(out, 16, index);
  put32(out, 20, count);
  put32(out, 24, total);
  put32(out, 28, items);
  out.set(origin, ENVELOPE_HEADER);
  out.set(port, ENVELOPE_HEADER + origin.length);
  return ENVELOPE_HEADER + origin.length + port.length;
}

/** Who sends: the graph's name and the port's id, as bytes, made once per port. */
export interface Sender {
  /** The graph's name. */
  readonly origin: Uint8Array;
  /** The port's id. */
  readonly port: Uint8Array;
}

/** Gives `n` bytes for an envelope (written whole before anyone reads them). */
export type EnvelopeMemory = (n: number) => Uint8Array;

/**
 * The NATS payloads of one value: one when its frame fits `maxPayload`, else chunks of it (each
 * a buffer of its own). Throws `EncodeError` for a value the codec refuses, `FrameTooLargeError`
 * above `maxMessage`.
 */
export function envelopes(kind: Kind, from: Sender, sequence: number, value: unknown, maxPayload: number, maxMessage: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  sendEnvelopes(kind, from, sequence, encodedSize(value), maxPayload, maxMessage, (payload) => out.push(payload));
  return out;
}

/**
 * The one NATS payload of a lone message whose value is bytes framed raw (a whole `Uint8Array`
 * or `Buffer`), written in one pass into `memory` — the same bytes as {@link sendEnvelopes}
 * writes. Undefined, with nothing taken, for any other value, a frame above `maxMessage`, or
 * one that does not fit `maxPayload` (it needs chunks): {@link sendEnvelopes} takes those.
 */
export function loneRawEnvelope(from: Sender, sequence: number, value: unknown, maxPayload: number, maxMessage: number, memory: EnvelopeMemory): Uint8Array | undefined {
  const frameLength = rawFrameLength(value);
  const head = ENVELOPE_HEADER + from.origin.length + from.port.length;
  if (frameLength < 0 || frameLength > maxMessage || head + frameLength > maxPayload) return undefined;
  const out = memory(head + frameLength);
  writeHeader(out, Kind.Message, from.origin, from.port, sequence, 0, 1, frameLength);
  writeRawFrame(value as Uint8Array, out, head);
  return out;
}

/**
 * Where the frame of `data` starts if it is a whole message (kind 1, one chunk) of the sender
 * whose names are `names` (its graph's name, `o` bytes, then its port id) with the sequence
 * number `sequence`; else -1, and {@link readEnvelope} tells what it is. What the receiving
 * bridge checks for the next message of a sender it knows, without decoding any name.
 */
export function loneFrameAt(data: Uint8Array, names: Uint8Array, o: number, sequence: number): number {
  const head = ENVELOPE_HEADER + names.length;
  if (data.length < head || get32(data, 0) !== MAGIC || data[4] !== ENVELOPE_VERSION || data[5] !== Kind.Message || data[6] !== o || o + (data[7] as number) !== names.length) return -1;
  if (get32(data, 16) !== 0 || get32(data, 20) !== 1 || get32(data, 24) !== data.length - head || get32(data, 28) !== 0 || !holdsAt(data, ENVELOPE_HEADER, names)) return -1;
  for (let i = 0; i < 8; i++) f64Bytes[i] = data[8 + i] as number;
  return f64[0] === sequence ? head : -1;
}

/**
 * The names {@link loneFrameAt} compares: the graph's name then the port id, as UTF-8. (Made
 * from the decoded names: one that began with a byte order mark, which decoding drops, never
 * matches, and its messages take the full way.)
 */
export function senderNames(origin: string, port: string): { names: Uint8Array; o: number } {
  const o = encoder.encode(origin);
  const p = encoder.encode(port);
  const names = new Uint8Array(o.length + p.length);
  names.set(o);
  names.set(p, o.length);
  return { names, o: o.length };
}

/**
 * Writes the NATS payloads of a planned frame ({@link envelopes}) and hands each to `send` as
 * soon as it is written, in order: the value is encoded once, straight into the (first) payload;
 * chunks copy their part of it. Each payload is taken from `memory` just before it is written, so
 * memory that `send` gave away is taken back only after it did (an {@link EnvelopeArena}). Throws
 * before anything is sent (`FrameTooLargeError`), or what `send` throws. Returns the payloads sent.
 */
export function sendEnvelopes(
  kind: Kind,
  from: Sender,
  sequence: number,
  plan: FramePlan,
  maxPayload: number,
  maxMessage: number,
  send: (payload: Uint8Array) => void,
  memory: EnvelopeMemory = uninitialized,
): number {
  const head = ENVELOPE_HEADER + from.origin.length + from.port.length;
  const total = plan.byteLength;
  if (total > maxMessage) throw new FrameTooLargeError(`a message of ${total} bytes is larger than the bridge's maxMessage (${maxMessage})`);
  const room = maxPayload - head;
  if (room < 1) throw new FrameTooLargeError(`the NATS server's max_payload (${maxPayload}) leaves no room after the bridge's ${head}-byte header`);
  if (total <= room) {
    const out = memory(head + total);
    writeHeader(out, kind, from.origin, from.port, sequence, 0, 1, total);
    encodeInto(plan, out, head);
    send(out);
    return 1;
  }
  if (kind !== Kind.Message) throw new FrameTooLargeError(`a request or answer of ${total} bytes does not fit the NATS server's max_payload (${maxPayload}); only pub/sub messages are cut into chunks`);
  // The frame's pieces (its head, then each buffer as the caller's own memory) are copied once,
  // straight into the chunks.
  const pieces = encodeChunks(plan);
  const count = Math.ceil(total / room);
  let piece = 0;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const length = Math.min(room, total - i * room);
    const msg = memory(head + length);
    writeHeader(msg, kind, from.origin, from.port, sequence, i, count, total);
    for (let filled = 0; filled < length; ) {
      const p = pieces[piece] as Uint8Array;
      const n = Math.min(length - filled, p.length - at);
      copyBytes(msg, head + filled, n === p.length ? p : p.subarray(at, at + n));
      filled += n;
      at += n;
      if (at === p.length) {
        piece++;
        at = 0;
      }
    }
    send(msg);
  }
  return count;
}

/**
 * Bytes of a batch ({@link sendBatch}) from `from` before its messages: the header, the names
 * and padding to a multiple of 8. Each message then adds {@link batchItemBytes}.
 */
export function batchHeadBytes(from: Sender): number {
  return align8(ENVELOPE_HEADER + from.origin.length + from.port.length);
}

/** Bytes of one message in a batch: {@link BATCH_ITEM_HEADER}, its frame and padding to a multiple of 8. */
export function batchItemBytes(frameBytes: number): number {
  return BATCH_ITEM_HEADER + align8(frameBytes);
}

/**
 * Writes several messages of one port (planned frames, in order of their sequence numbers) as
 * one batch envelope ({@link batchHeadBytes} and a {@link batchItemBytes} per message), taken
 * from `memory`, and hands it to `send`. The caller keeps the batch within the server's `max_payload`.
 */
export function sendBatch(from: Sender, sequences: readonly number[], plans: readonly FramePlan[], send: (payload: Uint8Array) => void, memory: EnvelopeMemory = uninitialized): void {
  const start = batchHeadBytes(from);
  let items = 0;
  for (const p of plans) items += batchItemBytes(p.byteLength);
  const out = memory(start + items);
  const names = writeHeader(out, Kind.Batch, from.origin, from.port, sequences[0] ?? 0, 0, 1, items, plans.length);
  out.fill(0, names, start);
  let at = start;
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i] as FramePlan;
    put32(out, at, plan.byteLength);
    put32(out, at + 4, 0);
    f64[0] = sequences[i] as number;
    out.set(f64Bytes, at + 8);
    const end = at + BATCH_ITEM_HEADER + encodeInto(plan, out, at + BATCH_ITEM_HEADER);
    const next = at + batchItemBytes(plan.byteLength);
    out.fill(0, end, next);
    at = next;
  }
  send(out);
}

/**
 * The messages of a batch envelope ({@link readEnvelope} checked its header): a `ProtocolError`
 * if they do not fill it exactly, or their sequence numbers do not rise; `FrameTooLargeError` for
 * a frame above `maxMessage`. Nothing is allocated for the frames (views of the envelope).
 */
export function readBatch(e: Envelope, maxMessage: number): BatchItem[] {
  const data = e.chunk;
  const out: BatchItem[] = [];
  let at = 0;
  let last = -1;
  for (let i = 0; i < e.items; i++) {
    if (at + BATCH_ITEM_HEADER > data.length) throw new ProtocolError(`a batch of ${e.items} messages ends after ${i}`);
    const length = get32(data, at);
    if (length > maxMessage) throw new FrameTooLargeError(`a bridged message of ${length} bytes from ${e.origin} is larger than maxMessage (${maxMessage})`);
    if (length < FRAME_HEADER_BYTES) throw new ProtocolError(`message ${i} of a batch is ${length} bytes, shorter than a codec frame's header`);
    if (length > data.length - at - BATCH_ITEM_HEADER) throw new ProtocolError(`message ${i} of a batch runs past its end`);
    f64Bytes.set(data.subarray(at + 8, at + 16));
    const sequence = f64[0];
    if (!Number.isInteger(sequence) || sequence <= last) throw new ProtocolError(`a batch's sequence numbers do not rise (${sequence} after ${last})`);
    const next = at + batchItemBytes(length);
    if (next > data.length) throw new ProtocolError(`message ${i} of a batch runs past its end (its padding)`);
    out.push({ sequence, frame: data.subarray(at + BATCH_ITEM_HEADER, at + BATCH_ITEM_HEADER + length) });
    last = sequence;
    at = next;
  }
  if (at !== data.length) throw new ProtocolError(`a batch of ${e.items} messages carries ${data.length - at} bytes more`);
  return out;
}

/** Bytes of an {@link EnvelopeArena}'s slab; envelopes above half of it get memory of their own. */
const SLAB_BYTES = 4 << 20;

/** Full slabs kept for reuse, at most. */
const SPARE_SLABS = 2;

/**
 * Memory for the envelopes a bridge publishes, reused instead of a new buffer per message (which
 * costs an allocation and, at tens of MB/s, a good part of the process's time in garbage
 * collection). Envelopes are cut one after the other from a slab. When a slab is full, the
 * arena asks the NATS client to `flush()` (a PING the server answers after everything published
 * before it): once that resolves, the server has every envelope of the slab, so the client holds
 * none of them, and the slab is kept for reuse. Until then (a slow or disconnected server) new
 * slabs are taken; a flush that fails (the connection closed) leaves its slab to the collector.
 */
export class EnvelopeArena {
  private slab: Uint8Array | undefined;
  private used = 0;
  private readonly spare: Uint8Array[] = [];
  /** Gives `n` bytes (pass as an {@link EnvelopeMemory}); everything taken before must have been handed to the NATS client. */
  readonly take: EnvelopeMemory = (n) => this.cut(n);

  /** @param flush - resolves once the server has everything published so far (`nc.flush()`) */
  constructor(private readonly flush: () => Promise<void>) {}

  private cut(n: number): Uint8Array {
    if (n > SLAB_BYTES / 2) return uninitialized(n);
    if (this.slab === undefined || this.used + n > this.slab.length) {
      if (this.slab !== undefined) this.retire(this.slab);
      this.slab = this.spare.pop() ?? uninitialized(SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    this.used += n;
    return out;
  }

  /** A full slab: reusable once a flush issued after its last envelope completes. */
  private retire(slab: Uint8Array): void {
    this.flush().then(
      () => {
        if (this.spare.length < SPARE_SLABS) this.spare.push(slab);
      },
      () => {}, // closed: the slab goes with the connection
    );
  }
}

/** The names of the last envelope read: a stream from one sender decodes them once. */
const last = { o: -1, names: new Uint8Array(0), origin: "", port: "" };

/** True if `data` holds `b` at `at` (no view made). */
function holdsAt(data: Uint8Array, at: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (data[at + i] !== b[i]) return false;
  return true;
}

/** Reads an envelope's header (a `ProtocolError` for anything that is not one; nothing is allocated for the payload). */
export function readEnvelope(data: Uint8Array): Envelope {
  if (data.length < ENVELOPE_HEADER) throw new ProtocolError(`a bridge message of ${data.length} bytes is shorter than its ${ENVELOPE_HEADER}-byte header`);
  if (get32(data, 0) !== MAGIC) throw new ProtocolError("not a Plexus bridge message (bad magic)");
  if (data[4] !== ENVELOPE_VERSION) throw new ProtocolError(`bridge message version ${data[4]}, this bridge speaks ${ENVELOPE_VERSION}`);
  const kind = data[5] as Kind;
  if (kind < Kind.Message || kind > Kind.Batch) throw new ProtocolError(`unknown bridge message kind ${kind}`);
  const o = data[6];
  const p = data[7];
  if (o === 0 || data.length < ENVELOPE_HEADER + o + p) throw new ProtocolError("a bridge message's names run past its end");
  for (let i = 0; i < 8; i++) f64Bytes[i] = data[8 + i] as number; // no view made per message
  const sequence = f64[0] as number;
  const index = get32(data, 16);
  const count = get32(data, 20);
  const total = get32(data, 24);
  const items = get32(data, 28);
  if (kind === Kind.Batch ? count !== 1 || items === 0 : items !== 0) throw new ProtocolError(`a bridge message of kind ${kind} with ${count} chunks and ${items} batched messages`);
  if (!Number.isInteger(sequence) || sequence < 0) throw new ProtocolError("a bridge message's sequence number is not a non-negative integer");
  if (count === 0 || index >= count) throw new ProtocolError(`a bridge message's chunk ${index} of ${count}`);
  if (count > total) throw new ProtocolError(`a bridge message of ${total} bytes cannot have ${count} chunks`);
  if (o !== last.o || o + p !== last.names.length || !holdsAt(data, ENVELOPE_HEADER, last.names)) {
    const names = data.subarray(ENVELOPE_HEADER, ENVELOPE_HEADER + o + p);
    try {
      last.origin = decoder.decode(names.subarray(0, o));
      last.port = decoder.decode(names.subarray(o));
    } catch (err) {
      last.o = -1;
      throw new ProtocolError("a bridge message's names are not UTF-8", { cause: err });
    }
    last.o = o;
    last.names = names.slice();
  }
  const { origin, port } = last;
  const start = kind === Kind.Batch ? align8(ENVELOPE_HEADER + o + p) : ENVELOPE_HEADER + o + p;
  if (data.length < start) throw new ProtocolError("a batch's names run past its end");
  const chunk = data.subarray(start);
  if (count === 1 && chunk.length !== total) throw new ProtocolError(`a bridge message says ${total} bytes and carries ${chunk.length}`);
  return { kind, origin, port, sequence, index, count, total, items: kind === Kind.Batch ? items : 1, chunk };
}

/** An incomplete message. */
interface Partial {
  readonly key: string;
  readonly sequence: number;
  readonly count: number;
  readonly frame: Uint8Array;
  next: number;
  filled: number;
}

/**
 * What {@link Reassembler.add} gives back: the frame, its sequence number, and whether the
 * frame is the reassembler's own memory (a chunked message), which {@link Reassembler.recycle}
 * takes back once nothing refers to it any more.
 */
export type Assembled = { frame: Uint8Array; sequence: number; owned: boolean } | undefined;

/** Buffers kept at most for the next chunked messages. */
const SPARE_BUFFERS = 2;
/** Larger buffers are not kept (a rare huge message does not hold its memory for ever). */
const SPARE_MAX_BYTES = 16 << 20;

/**
 * Puts chunked messages back together, per sender (graph and port): chunks of one message come
 * in order (one NATS connection, one subject). At most `maxPending` bytes are held for
 * incomplete messages: the oldest is dropped to make room (`ResourceExhaustedError`). A chunk
 * that does not continue the message it belongs to drops that message (`ProtocolError`).
 */
export class Reassembler {
  private readonly partial = new Map<string, Partial>();
  private held = 0;
  /** Memory of frames given back, for the next messages (a new buffer per message would cost its allocation and garbage collection). */
  private readonly spare: Uint8Array[] = [];
  /** Incomplete messages dropped (a lost or bad chunk, no room). */
  dropped = 0;

  /**
   * @param maxMessage - the largest frame accepted (`FrameTooLargeError` above)
   * @param maxPending - bytes held at most for incomplete messages
   */
  constructor(
    private readonly maxMessage: number,
    private readonly maxPending: number,
  ) {}

  /** Bytes held for incomplete messages. */
  get pending(): number {
    return this.held;
  }

  /**
   * Adds a received envelope: the whole frame once its last chunk came (a view of the
   * envelope itself when it was not chunked), else undefined. Throws what was wrong with it —
   * the message it belonged to is then dropped, and the next one starts afresh.
   */
  add(e: Envelope): Assembled {
    if (e.total > this.maxMessage) throw new FrameTooLargeError(`a bridged message of ${e.total} bytes from ${e.origin} is larger than maxMessage (${this.maxMessage})`);
    if (e.count === 1) return { frame: e.chunk, sequence: e.sequence, owned: false };
    const key = `${e.origin}\u0000${e.port}`;
    let p = this.partial.get(key);
    if (p !== undefined && (p.sequence !== e.sequence || e.index !== p.next)) {
      this.drop(p);
      if (e.index !== 0 || p.sequence === e.sequence) throw new ProtocolError(`chunk ${e.index} of message ${e.sequence} from ${e.origin} came out of order (expected ${p.next} of message ${p.sequence}); the message is dropped`);
      p = undefined;
    }
    if (p === undefined) {
      if (e.index !== 0) {
        this.dropped++;
        throw new ProtocolError(`chunk ${e.index} of message ${e.sequence} from ${e.origin} without its start; dropped`);
      }
      if (e.total > this.maxPending) throw new FrameTooLargeError(`a chunked message of ${e.total} bytes is larger than the bridge holds for incomplete messages (${this.maxPending})`);
      let evicted = 0;
      while (this.held + e.total > this.maxPending) {
        const oldest = this.partial.values().next().value as Partial;
        this.drop(oldest);
        evicted++;
      }
      p = { key, sequence: e.sequence, count: e.count, frame: this.memory(e.total), next: 0, filled: 0 };
      this.partial.set(key, p);
      this.held += e.total;
      if (evicted > 0) {
        this.add(e); // never throws again: there is room now, and p is new
        throw new ResourceExhaustedError(`${evicted} incomplete bridged message(s) dropped to hold a new one (maxPending ${this.maxPending} bytes)`);
      }
    }
    if (e.count !== p.count || p.filled + e.chunk.length > p.frame.length || (e.index === e.count - 1 && p.filled + e.chunk.length !== p.frame.length)) {
      this.drop(p);
      throw new ProtocolError(`chunk ${e.index} of message ${e.sequence} from ${e.origin} does not fit the message (${e.total} bytes in ${e.count} chunks); dropped`);
    }
    p.frame.set(e.chunk, p.filled);
    p.filled += e.chunk.length;
    p.next++;
    if (p.next < p.count) return undefined;
    this.partial.delete(key);
    this.held -= p.frame.length;
    return { frame: p.frame, sequence: p.sequence, owned: true };
  }

  /**
   * Takes back the memory of a frame that {@link add} returned as `owned`, once nothing refers to
   * it (the next chunked messages are put together in it).
   */
  recycle(frame: Uint8Array): void {
    if (frame.byteOffset !== 0 || !(frame.buffer instanceof ArrayBuffer) || frame.buffer.byteLength > SPARE_MAX_BYTES) return;
    if (this.spare.length >= SPARE_BUFFERS) this.spare.shift();
    this.spare.push(new Uint8Array(frame.buffer));
  }

  /** `n` bytes for a new message: a spare buffer large enough (but not more than twice) or a new one. */
  private memory(n: number): Uint8Array {
    for (let i = 0; i < this.spare.length; i++) {
      const b = this.spare[i] as Uint8Array;
      if (b.length >= n && b.length <= 2 * n) {
        this.spare.splice(i, 1);
        return b.subarray(0, n);
      }
    }
    const b = Buffer.allocUnsafeSlow(n); // never a slice of Node's shared pool: all of it can be reused
    return new Uint8Array(b.buffer, b.byteOffset, n);
  }

  /** Drops whatever is incomplete, and the spare memory. */
  clear(): void {
    for (const p of [...this.partial.values()]) this.drop(p);
    this.spare.length = 0;
  }

  private drop(p: Partial): void {
    if (this.partial.get(p.key) !== p) return;
    this.partial.delete(p.key);
    this.held -= p.frame.length;
    this.dropped++;
    this.recycle(p.frame);
  }
}
