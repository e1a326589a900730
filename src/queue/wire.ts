/**
 * The queue wire protocol: a 12-byte header with a type byte on every frame, a versioned
 * handshake (HELLO / WELCOME), data frames carrying one codec frame each, and acknowledgements
 * by serial. The same frames travel over TCP, TLS and MQTT. Specified in docs/protocol.md §7.
 * (Internal: not part of the public API.)
 * @module
 */
import { ProtocolError } from "../errors.js";
import { Slab } from "./slab.js";

/** "PLXQ" little-endian: first 4 bytes of HELLO and WELCOME payloads. */
export const QUEUE_MAGIC = 0x51584c50;
/**
 * Version of the queue wire protocol. 2: the handshake carries a session token (a new client
 * with a known identity starts a new session instead of resuming another client's).
 */
export const QUEUE_VERSION = 2;
/** Bytes of a frame header. */
export const HEADER_BYTES = 12;
/** Bytes of a HELLO or WELCOME payload (of this version). */
export const HANDSHAKE_BYTES = 44;
/**
 * Handshake payload lengths a receiver reads far enough to answer a version it does not speak
 * (another version's handshake may be shorter or longer than this one's).
 */
export const MIN_HANDSHAKE_BYTES = 8;
/** See {@link MIN_HANDSHAKE_BYTES}. */
export const MAX_HANDSHAKE_BYTES = 256;
/** Bytes of a peer identity. */
export const IDENTITY_BYTES = 16;
/** Bytes of a session token. */
export const TOKEN_BYTES = 8;
/** Largest NACK payload: a 4-byte reason code and at most 252 bytes of UTF-8 text. */
export const MAX_NACK_BYTES = 256;
/** Largest message size the protocol can express (a DATA payload): 4 GiB - 1. */
export const MAX_PAYLOAD = 0xffffffff;
/** Most slots (unacknowledged DATA frames in flight per direction) the protocol allows. */
export const MAX_SLOTS = 1024;

/** Frame types (the byte at offset 4 of every header). */
export const enum QFrame {
  /** Client -> server: first frame of a connection. */
  Hello = 1,
  /** Server -> client: answer to HELLO. */
  Welcome = 2,
  /** One message; `serial` numbers it per direction and session. Flag bit 0: ack on release. */
  Data = 3,
  /** The receiver took (fast) or released (reliable) DATA `serial`. */
  Ack = 4,
  /** The receiver refused DATA `serial`; payload: reason code (u32) + UTF-8 text. */
  Nack = 5,
  /** Keep-alive while idle. */
  Ping = 6,
  /** The sender ends the session (graceful close); no more frames follow. */
  Bye = 7,
}

/** DATA flag: acknowledge on release (reliable), not on receipt (fast). */
export const FLAG_RELIABLE = 1;

/** BYE flag (server -> client): the session was collected while idle; the client may start a new one. */
export const FLAG_IDLE = 1;

/**
 * BYE flag (server -> client): another client (another session token) connected with this
 * client's identity and took it over; this client's session is over and it must not come back.
 */
export const FLAG_TAKEN_OVER = 2;

/** WELCOME status codes. */
export const enum HandshakeStatus {
  /** Joined. */
  Ok = 0,
  /** The server does not speak the HELLO's version. */
  Version = 1,
  /** The HELLO was malformed. */
  Malformed = 2,
  /** The server has as many clients as it accepts. */
  Full = 3,
  /** Another client (another session token) took this identity over since this token's session. */
  Superseded = 4,
}

/** NACK reason codes. */
export const enum NackReason {
  /** The payload is not a well-formed codec frame. */
  Malformed = 1,
  /** The receiver closed before it could take the message. */
  Closed = 2,
}

/** The fields of a HELLO or WELCOME. */
export interface Handshake {
  /** Protocol version spoken. */
  version: number;
  /** WELCOME status (0 in a HELLO). */
  status: number;
  /** WELCOME: the server kept this client's session (reconnection). 0 in a HELLO. */
  resumed: boolean;
  /** DATA frames the writer of this block may have unacknowledged at once (1..1024). */
  slots: number;
  /** How often the writer of this block sends when idle, in ms. */
  heartbeat: number;
  /** Largest DATA payload the writer of this block accepts. */
  maxMessage: number;
  /** The writer's identity (16 bytes). */
  identity: Buffer;
  /**
   * The session token (8 bytes). HELLO: random per client object, the same on each of its
   * reconnections — a HELLO with the token of the identity's session resumes it, another token
   * starts a new session. WELCOME: the HELLO's token, echoed.
   */
  session: Buffer;
}

/** A frame header as parsed. */
export interface Header {
  length: number;
  type: number;
  flags: number;
  serial: number;
}

/** Writes a header at `at` of `b`. */
export function writeHeader(b: Buffer, at: number, length: number, type: QFrame, flags: number, serial: number): void {
  b.writeUInt32LE(length, at);
  b[at + 4] = type;
  b[at + 5] = flags;
  b.writeUInt16LE(0, at + 6);
  b.writeUInt32LE(serial >>> 0, at + 8);
}

const slab = new Slab();

/** A new header buffer. */
export function header(length: number, type: QFrame, flags: number, serial: number): Buffer {
  const b = slab.take(HEADER_BYTES);
  writeHeader(b, 0, length, type, flags, serial);
  return b;
}

/** Reads a header; a non-zero reserved field is a {@link ProtocolError}. */
export function readHeader(b: Buffer, at: number): Header {
  if (b.readUInt16LE(at + 6) !== 0) throw new ProtocolError("queue frame with non-zero reserved bytes");
  return { length: b.readUInt32LE(at), type: b[at + 4], flags: b[at + 5], serial: b.readUInt32LE(at + 8) };
}

