/**
 * What a request/response message looks like in a ring or on a socket: a 16-byte header
 * (magic, type, flags, the request id, one auxiliary word) and a body. Specified in
 * docs/protocol.md ("Request/response").
 * @internal
 * @module
 */
import { decode, encodedSize, encodeInto, FRAME_HEADER_BYTES, FrameKind } from "../codec/index.js";
import { ProtocolError } from "../errors.js";

/** "PXR1". */
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
  /** client -> server: the client is done with the in-place response of request `id` (empty body). */
  Release = 5,
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

/** Writes a header at the start of `target`. */
export function writeHeader(target: Uint8Array, type: RpcType, flags: number, id: number, aux = 0): void {
  const v = new DataView(target.buffer, target.byteOffset, RPC_HEADER);
  v.setUint32(0, RPC_MAGIC, true);
  v.setUint8(4, type);
  v.setUint8(5, flags);
  v.setUint16(6, 0, true);
  v.setUint32(8, id, true);
  v.setUint32(12, aux, true);
}

/** Reads and checks the header of `bytes` (throws {@link ProtocolError}). */
export function readHeader(bytes: Uint8Array): RpcHeader {
  if (bytes.length < RPC_HEADER) throw new ProtocolError(`request/response message of ${bytes.length} bytes is shorter than its header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, RPC_HEADER);
  if (v.getUint32(0, true) !== RPC_MAGIC) throw new ProtocolError("not a Plexus request/response message (bad magic)");
  const type = v.getUint8(4) as RpcType;
  if (type < RpcType.Request || type > RpcType.Release) throw new ProtocolError(`unknown request/response message type ${type}`);
  const flags = v.getUint8(5);
  if ((flags & ~FLAG_RAW) !== 0 || v.getUint16(6, true) !== 0) throw new ProtocolError(`unknown flags in a request/response message`);
  return { type, flags, id: v.getUint32(8, true), aux: v.getUint32(12, true) };
}

/** A body ready to be written into exactly `size` bytes (after the header). */
export interface Body {
  /** Body bytes. */
  readonly size: number;
  /** Flags to put in the header. */
  readonly flags: number;
  /** Writes the body into `target` (`size` bytes). */
  writeTo(target: Uint8Array): void;
}

/** The empty body. */
export const EMPTY: Body = { size: 0, flags: 0, writeTo() {} };

/** Encodes a value once (throws `EncodeError` for values that cannot travel). */
export function valueBody(value: unknown): Body {
  const plan = encodedSize(value);
  return { size: plan.byteLength, flags: 0, writeTo: (t) => void encodeInto(plan, t) };
}

/** Raw bytes as the body (in-place services). */
export function rawBody(bytes: Uint8Array): Body {
  return { size: bytes.byteLength, flags: FLAG_RAW, writeTo: (t) => t.set(bytes) };
}

/** The body of an {@link RpcType.InPlace} answer. */
export function lengthBody(length: number): Body {
  return {
    size: 4,
    flags: 0,
    writeTo: (t) => new DataView(t.buffer, t.byteOffset, 4).setUint32(0, length, true),
  };
}

/** The body of an {@link RpcType.Error} answer. */
export function errorBody(err: unknown): Body {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "ERR_PLEXUS_HANDLER";
  const name = typeof e?.name === "string" ? e.name : "Error";
  const message = typeof e?.message === "string" ? e.message : String(err);
  return valueBody({ code: code.slice(0, 200), name: name.slice(0, 200), message: message.slice(0, 4000) });
}

/** Offset of the buffer count in a codec frame header. */
const H_BUFFER_COUNT = 12;
/** Offset of the frame kind in a codec frame header. */
const H_KIND = 5;

/**
 * Decodes a body into a value the caller owns: when the frame has out-of-band buffers (or is
 * raw), they are copied out first, so the frame can be released at once.
 */
export function decodeOwned(body: Uint8Array): unknown {
  if (body.length >= FRAME_HEADER_BYTES && body[H_KIND] === FrameKind.Value) {
    const v = new DataView(body.buffer, body.byteOffset, FRAME_HEADER_BYTES);
    if (v.getUint32(H_BUFFER_COUNT, true) === 0) return decode(body);
  }
  return decode(body.slice());
}
