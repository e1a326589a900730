/**
 * What a pub/sub message looks like in a ring or on a socket: a 16-byte header (magic,
 * flags, the publisher's sequence number) and the codec's frame. Specified in docs/protocol.md.
 * (Internal: not part of the public API.)
 * @module
 */
import { ProtocolError } from "../errors.js";
import { decode, encodedSize, encodeInto, writeRawFrameHeader } from "../codec/index.js";
import { HEADER_BYTES } from "../codec/format.js";

/** "PXS1". */
const MAGIC = 0x31535850;
/** Header bytes before the codec frame. */
export const WIRE_HEADER = 16;

/** An encoded message, ready to be written into a loan of exactly `size` bytes. */
export interface Prepared {
  /** Bytes the message takes. */
  readonly size: number;
  /** Writes the message into `target[at .. at + size)` (`at` defaults to 0). */
  writeTo(target: Uint8Array, at?: number): void;
}

/** Scratch for the sequence number's 8 bytes (little-endian float64, as every platform Node runs on). */
const seqScratch = new Float64Array(1);
const seqBytes = new Uint8Array(seqScratch.buffer);

/**
 * Writes the 16-byte header at `target[at]`. Byte stores, not a DataView: a DataView costs
 * ~200 ns to make, several times the rest of the header.
 */
function writeHeader(target: Uint8Array, at: number, sequence: number): void {
  target[at] = MAGIC & 0xff;
  target[at + 1] = (MAGIC >>> 8) & 0xff;
  target[at + 2] = (MAGIC >>> 16) & 0xff;
  target[at + 3] = MAGIC >>> 24;
  target[at + 4] = target[at + 5] = target[at + 6] = target[at + 7] = 0;
  seqScratch[0] = sequence;
  for (let i = 0; i < 8; i++) target[at + 8 + i] = seqBytes[i];
}

/** Encodes `value` once (throws `EncodeError` for values that cannot travel). */
export function prepare(value: unknown, sequence: number): Prepared {
  const plan = encodedSize(value);
  return {
    size: WIRE_HEADER + plan.byteLength,
    writeTo(target: Uint8Array, at = 0): void {
      writeHeader(target, at, sequence);
      // The codec writes the body and copies each buffer straight into `target`: one copy in.
      encodeInto(plan, target, at + WIRE_HEADER);
    },
  };
}

/** Bytes in front of a raw payload written in place: the wire header and the codec's raw-frame header. */
export const RAW_PREFIX = WIRE_HEADER + HEADER_BYTES;

/** Writes the headers in front of a raw payload of `length` bytes that is already in place at `target[RAW_PREFIX]`. */
export function writeRawHeaders(target: Uint8Array, sequence: number, length: number): void {
  writeHeader(target, 0, sequence);
  writeRawFrameHeader(target, WIRE_HEADER, length);
}

/** Decodes a message (views into `bytes`, no copy of its buffers). */
export function decodeFrame(bytes: Uint8Array): { sequence: number; value: unknown } {
  if (bytes.length < WIRE_HEADER) throw new ProtocolError(`pub/sub frame of ${bytes.length} bytes is shorter than its header`);
  if ((bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0 !== MAGIC) throw new ProtocolError("not a Plexus pub/sub frame (bad magic)");
  for (let i = 0; i < 8; i++) seqBytes[i] = bytes[8 + i];
  const sequence = seqScratch[0];
  return { sequence, value: decode(new Uint8Array(bytes.buffer, bytes.byteOffset + WIRE_HEADER, bytes.length - WIRE_HEADER)) };
}
