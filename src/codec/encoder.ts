/**
 * Value -> frame. {@link encodedSize} does the work once per message (checks the value, packs
 * the body, lays the buffers out) and returns a {@link FramePlan}; {@link encodeInto} writes the
 * frame into any memory (a ring loan: one copy of each buffer, in place), as often as there are
 * destinations; {@link encodeChunks} gives the pieces for a vectored socket write (no copy of
 * the buffers at all); {@link encode} returns one contiguous frame.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { EncodeError, FrameTooLargeError, InvalidArgumentError } from "../errors.js";
import { native } from "../native.js";
import { extract, type OutOfBand } from "./extract.js";
import {
  align,
  E_LENGTH,
  E_OFFSET,
  E_TYPE,
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
} from "./format.js";
import { packr } from "./msgpack.js";

/** Largest frame: every offset and length in the header and the table is a uint32. */
const MAX_FRAME = 0xffffffff;
/** Buffers at least this large are copied into shared memory with the addon's memcpy. */
const NATIVE_COPY_MIN = 512;
/** Below this many bytes a loop beats `set()` (which has a fixed cost of ~30 ns; measured). */
const SMALL_COPY = 8;
/** The (shared, never changed) tables of a plan without out-of-band buffers. */
const NONE: readonly never[] = Object.freeze([]);
/** Padding source for {@link encodeChunks}. */
const ZEROS = new Uint8Array(16);

/**
 * A message encoded once, ready to be written as a frame of exactly {@link byteLength} bytes,
 * into as many places as needed. It refers to the value's binary buffers (they are copied only
 * when written): do not change them until the last write.
 */
export interface FramePlan {
  /** Bytes of the frame. */
  readonly byteLength: number;
  /** What the frame's body is. */
  readonly kind: FrameKind;
  /** Out-of-band buffers the frame carries. */
  readonly bufferCount: number;
}

/** The one implementation of {@link FramePlan}. */
class Plan implements FramePlan {
  constructor(
    readonly kind: FrameKind,
    readonly byteLength: number,
    /** Header flags. */
    readonly flags: number,
    /** The body: MessagePack, or the raw bytes. */
    readonly body: Uint8Array,
    /** Bytes of {@link body} (known when planned: a typed array's length is not free to read). */
    readonly bodyLength: number,
    /** Offset of the body in the frame. */
    readonly bodyOffset: number,
    /** The out-of-band buffers. */
    readonly buffers: readonly OutOfBand[],
    /** Offset of each buffer in the frame. */
    readonly offsets: readonly number[],
    /** Length of each buffer when the plan was made. */
    readonly lengths: readonly number[],
  ) {}

  get bufferCount(): number {
    return this.buffers.length;
  }
}

/**
 * Encodes `value` (checks it, packs its body, lays out its buffers) and returns the plan to
 * write it. A whole `Uint8Array` or `Buffer` becomes a raw frame (no MessagePack at all).
 * Throws {@link EncodeError} for what cannot travel (see docs/codec.md §4) and
 * {@link FrameTooLargeError} beyond 4 GiB.
 */
export function encodedSize(value: unknown): FramePlan {
  const flags = rawFlags(value);
  return flags < 0 ? valuePlan(value) : rawPlan(value as Uint8Array, flags);
}

/** The raw frame's flags of a whole `Uint8Array` (0) or `Buffer` ({@link FLAG_RAW_BUFFER}); -1 for any other value. */
function rawFlags(value: unknown): number {
  if (!(value instanceof Uint8Array)) return -1;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Uint8Array.prototype ? 0 : proto === Buffer.prototype ? FLAG_RAW_BUFFER : -1;
}

/**
 * The length of `value`'s frame if it is a raw one (a whole `Uint8Array` or `Buffer`), else -1:
 * with {@link writeRawFrame}, the short way of a lone message of bytes (no plan).
 */
export function rawFrameLength(value: unknown): number {
  return rawFlags(value) < 0 ? -1 : HEADER_BYTES + (value as Uint8Array).length;
}

/**
 * Writes the raw frame of `bytes` (a value {@link rawFrameLength} accepted) at `target[at]`:
 * the same bytes as {@link encodeInto} with its plan.
 */
export function writeRawFrame(bytes: Uint8Array, target: Uint8Array, at: number): void {
  const flags = rawFlags(bytes);
  if (flags < 0) throw new InvalidArgumentError("writeRawFrame: only a whole Uint8Array or Buffer is framed raw (see rawFrameLength)");
  const n = checkRawLength(bytes);
  writeRawFrameHeader(target, at, n, flags);
  copy(target, at + HEADER_BYTES, bytes, n);
}

