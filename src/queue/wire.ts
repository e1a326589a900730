/**
 * The queue wire protocol: the queue's message table on the frame and handshake of every
 * Plexus connection (net/): data frames carrying one codec frame each, acknowledgements by
 * serial, and the queue's HELLO / WELCOME body. The same frames travel over TCP, TLS and MQTT. Specified in docs/protocol.md §7.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { ProtocolError } from "../errors.js";
import { FRAME_HEADER, NetType, writeFrameHeader, type FrameHeader } from "../net/frame.js";
import type { FrameTable } from "../net/frame-parser.js";
import { Status, type HandshakeSpec } from "../net/handshake.js";
import { Slab } from "../util/slab.js";

/**
 * The queue's handshake: magic "PLXQ", version 3 (2 carried a session token in its own
 * handshake; 3 is built on the common frame and handshake of every Plexus connection).
 */
export const QUEUE_SPEC: HandshakeSpec = { name: "queue", server: "queue server", magic: 0x51584c50, version: 3, minVersion: 3, capabilities: 0 };
/** Version of the queue wire protocol. */
export const QUEUE_VERSION = QUEUE_SPEC.version;
/** Bytes of a frame header. */
export const HEADER_BYTES = FRAME_HEADER;
/** Bytes of the queue's HELLO and WELCOME body (after the preamble). */
export const BODY_BYTES = 32;
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

/** Frame types (the header's type byte): the queue's, and the connection's it uses. */
export const enum QFrame {
  /** Client -> server: first frame of a connection (the connection's HELLO). */
  Hello = NetType.Hello,
  /** Server -> client: answer to HELLO (the connection's WELCOME). */
  Welcome = NetType.Welcome,
  /** One message; `a` is its serial per direction and session. Flag bit 0: ack on release. */
  Data = 3,
  /** The receiver took (fast) or released (reliable) DATA `a`. */
  Ack = 4,
  /** The receiver refused DATA `a`; payload: reason code (u32) + UTF-8 text. */
  Nack = 5,
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

/** WELCOME status codes: the connection's, and the queue's own. */
export const enum HandshakeStatus {
  /** Joined. */
  Ok = Status.Ok,
  /** No version both ends speak. */
  Version = Status.Version,
  /** The HELLO was malformed. */
  Malformed = Status.Malformed,
  /** The server has as many clients as it accepts. */
  Full = Status.Full,
  /** Another client (another session token) took this identity over since this token's session. */
  Superseded = 16,
}

/** NACK reason codes. */
export const enum NackReason {
  /** The payload is not a well-formed codec frame. */
  Malformed = 1,
  /** The receiver closed before it could take the message. */
  Closed = 2,
  /**
   * The receiver failed to handle the message (a bridge could not forward it): the text is the
   * error's code (`ERR_PLEXUS_…`), a space, and its message; the sender's put rejects with that
   * error's class.
   */
  Failed = 3,
}

/** The queue's part of a HELLO or WELCOME (the body after the preamble). */
export interface HandshakeBody {
  /** WELCOME: the server kept this client's session (reconnection). false in a HELLO. */
  resumed: boolean;
  /** DATA frames the writer of this block may have unacknowledged at once (1..1024). */
  slots: number;
  /** Largest DATA payload the writer of this block accepts. */
  maxMessage: number;
  /** The writer's identity (16 bytes). */
  identity: Buffer;
  /**
   * The session token (8 bytes). HELLO: random per client object, the same on each of its
   * reconnections — a HELLO with the token of the identity's session resumes it, another token
   * starts a new session. WELCOME: the HELLO's token, echoed (refusals too).
   */
  session: Buffer;
}

/** A frame header as parsed (`a` is the serial of DATA, ACK and NACK). */
export type Header = FrameHeader;

/** Writes a header at `at` of `b`. */
export function writeHeader(b: Buffer, at: number, length: number, type: QFrame, flags: number, serial: number): void {
  writeFrameHeader(b, at, length, type, flags, serial >>> 0, 0);
}

const slab = new Slab();

/** A new header buffer. */
export function header(length: number, type: QFrame, flags: number, serial: number): Buffer {
  const b = slab.take(HEADER_BYTES);
  writeHeader(b, 0, length, type, flags, serial);
  return b;
}

/**
 * The queue's frame table: checks a header of its own types before anything is allocated for
 * its payload — known type, allowed flags, the word `b` zero, length within the type's fixed
 * size or the announced `maxMessage` ("too-large": the parser raises `FrameTooLargeError`).
 */
export function frameTable(maxMessage: number): FrameTable {
  return {
    maxMessage,
    check(h: Header): "ok" | "too-large" {
      if (h.b !== 0) throw new ProtocolError(`queue frame ${h.type} with a non-zero second word`);
      switch (h.type) {
        case QFrame.Data:
          if ((h.flags & ~FLAG_RELIABLE) !== 0) throw new ProtocolError(`DATA frame with unknown flags 0x${h.flags.toString(16)}`);
          return h.length > maxMessage ? "too-large" : "ok";
        case QFrame.Nack:
          if (h.length < 4 || h.length > MAX_NACK_BYTES || h.flags !== 0) throw new ProtocolError(`malformed NACK frame (length ${h.length})`);
          return "ok";
        case QFrame.Ack:
          if (h.length !== 0 || h.flags !== 0) throw new ProtocolError("ACK frame with a payload or flags");
          return "ok";
        case QFrame.Bye:
          if (h.length !== 0 || h.a !== 0 || (h.flags & ~(FLAG_IDLE | FLAG_TAKEN_OVER)) !== 0) throw new ProtocolError("BYE with a payload or unknown flags");
          return "ok";
        default:
          throw new ProtocolError(`unknown queue frame type ${h.type}`);
      }
    },
  };
}

/** Encodes the queue's HELLO or WELCOME body. */
export function encodeBody(b: HandshakeBody): Buffer {
  const out = Buffer.alloc(BODY_BYTES);
  out[0] = b.resumed ? 1 : 0;
  out.writeUInt16LE(b.slots, 2);
  out.writeUInt32LE(b.maxMessage, 4);
  b.identity.copy(out, 8, 0, IDENTITY_BYTES);
  b.session.copy(out, 24, 0, TOKEN_BYTES);
  return out;
}

/** Decodes and checks the queue's HELLO or WELCOME body (a {@link ProtocolError} if malformed). */
export function decodeBody(p: Buffer): HandshakeBody {
  if (p.length !== BODY_BYTES) throw new ProtocolError(`a queue handshake body of ${p.length} bytes (${BODY_BYTES} expected)`);
  if (p[0] > 1 || p[1] !== 0) throw new ProtocolError("a queue handshake with non-zero reserved bytes");
  const b: HandshakeBody = {
    resumed: p[0] === 1,
    slots: p.readUInt16LE(2),
    maxMessage: p.readUInt32LE(4),
    identity: Buffer.from(p.subarray(8, 8 + IDENTITY_BYTES)),
    session: Buffer.from(p.subarray(24, 24 + TOKEN_BYTES)),
  };
  if (b.slots < 1 || b.slots > MAX_SLOTS) throw new ProtocolError(`a queue handshake announces ${b.slots} slots (1..${MAX_SLOTS})`);
  return b;
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
