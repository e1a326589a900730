/**
 * Frame -> value. Every out-of-band buffer comes back as a view of its type over the frame's
 * own memory (no copy) when the frame's alignment allows it; the frame is checked completely
 * (header, table, body profile) before anything is built, and anything wrong is a
 * {@link ProtocolError}.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { InvalidArgumentError, ProtocolError } from "../errors.js";
import {
  BufferType,
  E_LENGTH,
  E_OFFSET,
  E_TYPE,
  ELEMENT_BYTES,
  ENTRY_BYTES,
  FLAG_RAW_BUFFER,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameKind,
  H_BODY_LENGTH,
  H_BUFFER_COUNT,
  H_FLAGS,
  H_KIND,
  H_MAGIC,
  H_VERSION,
  HEADER_BYTES,
  MAX_BUFFER_TYPE,
  TYPED_ARRAYS,
  BUFFER_ALIGN,
} from "./format.js";
import { unpackBody } from "./msgpack.js";
import { checkBody } from "./profile.js";

/** Little-endian uint32 at `at`. */
function get32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/**
 * The flags of the well-formed raw frame (a bare `Uint8Array` or `Buffer`, the usual payload)
 * that is `bytes[at .. end)` — 0, or `FLAG_RAW_BUFFER` for a Buffer — or -1 if it is anything
 * else (another kind, or malformed: {@link decode} says how). Reads the header only: lets a
 * caller take the payload in place or copy it out without a pass through the decoder.
 */
export function rawFrameFlags(bytes: Uint8Array, at: number, end: number): number {
  const n = end - at;
  if (n < HEADER_BYTES || bytes[at + H_KIND] !== FrameKind.Raw || get32(bytes, at + H_MAGIC) !== FRAME_MAGIC || bytes[at + H_VERSION] !== FRAME_VERSION) return -1;
  const flags = bytes[at + H_FLAGS] | (bytes[at + H_FLAGS + 1] << 8);
  if ((flags & ~FLAG_RAW_BUFFER) !== 0 || get32(bytes, at + H_BUFFER_COUNT) !== 0 || get32(bytes, at + H_BODY_LENGTH) !== n - HEADER_BYTES) return -1;
  return flags;
}

/**
 * Decodes the frame `bytes[at .. end)` (like {@link decode}, views of `bytes` included), a raw
 * one without a view of the frame first: a `Uint8Array` (or `Buffer`) view of its payload,
 * whatever kind of `Uint8Array` `bytes` is.
 */
export function decodeAt(bytes: Uint8Array, at: number, end: number): unknown {
  const flags = rawFrameFlags(bytes, at, end);
  return flags < 0 ? decode(bytes.subarray(at, end)) : rawView(bytes, at + HEADER_BYTES, end - at - HEADER_BYTES, flags);
}

/** The payload of a raw frame, `bytes[start .. start + n)`: a `Buffer` (flag) or a plain `Uint8Array` view, whatever `bytes` is. */
function rawView(bytes: Uint8Array, start: number, n: number, flags: number): Uint8Array {
  const offset = bytes.byteOffset + start;
  return flags & FLAG_RAW_BUFFER ? Buffer.from(bytes.buffer, offset, n) : new Uint8Array(bytes.buffer, offset, n);
}

/**
 * True if `bytes[at .. end)` starts like a value frame without out-of-band buffers: what
 * {@link decode} makes of it holds no view of `bytes`.
 */
export function isFlatValueFrame(bytes: Uint8Array, at: number, end: number): boolean {
  return end - at >= HEADER_BYTES && bytes[at + H_KIND] === FrameKind.Value && get32(bytes, at + H_BUFFER_COUNT) === 0;
}

/**
 * Decodes a frame. Typed arrays, `Buffer`s and `DataView`s in the value are views into
 * `frame`'s memory, valid as long as that memory is (read-only by contract; copy what you keep).
 * A raw frame decodes as a `Uint8Array` (or `Buffer`) view of its payload. Throws
 * {@link ProtocolError} for anything that is not a well-formed frame.
 */