/** The length of a raw message's bytes; `FrameTooLargeError` when its frame would pass 4 GiB. */
function checkRawLength(bytes: Uint8Array): number {
  const n = bytes.length; // = byteLength for bytes, and cheaper to read
  if (n > MAX_FRAME - HEADER_BYTES) throw new FrameTooLargeError(`a raw message of ${n} bytes does not fit in a frame (4 GiB)`);
  return n;
}

/** Writes the header of a raw frame of `length` payload bytes (flags 0: a `Uint8Array`) at `target[at]`. */
export function writeRawFrameHeader(target: Uint8Array, at: number, length: number, flags = 0): void {
  writeFrameHeader(target, at, FrameKind.Raw, flags, length, 0);
}

/** Writes a frame's fixed header at `t[at]`. */
function writeFrameHeader(t: Uint8Array, at: number, kind: number, flags: number, bodyLength: number, count: number): void {
  put32(t, at + H_MAGIC, FRAME_MAGIC);
  t[at + H_VERSION] = FRAME_VERSION;
  t[at + H_KIND] = kind;
  t[at + H_FLAGS] = flags & 0xff;
  t[at + H_FLAGS + 1] = flags >>> 8;
  put32(t, at + H_BODY_LENGTH, bodyLength);
  put32(t, at + H_BUFFER_COUNT, count);
}

/** The plan of a bare `Uint8Array` or `Buffer` (kept small: it is the hot path). */
function rawPlan(value: Uint8Array, flags: number): Plan {
  const n = checkRawLength(value);
  return new Plan(FrameKind.Raw, HEADER_BYTES + n, flags, value, n, HEADER_BYTES, NONE, NONE, NONE);
}

