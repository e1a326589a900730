/**
 * What a request/response message looks like: a 16-byte header (type, flags, the request id,
 * one auxiliary word) and a body. In a ring the header opens with the magic "PXR1"; on a socket
 * the message is one frame of every Plexus connection (net/frame.ts), whose header has the
 * body's length there and the same fields after it — so owners read a message's type, flags, id
 * and aux at offsets 4, 5, 8 and 12 whatever the transport. Specified in docs/protocol.md §6.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { decode, encodedSize, encodeInto, FLAG_RAW_BUFFER, FRAME_HEADER_BYTES, isFlatValueFrame, rawFrameFlags, type FramePlan } from "../codec/index.js";
import { ProtocolError } from "../errors.js";
import { get32, put32, writeFrameHeader, type FrameHeader } from "../net/frame.js";
import type { FrameTable } from "../net/frame-parser.js";

/** "PXR1": the first word of a message in a ring (on a socket, the frame's length is there). */
export const RPC_MAGIC = 0x31525850;
/** Header bytes before the body. */
export const RPC_HEADER = 16;

/** Message types. */
export const enum RpcType {
  /** client -> server: a request; body = codec frame, or raw bytes with {@link FLAG_RAW}. */
  Request = 1,
  /** server -> client: the answer to request `id`; body as for requests. */
  Response = 2,
  /** server -> client: request `id` failed; body = codec frame of `{ code, name, message }`. */
  Error = 3,
  /**
   * server -> client: in-place answer to request `id`: the response is `length` bytes at `aux`
   * in the request's own body, still in shared memory; body = u32 length.
   */
  InPlace = 4,
  // 5 was version 1's release, 6 version 3's tcp ping (now the connection's PING, net/frame.ts):
  // both stay unused.
}

/** Flag: the body is raw bytes (in-place services), not a codec frame. */
export const FLAG_RAW = 1;

/** A parsed header. */
export interface RpcHeader {
  /** Message type. */
  type: RpcType;
  /** Flags. */
  flags: number;
  /** Request id. */
  id: number;
  /** Auxiliary word (in-place: offset of the response in the request body). */
  aux: number;
}

/** True where 32-bit words are stored little-endian, as the wire's fields are. */
export const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Writes a header at `words[i ..]` (4 words; little-endian hosts only, see
 * {@link LITTLE_ENDIAN}): the same bytes as {@link writeHeader}, in four stores.
 */
export function writeHeaderWords(words: Int32Array, i: number, type: RpcType, flags: number, id: number, aux = 0): void {
  words[i] = RPC_MAGIC;
  words[i + 1] = type | (flags << 8);
  words[i + 2] = id;
  words[i + 3] = aux;
}

/**
 * Writes a ring message's header at `target[at ..]`: the layout of a connection's frame header
 * (net/frame.ts) with the magic where a frame has its length.
 */
export function writeHeader(target: Uint8Array, at: number, type: RpcType, flags: number, id: number, aux = 0): void {
  writeFrameHeader(target, at, RPC_MAGIC, type, flags, id, aux);
}

/** Writes one message (header + body) at `target[at ..]`. */
export function writeMessage(target: Uint8Array, at: number, type: RpcType, id: number, aux: number, b: Body): void {
  writeHeader(target, at, type, b.flags, id, aux);
  b.writeTo(target, at + RPC_HEADER);
}

/**
 * Checks the header of the message `bytes[at .. end)` and returns its type (throws
 * {@link ProtocolError}); the other fields are read with {@link get32} and `bytes[at + 5]`
 * where needed (no object per message). Its first word (the magic in a ring, the length on a
 * socket) is the channel's to check ({@link isRingMessage}, {@link rpcFrameTable}).
 */
export function checkHeader(bytes: Uint8Array, at: number, end: number): RpcType {
  if (end - at < RPC_HEADER) throw new ProtocolError(`request/response message of ${end - at} bytes is shorter than its header`);
  const type = bytes[at + 4] as RpcType;
  if (type < RpcType.Request || type > RpcType.InPlace) throw new ProtocolError(`unknown request/response message type ${type}`);
  if ((bytes[at + 5] & ~FLAG_RAW) !== 0 || bytes[at + 6] !== 0 || bytes[at + 7] !== 0) throw new ProtocolError(`unknown flags in a request/response message`);
  return type;
}

/** True if the ring frame `bytes[at .. end)` is long enough for a header and opens with {@link RPC_MAGIC}. */
export function isRingMessage(bytes: Uint8Array, at: number, end: number): boolean {
  return end - at >= RPC_HEADER && get32(bytes, at) === RPC_MAGIC;
}

/**
 * The frame table of request/response on a socket: the types 1..3 (request, response, error)
 * with no flag but `raw`, bodies up to `maxMessage` bytes. An in-place answer (4) is shm-only: on
 * a socket it is a protocol error, as any other type.
 */
