/**
 * The `tcp` transport's wire format: the handshake blocks, the 16-byte frame header, and the
 * checks both ends apply before trusting a peer. Specified in docs/protocol.md §5.
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError, ProtocolError } from "../errors.js";

/** "PLXT" little-endian: first 4 bytes of both handshake blocks. */
export const TCP_MAGIC = 0x54584c50;
/** Version of the tcp wire protocol. */
export const TCP_VERSION = 1;
/** Bytes of the receiver's HELLO and of the sender's WELCOME. */
export const HANDSHAKE_BYTES = 32;
/** Bytes of a frame header; frames start at 16-byte stream offsets. */
export const HEADER_BYTES = 16;

/** Frame types. */
export const enum FrameType {
  /** Sender -> receiver: one message; `value` is its sequence number. */
  Data = 1,
  /** Sender -> receiver: graceful end; `value` is the sequence the next message would have had. */
  End = 2,
  /** Sender -> receiver: heartbeat while idle. */
  Ping = 3,
  /** Sender -> receiver: "I need credit": acknowledge releases now. */
  Want = 4,
  /** Receiver -> sender: credit (and heartbeat); `value` is the total frame bytes released so far. */
  Ack = 16,
  /** Receiver -> sender: the receiver leaves; the sender answers by closing the connection. */
  Bye = 17,
}

/** WELCOME status codes. */
export const enum WelcomeStatus {
  /** Joined. */
  Ok = 0,
  /** The HELLO's version is not spoken by this sender (the WELCOME carries the sender's). */
  Version = 1,
  /** The HELLO was malformed (unknown policy, non-zero reserved bytes). */
  Malformed = 2,
  /** The sender has `maxReceivers` receivers already. */
  Full = 3,
}

/** Backpressure policy codes on the wire (same as the ring's). */
export const WIRE_POLICY = { block: 0, "drop-oldest": 1, fail: 2 } as const;

/** Largest window (and so message) the protocol allows: 1 GiB. */
export const MAX_WINDOW = 1 << 30;
/** Smallest window. */
export const MIN_WINDOW = 64;

/** Bytes a message of `length` payload bytes occupies in the stream and in the window. */
export function frameBytes(length: number): number {
  return HEADER_BYTES + ((length + 15) & ~15);
}

/** Writes a frame header at `at`. `value` is a sequence number or a byte count (< 2^53). */
export function writeHeader(buf: Buffer, at: number, length: number, type: FrameType, value: number): void {
  buf.writeUInt32LE(length, at);
  buf.writeUInt32LE(type, at + 4); // type, flags 0, reserved 0
  buf.writeUInt32LE(value % 0x100000000, at + 8);
  buf.writeUInt32LE(Math.floor(value / 0x100000000), at + 12);
}

/** A control frame (no payload). */
export function controlFrame(type: FrameType, value = 0): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(b, 0, 0, type, value);
  return b;
}

/** Reads the 64-bit `value` of a header; above 2^53 is a {@link ProtocolError}. */
export function readValue(buf: Buffer, at: number): number {
  const hi = buf.readUInt32LE(at + 12);
  if (hi > 0x1fffff) throw new ProtocolError(`frame value out of range (high word 0x${hi.toString(16)})`);
  return hi * 0x100000000 + buf.readUInt32LE(at + 8);
}

/** The receiver's HELLO. */
export interface Hello {
  /** Protocol version the receiver speaks. */
  version: number;
  /** Policy code (0 block, 1 drop-oldest, 2 fail). */
  policy: number;
  /** Receiver process id (informational). */
  pid: number;
  /** How often the receiver writes when idle, in ms. */
  heartbeat: number;
}

/** The sender's WELCOME. */
export interface Welcome {
  /** Protocol version the sender speaks. */
  version: number;
  /** {@link WelcomeStatus}. */
  status: number;
  /** Window: frame bytes the receiver may hold unreleased. */
  capacity: number;
  /** Largest payload the sender sends. */
  maxMessage: number;
  /** Sequence number of the first message this receiver can get. */
  startSeq: number;
  /** How often the sender writes when idle, in ms. */
  heartbeat: number;
}

