/**
 * The GraphServer control protocol: length-prefixed binary frames with a MessagePack body,
 * versioned, language-neutral (plain maps, strings, numbers, arrays). Specified in
 * docs/protocol.md ("Control protocol").
 * (Internal: not part of the public API.)
 * @module
 */
import { Packr, Unpackr } from "msgpackr";
import { FrameTooLargeError, ProtocolError } from "../errors.js";

/** Version byte of every control frame. */
export const CONTROL_VERSION = 1;
/** Bytes before the body: length (4), version (1), type (1), reserved (2), id (4). */
export const CONTROL_HEADER = 12;
/** Largest control frame accepted (header included), checked before any allocation. */
export const MAX_CONTROL_FRAME = 1 << 20;

/** Message types. */
export const enum MsgType {
  /** node -> server: `{ pid, host, threadId, name, token? }` (id 0). */
  Hello = 1,
  /** server -> node: `{ node, version }`. */
  Welcome = 2,
  /** node -> server: `{ op, ...args }`; answered by a Response with the same id. */
  Request = 3,
  /** server -> node: `{ ok: true, result }` or `{ ok: false, code, message }`. */
  Response = 4,
  /** server -> node: `{ subscriber, publishers }` (id = notification number). */
  Notify = 5,
  /** node -> server: the notification with this id was applied (empty body). */
  NotifyAck = 6,
}

/** One decoded control message. */
export interface ControlMessage {
  /** Message type. */
  type: MsgType;
  /** Request / notification id. */
  id: number;
  /** The body (a MessagePack map). */
  body: Record<string, unknown>;
}

const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Encodes one control frame. */
export function encodeControl(type: MsgType, id: number, body: Record<string, unknown>): Buffer {
  const payload = packr.pack(body);
  const total = CONTROL_HEADER + payload.length;
  if (total > MAX_CONTROL_FRAME) throw new FrameTooLargeError(`control message of ${total} bytes exceeds ${MAX_CONTROL_FRAME}`);
  const frame = Buffer.allocUnsafe(total);
  frame.writeUInt32LE(total - 4, 0);
  frame.writeUInt8(CONTROL_VERSION, 4);
  frame.writeUInt8(type, 5);
  frame.writeUInt16LE(0, 6);
  frame.writeUInt32LE(id >>> 0, 8);
  payload.copy(frame, CONTROL_HEADER);
  return frame;
}

/**
 * Splits a byte stream into control messages. `push` returns the complete messages; a
 * malformed frame throws ProtocolError (or FrameTooLargeError) and the stream must be dropped.
 */
export class ControlParser {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Feeds bytes; returns every message completed by them. */
  push(chunk: Buffer): ControlMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: ControlMessage[] = [];
    for (;;) {
      if (this.buffered < 4) return out;
      const head = this.peek(4);
      const length = head.readUInt32LE(0);
      if (length + 4 > MAX_CONTROL_FRAME) throw new FrameTooLargeError(`control frame of ${length + 4} bytes exceeds ${MAX_CONTROL_FRAME}`);
      if (length < CONTROL_HEADER - 4) throw new ProtocolError(`control frame too short (${length + 4} bytes)`);
      if (this.buffered < length + 4) return out;
      const frame = this.take(length + 4);
      out.push(decodeFrame(frame));
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const frame = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return frame;
  }
}

function decodeFrame(frame: Buffer): ControlMessage {
  const version = frame.readUInt8(4);
  if (version !== CONTROL_VERSION) throw new ProtocolError(`control protocol version ${version} is not supported (this is ${CONTROL_VERSION})`);
  const type = frame.readUInt8(5) as MsgType;
  if (type < MsgType.Hello || type > MsgType.NotifyAck) throw new ProtocolError(`unknown control message type ${type}`);
  const id = frame.readUInt32LE(8);
  let body: unknown;
  try {
    body = frame.length === CONTROL_HEADER ? {} : unpackr.unpack(frame.subarray(CONTROL_HEADER));
  } catch (err) {
    throw new ProtocolError("malformed MessagePack body in a control frame", { cause: err });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new ProtocolError("a control message body must be a map");
  return { type, id, body: body as Record<string, unknown> };
}
