/**
 * The one frame of every Plexus connection (the transport's TCP, request/response over TCP and
 * its shm handshake socket, queues, the GraphServer's control protocol): a 16-byte header, then
 * `length` payload bytes. Types below 0x80 are the protocol's own message table; 0x80 and up
 * belong to the connection (the handshake, the heartbeat) and mean the same in every protocol.
 * Specified in docs/protocol.md §0.
 *
 * ```text
 * offset 0  u32 length    payload bytes after the header
 *        4  u8  type      0x01..0x7f the protocol's, 0x80.. the connection's
 *        5  u8  flags     defined per type; unknown bits are a protocol error
 *        6  u16 reserved  zero
 *        8  u32 a         per type (a sequence's low word, a request id, a serial, a status)
 *       12  u32 b         per type (a sequence's high word, an offset), else zero
 * ```
 *
 * All fields are little-endian.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { ProtocolError } from "../errors.js";

/** Bytes of a frame header. */
export const FRAME_HEADER = 16;

/** Frame types that belong to the connection, the same in every protocol. */
export const enum NetType {
  /** Client -> server, the first frame: the handshake's HELLO (see handshake.ts). */
  Hello = 0x80,
  /** Server -> client, the answer to HELLO; `a` is the status. */
  Welcome = 0x81,
  /** Either way: a heartbeat, written when nothing else was for a heartbeat period. Empty; flags, a and b zero. */
  Ping = 0x82,
}

/** The first type number that belongs to the connection rather than to the protocol. */
export const FIRST_NET_TYPE = 0x80;

/** Largest HELLO or WELCOME payload any protocol may send (checked before anything is allocated). */
export const MAX_HANDSHAKE_PAYLOAD = 4096;

/** A parsed frame header. */
export interface FrameHeader {
  /** Payload bytes after the header. */
  length: number;
  /** Frame type. */
  type: number;
  /** Flags. */
  flags: number;
  /** First word (per type). */
  a: number;
  /** Second word (per type). */
  b: number;
}

/** Little-endian uint32 at `at`. */
export function get32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** Writes a little-endian uint32 at `at`. */
export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/**
 * Writes a frame header at `target[at ..]` (byte by byte: works on any `Uint8Array`, no
 * `DataView` per frame).
 */
export function writeFrameHeader(target: Uint8Array, at: number, length: number, type: number, flags: number, a: number, b: number): void {
  put32(target, at, length);
  target[at + 4] = type;
  target[at + 5] = flags;
  target[at + 6] = 0;
  target[at + 7] = 0;
  put32(target, at + 8, a);
  put32(target, at + 12, b);
}

/** A new buffer holding one header. */
export function frameHeader(length: number, type: number, flags = 0, a = 0, b = 0): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER);
  writeFrameHeader(out, 0, length, type, flags, a, b);
  return out;
}

/** A whole frame: header and payload in one buffer. */
export function frame(type: number, flags: number, a: number, b: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, a, b);
  out.set(payload, FRAME_HEADER);
  return out;
}

/** Reads the header at `bytes[at ..]`; non-zero reserved bytes are a {@link ProtocolError}. */
export function readFrameHeader(bytes: Uint8Array, at: number): FrameHeader {
  if (bytes[at + 6] !== 0 || bytes[at + 7] !== 0) throw new ProtocolError("a frame with non-zero reserved bytes");
  return { length: get32(bytes, at), type: bytes[at + 4], flags: bytes[at + 5], a: get32(bytes, at + 8), b: get32(bytes, at + 12) };
}

/** The type, flags and reserved bytes of the header at `at`, as one number (a frame without flags of type `t` reads as `t`). */
export function typeWord(bytes: Uint8Array, at: number): number {
  return get32(bytes, at + 4);
}

/** The words `a` (low) and `b` (high) of the header at `at` as one number; above 2^53 is a {@link ProtocolError}. */
export function readU64(bytes: Uint8Array, at: number): number {
  const hi = get32(bytes, at + 12);
  if (hi > 0x1fffff) throw new ProtocolError(`frame value out of range (high word 0x${hi.toString(16)})`);
  return hi * 0x100000000 + get32(bytes, at + 8);
}

/** Writes a header whose words `a` and `b` hold one number below 2^53 (low word first). */
export function writeFrameHeader64(target: Uint8Array, at: number, length: number, type: number, value: number): void {
  writeFrameHeader(target, at, length, type, 0, value % 0x100000000, Math.floor(value / 0x100000000));
}

/** The heartbeat frame ({@link NetType.Ping}), the same 16 bytes in every protocol. */
export const PING_FRAME: Buffer = frameHeader(0, NetType.Ping);

/**
 * Checks a header of a connection's own type (0x80 and up) before its payload is read: HELLO
 * and WELCOME up to {@link MAX_HANDSHAKE_PAYLOAD} bytes without flags, PING empty with every
 * field zero. Anything else is a {@link ProtocolError}.
 */
export function checkNetHeader(h: FrameHeader): void {
  switch (h.type) {
    case NetType.Hello:
      if (h.length > MAX_HANDSHAKE_PAYLOAD || h.flags !== 0 || h.a !== 0 || h.b !== 0) throw new ProtocolError(`malformed HELLO frame (length ${h.length})`);
      return;
    case NetType.Welcome:
      if (h.length > MAX_HANDSHAKE_PAYLOAD || h.flags !== 0 || h.b !== 0) throw new ProtocolError(`malformed WELCOME frame (length ${h.length})`);
      return;
    case NetType.Ping:
      if (h.length !== 0 || h.flags !== 0 || h.a !== 0 || h.b !== 0) throw new ProtocolError("malformed PING frame");
      return;
    default:
      throw new ProtocolError(`unknown frame type 0x${h.type.toString(16)}`);
  }
}