/**
 * Checks a header before anything is allocated for its payload: known type, allowed flags,
 * length within the type's fixed size or the announced `maxMessage`. Throws `ProtocolError`,
 * or returns "too-large" for a DATA frame above `maxMessage` (the caller raises
 * `FrameTooLargeError`).
 */
export function checkHeader(h: Header, maxMessage: number): "ok" | "too-large" {
  switch (h.type) {
    case QFrame.Hello:
    case QFrame.Welcome:
      // Any length a handshake of some version may have: the version is read before the length is held to this one's.
      if (h.length < MIN_HANDSHAKE_BYTES || h.length > MAX_HANDSHAKE_BYTES || h.flags !== 0) throw new ProtocolError(`malformed handshake frame (length ${h.length})`);
      return "ok";
    case QFrame.Data:
      if ((h.flags & ~FLAG_RELIABLE) !== 0) throw new ProtocolError(`DATA frame with unknown flags 0x${h.flags.toString(16)}`);
      return h.length > maxMessage ? "too-large" : "ok";
    case QFrame.Nack:
      if (h.length < 4 || h.length > MAX_NACK_BYTES || h.flags !== 0) throw new ProtocolError(`malformed NACK frame (length ${h.length})`);
      return "ok";
    case QFrame.Ack:
    case QFrame.Ping:
      if (h.length !== 0 || h.flags !== 0) throw new ProtocolError(`control frame ${h.type} with a payload or flags`);
      return "ok";
    case QFrame.Bye:
      if (h.length !== 0 || (h.flags & ~(FLAG_IDLE | FLAG_TAKEN_OVER)) !== 0) throw new ProtocolError("BYE with a payload or unknown flags");
      return "ok";
    default:
      throw new ProtocolError(`unknown queue frame type ${h.type}`);
  }
}

/** Encodes a HELLO or WELCOME frame (header included). */
export function encodeHandshake(type: QFrame.Hello | QFrame.Welcome, h: Handshake): Buffer {
  const b = Buffer.alloc(HEADER_BYTES + HANDSHAKE_BYTES);
  writeHeader(b, 0, HANDSHAKE_BYTES, type, 0, 0);
  const p = HEADER_BYTES;
  b.writeUInt32LE(QUEUE_MAGIC, p);
  b.writeUInt16LE(h.version, p + 4);
  b[p + 6] = h.status;
  b[p + 7] = h.resumed ? 1 : 0;
  b.writeUInt16LE(h.slots, p + 8);
  b.writeUInt32LE(h.heartbeat, p + 12);
  b.writeUInt32LE(h.maxMessage, p + 16);
  h.identity.copy(b, p + 20, 0, IDENTITY_BYTES);
  h.session.copy(b, p + 36, 0, TOKEN_BYTES);
  return b;
}

/**
 * Decodes a HELLO or WELCOME payload. A wrong magic is a {@link ProtocolError}; another
 * version is returned with its version and status only (the caller answers the mismatch; the
 * other fields are zero); this version's fields are length- and range-checked.
 */
export function decodeHandshake(p: Buffer): Handshake {
  if (p.length < MIN_HANDSHAKE_BYTES) throw new ProtocolError(`handshake of ${p.length} bytes`);
  if (p.readUInt32LE(0) !== QUEUE_MAGIC) throw new ProtocolError(`not a Plexus queue peer (magic 0x${p.readUInt32LE(0).toString(16)})`);
  const version = p.readUInt16LE(4);
  if (version !== QUEUE_VERSION) {
    return { version, status: p[6], resumed: false, slots: 0, heartbeat: 0, maxMessage: 0, identity: Buffer.alloc(IDENTITY_BYTES), session: Buffer.alloc(TOKEN_BYTES) };
  }
  if (p.length !== HANDSHAKE_BYTES) throw new ProtocolError(`version ${version} handshake of ${p.length} bytes (${HANDSHAKE_BYTES} expected)`);
  const h: Handshake = {
    version,
    status: p[6],
    resumed: p[7] === 1,
    slots: p.readUInt16LE(8),
    heartbeat: p.readUInt32LE(12),
    maxMessage: p.readUInt32LE(16),
    identity: Buffer.from(p.subarray(20, 20 + IDENTITY_BYTES)),
    session: Buffer.from(p.subarray(36, 36 + TOKEN_BYTES)),
  };
  if (p[7] > 1 || p.readUInt16LE(10) !== 0) throw new ProtocolError("handshake with non-zero reserved bytes");
  if (h.slots < 1 || h.slots > MAX_SLOTS) throw new ProtocolError(`handshake announces ${h.slots} slots (1..${MAX_SLOTS})`);
  if (h.heartbeat < 1) throw new ProtocolError("handshake announces a heartbeat of 0 ms");
  return h;
}

/** A NACK frame. */
export function encodeNack(serial: number, reason: NackReason, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 200), "utf8").subarray(0, MAX_NACK_BYTES - 4);
  const b = Buffer.allocUnsafe(HEADER_BYTES + 4 + t.length);
  writeHeader(b, 0, 4 + t.length, QFrame.Nack, 0, serial);
  b.writeUInt32LE(reason, HEADER_BYTES);
  t.copy(b, HEADER_BYTES + 4);
  return b;
}

/** Signed distance between two serials (modulo 2^32). */
export function serialDiff(a: number, b: number): number {
  return (a - b) | 0;
}