/** The plan of any other value: MessagePack body and out-of-band buffers. */
function valuePlan(value: unknown): Plan {
  const { value: packable, buffers } = extract(value);
  let body: Uint8Array;
  try {
    body = packr.pack(packable);
  } catch (err) {
    throw new EncodeError(`cannot encode value: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const bodyOffset = HEADER_BYTES + buffers.length * ENTRY_BYTES;
  let end = bodyOffset + body.length;
  const offsets: number[] = [];
  const lengths: number[] = [];
  for (const b of buffers) {
    const at = align(end);
    offsets.push(at);
    lengths.push(b.bytes.byteLength);
    end = at + b.bytes.byteLength;
  }
  if (end > MAX_FRAME) throw new FrameTooLargeError(`the frame would take ${end} bytes, more than 4 GiB`);
  return new Plan(FrameKind.Value, end, 0, body, body.length, bodyOffset, buffers, offsets, lengths);
}

/**
 * Writes the frame of `plan` into `target[at .. at + plan.byteLength)` (`at` defaults to 0) and
 * returns its length. Each buffer is copied once (with the addon's memcpy when `target` is
 * shared memory). `target` may be longer than the frame; the bytes around it are left alone.
 */
export function encodeInto(plan: FramePlan, target: Uint8Array, at = 0): number {
  const p = checkPlan(plan);
  if (!(target instanceof Uint8Array)) throw new InvalidArgumentError("encodeInto: target must be a Uint8Array");
  if (!(at >= 0 && target.length - at >= p.byteLength)) {
    throw new InvalidArgumentError(`encodeInto: target of ${target.length} bytes has no room for the frame (${p.byteLength}) at ${at}`);
  }
  sameBody(p);
  writeHead(p, target, at);
  copy(target, at + p.bodyOffset, p.body, p.bodyLength);
  if (p.buffers.length === 0) return p.byteLength;
  let end = p.bodyOffset + p.bodyLength;
  for (let i = 0; i < p.buffers.length; i++) {
    const offset = p.offsets[i];
    const bytes = sameLength(p, i);
    if (offset > end) target.fill(0, at + end, at + offset);
    copy(target, at + offset, bytes, bytes.byteLength);
    end = offset + bytes.byteLength;
  }
  return p.byteLength;
}

/**
 * The frame of `plan` as pieces to write one after the other (a vectored write): the header,
 * table and body in one new small buffer, then each out-of-band buffer as the caller's own
 * memory (no copy) with zero padding between. Their concatenation is the frame.
 */
export function encodeChunks(plan: FramePlan): Uint8Array[] {
  const p = checkPlan(plan);
  sameBody(p);
  const headEnd = p.bodyOffset + (p.kind === FrameKind.Raw ? 0 : p.bodyLength);
  const head = new Uint8Array(headEnd);
  writeHead(p, head);
  if (p.kind === FrameKind.Raw) return p.bodyLength > 0 ? [head, p.body] : [head];
  head.set(p.body, p.bodyOffset);
  const chunks: Uint8Array[] = [head];
  let end = headEnd;
  for (let i = 0; i < p.buffers.length; i++) {
    const at = p.offsets[i];
    const bytes = sameLength(p, i);
    if (at > end) chunks.push(ZEROS.subarray(0, at - end));
    if (bytes.byteLength > 0) chunks.push(bytes);
    end = at + bytes.byteLength;
  }
  return chunks;
}

/**
 * Encodes `value` into one new contiguous frame (for sockets, files, tests). Like
 * `Buffer.allocUnsafe`, a small frame may share a pooled ArrayBuffer; it always starts on a
 * multiple of 8 bytes, so every typed array in it decodes as an aligned view.
 */
export function encode(value: unknown): Uint8Array {
  const plan = encodedSize(value);
  // Uninitialised memory is fine: encodeInto writes every byte of the frame, padding included.
  // A new ArrayBuffer costs ~400 ns; Node's pool hands out 8-aligned slices of one for less.
  const pooled = Buffer.allocUnsafe(plan.byteLength);
  const out = new Uint8Array(pooled.buffer, pooled.byteOffset, plan.byteLength);
  encodeInto(plan, out);
  return out;
}

/** The plan behind a {@link FramePlan}, or an error for anything else. */
function checkPlan(plan: FramePlan): Plan {
  if (!(plan instanceof Plan)) throw new InvalidArgumentError("not a frame plan (use encodedSize())");
  return plan;
}

/** Refuses a body whose length changed since the plan was made (a detached buffer: 0). */
function sameBody(p: Plan): void {
  const n = p.body.length;
  if (n !== p.bodyLength) throw new EncodeError(`the message changed length (${p.bodyLength} -> ${n} bytes) after the frame was planned`);
}

/** Buffer `i` of `p`, refusing one whose length changed since the plan was made. */
function sameLength(p: Plan, i: number): Uint8Array {
  const bytes = p.buffers[i].bytes;
  if (bytes.byteLength !== p.lengths[i]) {
    throw new EncodeError(`buffer ${i} changed length (${p.lengths[i]} -> ${bytes.byteLength} bytes) after the frame was planned`);
  }
  return bytes;
}

/** Writes the header and the buffer table at `at` (default 0). */
function writeHead(p: Plan, t: Uint8Array, at = 0): void {
  writeFrameHeader(t, at, p.kind, p.flags, p.bodyLength, p.buffers.length);
  for (let i = 0; i < p.buffers.length; i++) {
    const e = at + HEADER_BYTES + i * ENTRY_BYTES;
    put32(t, e + E_OFFSET, p.offsets[i]);
    put32(t, e + E_LENGTH, p.lengths[i]);
    t[e + E_TYPE] = p.buffers[i].type;
    for (let k = E_TYPE + 1; k < ENTRY_BYTES; k++) t[e + k] = 0;
  }
}

/** Little-endian uint32 at `at`. */
function put32(t: Uint8Array, at: number, v: number): void {
  t[at] = v;
  t[at + 1] = v >>> 8;
  t[at + 2] = v >>> 16;
  t[at + 3] = v >>> 24;
}

/** The addon's memcpy, null if the addon is not available. */
let nativeCopy: ((target: SharedArrayBuffer | ArrayBuffer, offset: number, source: ArrayBufferView) => void) | null | undefined;

function loadNativeCopy(): typeof nativeCopy {
  try {
    const addon = native();
    nativeCopy = (target, offset, source) => addon.copy(target, offset, source);
  } catch {
    nativeCopy = null;
  }
  return nativeCopy;
}

/** Copies the `n` bytes of `src` to `target[at ..]`. */
function copy(target: Uint8Array, at: number, src: Uint8Array, n: number): void {
  if (n < SMALL_COPY) {
    for (let i = 0; i < n; i++) target[at + i] = src[i];
    return;
  }
  // Into shared memory, and out of it: V8 copies from or into a SharedArrayBuffer with relaxed
  // atomic loads and stores, many times slower than the addon's memcpy.
  if (n >= NATIVE_COPY_MIN && (target.buffer instanceof SharedArrayBuffer || src.buffer instanceof SharedArrayBuffer)) {
    const fast = nativeCopy === undefined ? loadNativeCopy() : nativeCopy;
    if (fast) {
      fast(target.buffer, target.byteOffset + at, src);
      return;
    }
  }
  target.set(src, at);
}

/**
 * Copies `src` to `target[at ..]` (`target` must have room; the two must not overlap), with the
 * addon's memcpy when either is shared memory.
 */
export function copyBytes(target: Uint8Array, at: number, src: Uint8Array): void {
  copy(target, at, src, src.length);
}
