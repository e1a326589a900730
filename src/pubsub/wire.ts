/**
 * What a pub/sub message looks like in a ring or on a socket: a 16-byte header (magic,
 * flags, the publisher's sequence number) and the codec's frame. Specified in docs/protocol.md.
 * (Internal: not part of the public API.)
 * @module
 */
import { ProtocolError } from "../errors.js";
import { decode, encodedSize, encodeInto } from "../codec/index.js";
import { FRAME_MAGIC, FRAME_VERSION, FrameKind, HEADER_BYTES } from "../codec/format.js";

/** "PXS1". */
const MAGIC = 0x31535850;
/** Header bytes before the codec frame. */
export const WIRE_HEADER = 16;

/** An encoded message, ready to be written into a loan of exactly `size` bytes. */
export interface Prepared {
  /** Bytes the message takes. */
  readonly size: number;
  /** Writes the message into `target` (at least `size` bytes). */
  writeTo(target: Uint8Array): void;
}

/** Encodes `value` once (throws `EncodeError` for values that cannot travel). */
export function prepare(value: unknown, sequence: number): Prepared {
  const plan = encodedSize(value);
  return {
    size: WIRE_HEADER + plan.byteLength,
    writeTo(target: Uint8Array): void {
      const v = new DataView(target.buffer, target.byteOffset, WIRE_HEADER);
      v.setUint32(0, MAGIC, true);
      v.setUint32(4, 0, true);
      v.setFloat64(8, sequence, true);
      // The codec writes the body and copies each buffer straight into `target`: one copy in.
      encodeInto(plan, target.subarray(WIRE_HEADER));
    },
  };
}

/** Bytes in front of a raw payload written in place: the wire header and the codec's raw-frame header. */
export const RAW_PREFIX = WIRE_HEADER + HEADER_BYTES;

/** Writes the headers in front of a raw payload of `length` bytes that is already in place at `target[RAW_PREFIX]`. */
export function writeRawHeaders(target: Uint8Array, sequence: number, length: number): void {
  const v = new DataView(target.buffer, target.byteOffset, RAW_PREFIX);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, 0, true);
  v.setFloat64(8, sequence, true);
  v.setUint32(WIRE_HEADER, FRAME_MAGIC, true);
  v.setUint8(WIRE_HEADER + 4, FRAME_VERSION);
  v.setUint8(WIRE_HEADER + 5, FrameKind.Raw);
  v.setUint16(WIRE_HEADER + 6, 0, true);
  v.setUint32(WIRE_HEADER + 8, length, true);
  v.setUint32(WIRE_HEADER + 12, 0, true);
}

/** Decodes a message (views into `bytes`, no copy of its buffers). */
export function decodeFrame(bytes: Uint8Array): { sequence: number; value: unknown } {
  if (bytes.length < WIRE_HEADER) throw new ProtocolError(`pub/sub frame of ${bytes.length} bytes is shorter than its header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, WIRE_HEADER);
  if (v.getUint32(0, true) !== MAGIC) throw new ProtocolError("not a Plexus pub/sub frame (bad magic)");
  const sequence = v.getFloat64(8, true);
  return { sequence, value: decode(bytes.subarray(WIRE_HEADER)) };
}
