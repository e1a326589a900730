/**
 * The GraphServer control protocol: its message table on the frame and handshake of every
 * Plexus connection (net/), each body a MessagePack map — language-neutral (plain maps,
 * strings, numbers, arrays). Specified in
 * docs/protocol.md ("Control protocol").
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { Packr, Unpackr } from "msgpackr";
import { FrameTooLargeError, ProtocolError } from "../errors.js";
import { frame, FRAME_HEADER, NetType, type FrameHeader } from "../net/frame.js";
import { FrameParser, type FrameTable } from "../net/frame-parser.js";
import type { HandshakeSpec } from "../net/handshake.js";

/**
 * The control protocol's handshake: magic "PLXG", version 2 (1 had its own 12-byte header and
 * hello; 2 is built on the common frame and handshake of every Plexus connection). Control
 * connections send no heartbeats (heartbeat 0): a node's death is its connection's end.
 */
export const CONTROL_SPEC: HandshakeSpec = { name: "the GraphServer control protocol", server: "GraphServer", magic: 0x47584c50, version: 2, minVersion: 2, capabilities: 0 };
/** Largest control message body accepted, checked from the header before any allocation. */
export const MAX_CONTROL_FRAME = 1 << 20;
/** WELCOME status of the control protocol: the HELLO's access token is wrong or missing. */
export const STATUS_ACCESS_DENIED = 16;

/** Message types. */
export const enum MsgType {
  /** node -> server, the connection's HELLO: body `{ pid, host, threadId, name, token? }`. */
  Hello = NetType.Hello,
  /** server -> node, the connection's WELCOME: body `{ node }` (joined) or a reason (refused). */
  Welcome = NetType.Welcome,
  /** node -> server: `{ op, ...args }`; answered by a Response with the same id. */
  Request = 3,
  /** server -> node: `{ ok: true, result }` or `{ ok: false, code, message }`. */
  Response = 4,
  /** server -> node: `{ subscriber, publishers }` (id = notification number). */
  Notify = 5,
  /** node -> server: the notification with this id was applied (body `{}`). */
  NotifyAck = 6,
}

/** One decoded control message. */
export interface ControlMessage {
  /** Message type. */
  type: MsgType;
  /** Request / notification id (the header's `a`; a WELCOME's status). */
  id: number;
  /** The body (a MessagePack map); empty for HELLO and WELCOME, whose payload is {@link payload}. */
  body: Record<string, unknown>;
  /** HELLO and WELCOME: the payload (the handshake preamble, then the body), read by net/handshake.ts. */
  payload?: Buffer;
  /** The frame's header. */
  header: FrameHeader;
}

const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Encodes a MessagePack map (a message body, or a HELLO / WELCOME body). */
export function packBody(body: Record<string, unknown>): Buffer {
  return packr.pack(body);
}

/** Decodes a MessagePack map (a {@link ProtocolError} if it is not one). */
export function unpackBody(b: Uint8Array): Record<string, unknown> {
  let body: unknown;
  try {
    body = b.length === 0 ? {} : unpackr.unpack(b);
  } catch (err) {
    throw new ProtocolError("malformed MessagePack body in a control message", { cause: err });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new ProtocolError("a control message body must be a map");
  return body as Record<string, unknown>;
}

/** Encodes one control message (a Request, Response, Notify or NotifyAck frame). */
export function encodeControl(type: MsgType.Request | MsgType.Response | MsgType.Notify | MsgType.NotifyAck, id: number, body: Record<string, unknown>): Buffer {
  const payload = packBody(body);
  if (payload.length > MAX_CONTROL_FRAME) throw new FrameTooLargeError(`control message of ${payload.length} bytes exceeds ${MAX_CONTROL_FRAME}`);
  return frame(type, 0, id >>> 0, 0, payload);
}

/** The control protocol's frame table: types 3..6, no flags, `b` zero, bodies up to 1 MiB. */
const TABLE: FrameTable = {
  maxMessage: MAX_CONTROL_FRAME,
  check(h: FrameHeader): "ok" | "too-large" {
    if (h.type < MsgType.Request || h.type > MsgType.NotifyAck) throw new ProtocolError(`unknown control message type ${h.type}`);
    if (h.flags !== 0 || h.b !== 0) throw new ProtocolError(`control message type ${h.type} with flags or a second word`);
    return h.length > MAX_CONTROL_FRAME ? "too-large" : "ok";
  },
};

/**
 * Splits a byte stream into control messages. `push` returns the complete messages; a
 * malformed frame throws ProtocolError (or FrameTooLargeError) and the stream must be dropped.
 */
export class ControlParser {
  private out: ControlMessage[] = [];
  private readonly frames = new FrameParser(TABLE, (h, f) => {
    const payload = f.subarray(FRAME_HEADER);
    if (h.type >= NetType.Hello) this.out.push({ type: h.type as MsgType, id: h.a, body: {}, payload, header: h });
    else this.out.push({ type: h.type as MsgType, id: h.a, body: unpackBody(payload), header: h });
  });

  /** Feeds bytes; returns every message completed by them. */
  push(chunk: Buffer): ControlMessage[] {
    this.frames.push(chunk);
    const out = this.out;
    this.out = [];
    return out;
  }
}