/** Encodes a HELLO (32 bytes). */
export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HANDSHAKE_BYTES);
  b.writeUInt32LE(TCP_MAGIC, 0);
  b.writeUInt16LE(h.version, 4);
  b.writeUInt8(h.policy, 6);
  b.writeUInt32LE(h.pid, 8);
  b.writeUInt32LE(h.heartbeat, 12);
  return b;
}

/**
 * Decodes a HELLO. Returns null if the magic is wrong (not a Plexus peer: hang up without an
 * answer); `reserved` tells whether the reserved bytes were all zero.
 */
export function decodeHello(b: Buffer, at = 0): (Hello & { reserved: boolean }) | null {
  if (b.readUInt32LE(at) !== TCP_MAGIC) return null;
  let reserved = b[at + 7] === 0;
  for (let i = 16; i < HANDSHAKE_BYTES; i++) if (b[at + i] !== 0) reserved = false;
  return {
    version: b.readUInt16LE(at + 4),
    policy: b[at + 6],
    pid: b.readUInt32LE(at + 8),
    heartbeat: b.readUInt32LE(at + 12),
    reserved,
  };
}

/** Encodes a WELCOME (32 bytes). */
export function encodeWelcome(w: Welcome): Buffer {
  const b = Buffer.alloc(HANDSHAKE_BYTES);
  b.writeUInt32LE(TCP_MAGIC, 0);
  b.writeUInt16LE(w.version, 4);
  b.writeUInt8(w.status, 6);
  b.writeUInt32LE(w.capacity, 8);
  b.writeUInt32LE(w.maxMessage, 12);
  b.writeUInt32LE(w.startSeq % 0x100000000, 16);
  b.writeUInt32LE(Math.floor(w.startSeq / 0x100000000), 20);
  b.writeUInt32LE(w.heartbeat, 24);
  return b;
}

/** Decodes and checks a WELCOME; anything inconsistent is a {@link ProtocolError}. */
export function decodeWelcome(b: Buffer, at = 0): Welcome {
  if (b.readUInt32LE(at) !== TCP_MAGIC) {
    throw new ProtocolError(`not a Plexus tcp sender (magic 0x${b.readUInt32LE(at).toString(16)})`);
  }
  const w: Welcome = {
    version: b.readUInt16LE(at + 4),
    status: b[at + 6],
    capacity: b.readUInt32LE(at + 8),
    maxMessage: b.readUInt32LE(at + 12),
    startSeq: 0,
    heartbeat: b.readUInt32LE(at + 24),
  };
  if (w.version !== TCP_VERSION) {
    throw new ProtocolError(`tcp protocol version mismatch: the sender speaks version ${w.version}, this receiver version ${TCP_VERSION}`);
  }
  if (w.status !== WelcomeStatus.Ok) return w;
  const hi = b.readUInt32LE(at + 20);
  if (hi > 0x1fffff) throw new ProtocolError("start sequence out of range");
  w.startSeq = hi * 0x100000000 + b.readUInt32LE(at + 16);
  if (w.capacity < MIN_WINDOW || w.capacity > MAX_WINDOW) throw new ProtocolError(`window of ${w.capacity} bytes out of range`);
  if (frameBytes(w.maxMessage) > w.capacity) throw new ProtocolError(`largest message ${w.maxMessage} does not fit the window of ${w.capacity}`);
  if (w.startSeq < 1) throw new ProtocolError("start sequence 0");
  if (w.heartbeat < 1) throw new ProtocolError("heartbeat of 0 ms");
  return w;
}


/** Checks an optional integer option. */
export function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

/** Checks an optional duration option in ms (positive, finite). */
export function msOption(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > 2 ** 31 - 1) {
    throw new InvalidArgumentError(`${name} must be a positive number of milliseconds, got ${String(v)}`);
  }
  return v;
}

/**
 * The frame's type together with its flags and reserved bytes, as one number: version 1 defines
 * no flags, so any non-zero flag or reserved bit makes it match no {@link FrameType}.
 */
export function frameType(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4);
}