export function rpcFrameTable(maxMessage: number): FrameTable {
  return {
    maxMessage,
    check(h: FrameHeader): "ok" | "too-large" {
      if (h.type < RpcType.Request || h.type > RpcType.Error) {
        throw new ProtocolError(h.type === RpcType.InPlace ? "an in-place answer on a socket (they are shm-only)" : `unknown request/response message type ${h.type}`);
      }
      if ((h.flags & ~FLAG_RAW) !== 0) throw new ProtocolError(`unknown flags 0x${h.flags.toString(16)} in a request/response message`);
      return h.length > maxMessage ? "too-large" : "ok";
    },
  };
}

/** Reads and checks the header of the message `bytes[at .. end)` (throws {@link ProtocolError}). */
export function readHeader(bytes: Uint8Array, at = 0, end = bytes.length): RpcHeader {
  const type = checkHeader(bytes, at, end);
  return { type, flags: bytes[at + 5], id: get32(bytes, at + 8), aux: get32(bytes, at + 12) };
}

/** Little-endian uint32 at `at` (the connection's reader, re-exported for the rpc files). */
export { get32 };

/** A body ready to be written into exactly `size` bytes (after the header). */
export interface Body {
  /** Body bytes. */
  readonly size: number;
  /** Flags to put in the header. */
  readonly flags: number;
  /** Writes the body into `target[at .. at + size)`. */
  writeTo(target: Uint8Array, at: number): void;
}

/** A value's codec frame, planned once. */
class ValueBody implements Body {
  readonly size: number;
  readonly flags = 0;
  constructor(private readonly plan: FramePlan) {
    this.size = plan.byteLength;
  }
  writeTo(target: Uint8Array, at: number): void {
    encodeInto(this.plan, target, at);
  }
}

/** Encodes a value once (throws `EncodeError` for values that cannot travel). */
export function valueBody(value: unknown): Body {
  return new ValueBody(encodedSize(value));
}

/** Raw bytes (in-place services). */
class RawBody implements Body {
  readonly size: number;
  readonly flags = FLAG_RAW;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length; // (cheaper than byteLength on a typed array)
  }
  writeTo(target: Uint8Array, at: number): void {
    target.set(this.bytes, at);
  }
}

/** Raw bytes as the body (in-place services). */
export function rawBody(bytes: Uint8Array): Body {
  return new RawBody(bytes);
}

/** A u32 length. */
class LengthBody implements Body {
  readonly size = 4;
  readonly flags = 0;
  constructor(private readonly length: number) {}
  writeTo(target: Uint8Array, at: number): void {
    put32(target, at, this.length);
  }
}

/** The body of an {@link RpcType.InPlace} answer. */
export function lengthBody(length: number): Body {
  return new LengthBody(length);
}

/** The body of an {@link RpcType.Error} answer. */
export function errorBody(err: unknown): Body {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "ERR_PLEXUS_HANDLER";
  const name = typeof e?.name === "string" ? e.name : "Error";
  const message = typeof e?.message === "string" ? e.message : String(err);
  const body: Record<string, unknown> = { code: code.slice(0, 200), name: name.slice(0, 200), message: message.slice(0, 4000) };
  if (isPassThrough(err)) {
    body["passThrough"] = true;
    const r = err as { remoteCode?: unknown; remoteName?: unknown };
    if (typeof r.remoteCode === "string") body["remoteCode"] = r.remoteCode.slice(0, 200);
    if (typeof r.remoteName === "string") body["remoteName"] = r.remoteName.slice(0, 200);
  }
  return valueBody(body);
}

/** The mark of an error that a client rebuilds as its own class ({@link passThrough}). */
const PASS_THROUGH = Symbol("plexus.rpc.passThrough");

/**
 * Marks `err` (a Plexus error) as the failure of the request itself rather than of the handler:
 * the client rejects with the error's own class (`NoServerError`, `TimeoutError`, …) instead of
 * a `RemoteError`. What a bridge's server for another host's service throws when that host
 * cannot be reached (docs/scale-out.md). Returns `err`.
 */
export function passThrough<E extends Error>(err: E): E {
  Object.defineProperty(err, PASS_THROUGH, { value: true });
  return err;
}

/** True if `err` was marked by {@link passThrough}. */
export function isPassThrough(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { [PASS_THROUGH]?: unknown })[PASS_THROUGH] === true;
}

/**
 * Decodes the body `bytes[at .. end)` into a value the caller owns: when the frame has
 * out-of-band buffers (or is raw), they are copied out first, so the frame can be released at
 * once. `bytes` is a plain `Uint8Array`.
 */
export function decodeOwned(bytes: Uint8Array, at: number, end: number): unknown {
  const flags = rawFrameFlags(bytes, at, end);
  // A bare Uint8Array / Buffer: one copy, no pass through the decoder. Buffers: Node's pool
  // takes small ones (no ArrayBuffer per answer).
  if (flags >= 0) {
    const start = at + FRAME_HEADER_BYTES;
    return flags & FLAG_RAW_BUFFER ? Buffer.from(bytes.subarray(start, end)) : bytes.slice(start, end);
  }
  if (isFlatValueFrame(bytes, at, end)) return decode(bytes.subarray(at, end));
  return decode(bytes.slice(at, end));
}
