/**
 * The `tcp` transport's wire format on the frame and handshake of every Plexus connection
 * (net/): its handshake spec and bodies, its message table, the 16-byte padding of DATA frames,
 * and the checks both ends apply before trusting a peer. Specified in docs/protocol.md §5.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { ProtocolError } from "../errors.js";
import { FRAME_HEADER, get32, put32 } from "../net/frame.js";
import type { HandshakeSpec } from "../net/handshake.js";

/**
 * The transport's handshake: magic "PLXT", version 2 (version 1 had its own 32-byte handshake
 * blocks and its own PING; 2 is built on the common frame and handshake of every Plexus
 * connection).
 */
export const TCP_SPEC: HandshakeSpec = { name: "tcp transport", server: "tcp sender", magic: 0x54584c50, version: 2, minVersion: 2, capabilities: 0 };
/** "PLXT" little-endian: the first word of the HELLO and WELCOME preamble (and of version 1's handshake blocks). */
export const TCP_MAGIC = TCP_SPEC.magic;
/** Version of the tcp wire protocol. */
export const TCP_VERSION = TCP_SPEC.version;
/** Bytes of the receiver's HELLO body (after the preamble). */
export const HELLO_BODY_BYTES = 8;
/** Bytes of the sender's WELCOME body (after the preamble). */
export const WELCOME_BODY_BYTES = 16;
/** Bytes of a version-1 handshake block (only to answer a version-1 receiver). */
export const V1_HANDSHAKE_BYTES = 32;

/** The transport's frame types (its message table; the connection's PING is `NetType.Ping`). */
export const enum FrameType {
  /** Sender -> receiver: one message; `a`+`b` hold its sequence number. */
  Data = 1,
  /** Sender -> receiver: graceful end; `a`+`b` hold the sequence the next message would have had. */
  End = 2,
  /** Sender -> receiver: "I need credit": acknowledge releases now. */
  Want = 4,
  /** Receiver -> sender: credit; `a`+`b` hold the total frame bytes released so far. */
  Ack = 16,
  /** Receiver -> sender: the receiver leaves; the sender answers by closing the connection. */
  Bye = 17,
}

/** Backpressure policy codes on the wire (same as the ring's). */
export const WIRE_POLICY = { block: 0, "drop-oldest": 1, fail: 2 } as const;

/** Largest window (and so message) the protocol allows: 1 GiB. */
export const MAX_WINDOW = 1 << 30;
/** Smallest window. */
export const MIN_WINDOW = 64;

/**
 * Bytes a message of `length` payload bytes occupies in the stream and in the window: the
 * header, the payload, zero padding to a multiple of 16 (so every frame from the sender starts
 * at a 16-byte stream offset and the receiver's payloads stay 16-byte aligned).
 */
export function frameBytes(length: number): number {
  return FRAME_HEADER + ((length + 15) & ~15);
}

/** The receiver's HELLO body. */
export interface HelloBody {
  /** Policy code (0 block, 1 drop-oldest, 2 fail). */
  policy: number;
  /** Receiver process id (informational). */
  pid: number;
}

/** The sender's WELCOME body. */
export interface WelcomeBody {
  /** Window: frame bytes the receiver may hold unreleased. */
  capacity: number;
  /** Largest payload the sender sends. */
  maxMessage: number;
  /** Sequence number of the first message this receiver can get. */
  startSeq: number;
}

/** Encodes the HELLO body (8 bytes): `u8 policy | 3 bytes reserved 0 | u32 pid`. */
export function encodeHelloBody(h: HelloBody): Buffer {
  const b = Buffer.alloc(HELLO_BODY_BYTES);
  b[0] = h.policy;
  put32(b, 4, h.pid);
  return b;
}

/** Decodes and checks a HELLO body; a wrong size, reserved bytes or an unknown policy are a {@link ProtocolError}. */
export function decodeHelloBody(b: Uint8Array): HelloBody {
  if (b.length !== HELLO_BODY_BYTES) throw new ProtocolError(`a tcp HELLO body of ${b.length} bytes (${HELLO_BODY_BYTES} expected)`);
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) throw new ProtocolError("a tcp HELLO with non-zero reserved bytes");
  if (b[0] > WIRE_POLICY.fail) throw new ProtocolError(`a tcp HELLO with unknown backpressure policy ${b[0]}`);
  return { policy: b[0], pid: get32(b, 4) };
}

/** Encodes the WELCOME body (16 bytes): `u32 capacity | u32 maxMessage | u64 startSeq`. */
export function encodeWelcomeBody(w: WelcomeBody): Buffer {
  const b = Buffer.alloc(WELCOME_BODY_BYTES);
  put32(b, 0, w.capacity);
  put32(b, 4, w.maxMessage);
  put32(b, 8, w.startSeq % 0x100000000);
  put32(b, 12, Math.floor(w.startSeq / 0x100000000));
  return b;
}

/**
 * Decodes and checks an accepting WELCOME's body: its size, the window's range, the largest
 * message fitting the window, a start sequence of at least 1 (below 2^53). Anything else is a
 * {@link ProtocolError}.
 */
export function decodeWelcomeBody(b: Uint8Array): WelcomeBody {
  if (b.length !== WELCOME_BODY_BYTES) throw new ProtocolError(`a tcp WELCOME body of ${b.length} bytes (${WELCOME_BODY_BYTES} expected)`);
  const hi = get32(b, 12);
  if (hi > 0x1fffff) throw new ProtocolError("start sequence out of range");
  const w: WelcomeBody = { capacity: get32(b, 0), maxMessage: get32(b, 4), startSeq: hi * 0x100000000 + get32(b, 8) };
  if (w.capacity < MIN_WINDOW || w.capacity > MAX_WINDOW) throw new ProtocolError(`window of ${w.capacity} bytes out of range`);
  if (frameBytes(w.maxMessage) > w.capacity) throw new ProtocolError(`largest message ${w.maxMessage} does not fit the window of ${w.capacity}`);
  if (w.startSeq < 1) throw new ProtocolError("start sequence 0");
  return w;
}

/**
 * Whether the bytes at `at` open a version-1 handshake block (its first word is the magic; as
 * a version-2 frame that would be a length no HELLO or WELCOME has).
 */
export function isVersion1Block(b: Uint8Array, at: number): boolean {
  return get32(b, at) === TCP_MAGIC;
}

/**
 * The answer to a version-1 HELLO: a version-1 WELCOME (32 bytes: magic, the version this
 * sender speaks, status 1 "version not spoken", zeros), which a version-1 receiver reports as a
 * version mismatch.
 */
export function version1Refusal(): Buffer {
  const b = Buffer.alloc(V1_HANDSHAKE_BYTES);
  put32(b, 0, TCP_MAGIC);
  b.writeUInt16LE(TCP_VERSION, 4);
  b[6] = 1;
  return b;
}

/** The option checks of `util/options.ts`, under the names this module used to export (src/queue/server.ts imports them from here). */
export { intOption, msOption } from "../util/options.js";