export function decode(frame: Uint8Array): unknown {
  if (!(frame instanceof Uint8Array)) throw new InvalidArgumentError("decode: frame must be a Uint8Array");
  const size = frame.byteLength;
  if (size < HEADER_BYTES) throw new ProtocolError(`frame of ${size} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  if (get32(frame, H_MAGIC) !== FRAME_MAGIC) throw new ProtocolError("not a Plexus frame (bad magic)");
  if (frame[H_VERSION] !== FRAME_VERSION) throw new ProtocolError(`unsupported frame version ${frame[H_VERSION]} (this build reads ${FRAME_VERSION})`);
  const kind = frame[H_KIND];
  const flags = frame[H_FLAGS] | (frame[H_FLAGS + 1] << 8);
  const bodyLength = get32(frame, H_BODY_LENGTH);
  const count = get32(frame, H_BUFFER_COUNT);
  if (kind === FrameKind.Raw) {
    if ((flags & ~FLAG_RAW_BUFFER) !== 0) throw new ProtocolError(`raw frame with unknown flags 0x${flags.toString(16)}`);
    if (count !== 0) throw new ProtocolError(`raw frame with ${count} buffers`);
    if (bodyLength !== size - HEADER_BYTES) throw new ProtocolError(`raw frame says ${bodyLength} bytes but carries ${size - HEADER_BYTES}`);
    // A plain Uint8Array whatever `frame` is (a Buffer's subarray would be a Buffer).
    return rawView(frame, HEADER_BYTES, bodyLength, flags);
  }
  if (kind !== FrameKind.Value) throw new ProtocolError(`unknown frame kind ${kind}`);
  if (flags !== 0) throw new ProtocolError(`value frame with unknown flags 0x${flags.toString(16)}`);
  if (count > (size - HEADER_BYTES) / ENTRY_BYTES) throw new ProtocolError(`buffer table of ${count} entries does not fit in a frame of ${size} bytes`);
  const bodyOffset = HEADER_BYTES + count * ENTRY_BYTES;
  const bodyEnd = bodyOffset + bodyLength;
  if (bodyLength === 0) throw new ProtocolError("value frame with an empty body");
  if (bodyEnd > size) throw new ProtocolError(`body of ${bodyLength} bytes at ${bodyOffset} overruns the frame of ${size} bytes`);
  if (count === 0) {
    if (bodyEnd !== size) throw new ProtocolError(`frame of ${size} bytes, but its contents end at ${bodyEnd}`);
    checkBody(frame, bodyOffset, bodyEnd, 0);
    return unpackBody(frame, bodyOffset, bodyEnd, noBuffers);
  }
  const table = readTable(frame, count, bodyEnd);
  checkBody(frame, bodyOffset, bodyEnd, count);
  const views: unknown[] = new Array<unknown>(count);
  return unpackBody(frame, bodyOffset, bodyEnd, (index) => (views[index] ??= view(frame, table, index)));
}

/**
 * Buffer-table entries as flat triples (offset, length, type), copied out of the frame when
 * checked: a peer that rewrites shared memory afterwards cannot make a view escape the frame.
 */
type Table = number[];

/** Reads and checks the buffer table: aligned, in order, not overlapping, exactly filling the frame. */
function readTable(frame: Uint8Array, count: number, bodyEnd: number): Table {
  const table: Table = new Array<number>(count * 3);
  let end = bodyEnd;
  for (let i = 0; i < count; i++) {
    const e = HEADER_BYTES + i * ENTRY_BYTES;
    const offset = get32(frame, e + E_OFFSET);
    const length = get32(frame, e + E_LENGTH);
    const type = frame[e + E_TYPE];
    for (let k = E_TYPE + 1; k < ENTRY_BYTES; k++) {
      if (frame[e + k] !== 0) throw new ProtocolError(`buffer ${i}: reserved byte ${k} is not zero`);
    }
    if (type === 0 || type > MAX_BUFFER_TYPE) throw new ProtocolError(`buffer ${i}: unknown type ${type}`);
    if (offset % BUFFER_ALIGN !== 0) throw new ProtocolError(`buffer ${i}: offset ${offset} is not a multiple of ${BUFFER_ALIGN}`);
    if (offset < end) throw new ProtocolError(`buffer ${i}: offset ${offset} overlaps what precedes it (ends at ${end})`);
    if (length % ELEMENT_BYTES[type] !== 0) throw new ProtocolError(`buffer ${i}: ${length} bytes is not a whole number of ${ELEMENT_BYTES[type]}-byte elements`);
    if (offset + length > frame.byteLength) throw new ProtocolError(`buffer ${i}: ${length} bytes at ${offset} overrun the frame of ${frame.byteLength} bytes`);
    if (offset - end >= BUFFER_ALIGN) throw new ProtocolError(`buffer ${i}: ${offset - end} bytes of padding before it (at most ${BUFFER_ALIGN - 1})`);
    table[i * 3] = offset;
    table[i * 3 + 1] = length;
    table[i * 3 + 2] = type;
    end = offset + length;
  }
  if (end !== frame.byteLength) throw new ProtocolError(`frame of ${frame.byteLength} bytes, but its contents end at ${end}`);
  return table;
}

function noBuffers(): never {
  throw new ProtocolError("buffer reference in a frame without buffers");
}

/** Builds the value of buffer `index`: a view over `frame` (a copy only if it cannot be aligned). */
function view(frame: Uint8Array, table: Table, index: number): unknown {
  if (!(index >= 0 && index < table.length / 3)) throw new ProtocolError(`buffer index ${index} outside the table`);
  const offset = table[index * 3];
  const length = table[index * 3 + 1];
  const type = table[index * 3 + 2];
  const buffer = frame.buffer;
  const at = frame.byteOffset + offset;
  switch (type) {
    case BufferType.Buffer:
      return Buffer.from(buffer, at, length);
    case BufferType.DataView:
      return new DataView(buffer, at, length);
    case BufferType.ArrayBuffer:
      // An ArrayBuffer cannot be a view: the receiver gets its own copy (docs/codec.md §4).
      return copyOut(frame, offset, length).buffer;
    default: {
      const Ctor = TYPED_ARRAYS[type];
      if (Ctor === undefined) throw new ProtocolError(`buffer ${index}: unknown type ${type}`);
      const size = Ctor.BYTES_PER_ELEMENT;
      // A frame that starts misaligned (e.g. a socket buffer) cannot hold an aligned view: copy.
      if (at % size !== 0) return new Ctor(copyOut(frame, offset, length).buffer, 0, length / size);
      return new Ctor(buffer, at, length / size);
    }
  }
}

/** A copy of `frame[offset .. offset + length)` in a new (aligned, unshared) ArrayBuffer. */
function copyOut(frame: Uint8Array, offset: number, length: number): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(length);
  copy.set(frame.subarray(offset, offset + length));
  return copy;
}
