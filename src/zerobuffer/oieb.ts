/**
 * The Operation Info Exchange Block (OIEB): the header at offset 0 of every buffer
 * (docs/zerobuffer-protocol.md §4), plus the metadata block that follows it (§5). Protocol 1
 * uses the first 128 bytes; protocol 2 (the in-place duplex, docs/zerobuffer.md) keeps the same
 * first 0x60 bytes and adds two operation blocks, 256 bytes in all.
 *
 * 64-bit fields are read and written through a `BigInt64Array` with `Atomics` (aligned 8-byte
 * loads and stores); `payload_free_bytes`, the only field both sides change, only with
 * `Atomics.add` / `Atomics.sub` (a hardware read-modify-write, like `__atomic_fetch_add_8`).
 * (Internal: not part of the public API.)
 * @module
 */
import { FrameTooLargeError, InvalidArgumentError, ProtocolError } from "../errors.js";
import { MetadataAlreadyWrittenError } from "./errors.js";

/** `oieb_size` of protocol 1. */
export const OIEB_V1_SIZE = 128;
/** `oieb_size` of protocol 2 (in-place duplex). */
export const OIEB_V2_SIZE = 256;
/** Size of a frame header in protocol 1: `{u64 payload_size, u64 sequence_number}`. */
export const FRAME_HEADER_V1 = 16;

/** Index of each 64-bit field in a `BigInt64Array` over the header (byte offset / 8). */
export const Q = {
  /** 0x08 metadata_size. */
  metadataSize: 1,
  /** 0x10 metadata_free_bytes. */
  metadataFree: 2,
  /** 0x18 metadata_written_bytes. */
  metadataWritten: 3,
  /** 0x20 payload_size. */
  payloadSize: 4,
  /** 0x28 payload_free_bytes (atomic RMW only). */
  payloadFree: 5,
  /** 0x30 payload_write_pos (v1). */
  writePos: 6,
  /** 0x38 payload_read_pos (v1). */
  readPos: 7,
  /** 0x40 payload_written_count (v1: frames + real markers). */
  writtenCount: 8,
  /** 0x48 payload_read_count (v1: frames + markers). */
  readCount: 9,
  /** 0x50 writer_pid (v2: client_pid). */
  writerPid: 10,
  /** 0x58 reader_pid (v2: server_pid). */
  readerPid: 11,
  /** 0x80 v2 request block: request_write_pos (client). */
  requestWritePos: 16,
  /** 0x88 v2 request block: request_written_count (client; frames + markers). */
  requestWrittenCount: 17,
  /** 0x90 v2 request block: response_read_pos (client). */
  responseReadPos: 18,
  /** 0x98 v2 request block: response_read_count (client; frames + markers). */
  responseReadCount: 19,
  /** 0xA0 v2 request block: session_request (client; incremented when a client connects). */
  sessionRequest: 20,
  /** 0xC0 v2 response block: request_read_pos (server; where it answers next). */
  requestReadPos: 24,
  /** 0xC8 v2 response block: request_read_count (server; frames + markers). */
  requestReadCount: 25,
  /** 0xD0 v2 response block: response_written_count (server; responses only). */
  responseWrittenCount: 26,
  /** 0xD8 v2 response block: session_ack (server; = session_request once the ring is reset). */
  sessionAck: 27,
} as const;

/** Rounds up to a multiple of 64 (`align64` of the reference). */
export function align64(x: number): number {
  return Math.ceil(x / 64) * 64;
}

/** A 64-bit little-endian unsigned integer at any byte offset, as a Number (exact below 2^53). */
export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset + 4, true) * 4294967296 + view.getUint32(offset, true);
}

/** Writes a 64-bit little-endian unsigned integer (a safe integer) at any byte offset. */
export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 4294967296), true);
}

/** Typed access to the header of a mapped buffer. */
export class Header {
  /** The 64-bit fields. */
  readonly q: BigInt64Array;
  private readonly u32: Uint32Array;
  private readonly u8: Uint8Array;

  /**
   * @param buffer - the mapped segment
   * @param bytes - header size to cover (128 or 256); the segment must be at least that large
   */
  constructor(buffer: SharedArrayBuffer, bytes: number) {
    this.q = new BigInt64Array(buffer, 0, bytes / 8);
    this.u32 = new Uint32Array(buffer, 0, 2);
    this.u8 = new Uint8Array(buffer, 0, 8);
  }

  /** `oieb_size` (u32 at 0). */
  get oiebSize(): number {
    return Atomics.load(this.u32, 0);
  }
  set oiebSize(v: number) {
    Atomics.store(this.u32, 0, v);
  }

  /** `version.major` (byte 4). */
  get major(): number {
    return Atomics.load(this.u8, 4);
  }

  /** Writes the version bytes (major, minor, patch, reserved). */
  setVersion(major: number, minor: number, patch: number): void {
    Atomics.store(this.u8, 4, major);
    Atomics.store(this.u8, 5, minor);
    Atomics.store(this.u8, 6, patch);
    Atomics.store(this.u8, 7, 0);
  }

  /** The version as "major.minor.patch". */
  get version(): string {
    return `${Atomics.load(this.u8, 4)}.${Atomics.load(this.u8, 5)}.${Atomics.load(this.u8, 6)}`;
  }

  /** Loads a 64-bit field as a Number. */
  load(i: number): number {
    return Number(Atomics.load(this.q, i));
  }

  /** Stores a 64-bit field. */
  store(i: number, v: number): void {
    Atomics.store(this.q, i, BigInt(v));
  }

  /** Atomic add (returns nothing; the RMW is what matters). */
  add(i: number, v: number): void {
    Atomics.add(this.q, i, BigInt(v));
  }

  /** Atomic subtract. */
  sub(i: number, v: number): void {
    Atomics.sub(this.q, i, BigInt(v));
  }

  /** Compare-and-swap of a 64-bit field; true if it held `expected` and now holds `value`. */
  cas(i: number, expected: number, value: number): boolean {
    const e = BigInt(expected);
    return Atomics.compareExchange(this.q, i, e, BigInt(value)) === e;
  }
}

/** Every header field of a protocol 1 buffer, as numbers (for diagnostics and tests). */
export interface HeaderSnapshot {
  /** oieb_size. */
  oiebSize: number;
  /** "major.minor.patch". */
  version: string;
  /** metadata_size. */
  metadataSize: number;
  /** metadata_free_bytes. */
  metadataFreeBytes: number;
  /** metadata_written_bytes. */
  metadataWrittenBytes: number;
  /** payload_size. */
  payloadSize: number;
  /** payload_free_bytes. */
  payloadFreeBytes: number;
  /** payload_write_pos. */
  writePos: number;
  /** payload_read_pos. */
  readPos: number;
  /** payload_written_count. */
  writtenCount: number;
  /** payload_read_count. */
  readCount: number;
  /** writer_pid. */
  writerPid: number;
  /** reader_pid. */
  readerPid: number;
}

/** Reads every protocol 1 field. */
export function snapshot(h: Header): HeaderSnapshot {
  return {
    oiebSize: h.oiebSize,
    version: h.version,
    metadataSize: h.load(Q.metadataSize),
    metadataFreeBytes: h.load(Q.metadataFree),
    metadataWrittenBytes: h.load(Q.metadataWritten),
    payloadSize: h.load(Q.payloadSize),
    payloadFreeBytes: h.load(Q.payloadFree),
    writePos: h.load(Q.writePos),
    readPos: h.load(Q.readPos),
    writtenCount: h.load(Q.writtenCount),
    readCount: h.load(Q.readCount),
    writerPid: h.load(Q.writerPid),
    readerPid: h.load(Q.readerPid),
  };
}

/**
 * Writes the initial header of a buffer the caller just created (zero-filled memory):
 * everything but `oieb_size`, then `reader_pid`, then `oieb_size` last, so a connector that
 * sees `oieb_size != 0` and `reader_pid != 0` sees a complete header.
 */
export function initHeader(h: Header, oiebSize: number, major: number, metadataSize: number, payloadSize: number): void {
  h.setVersion(major, 0, 0);
  h.store(Q.metadataSize, metadataSize);
  h.store(Q.metadataFree, metadataSize);
  h.store(Q.metadataWritten, 0);
  h.store(Q.payloadSize, payloadSize);
  h.store(Q.payloadFree, payloadSize);
  h.store(Q.writerPid, 0);
  h.store(Q.readerPid, process.pid);
  h.oiebSize = oiebSize;
}

/**
 * Writes the metadata block once (§5): `u64 n` then the bytes, then
 * `metadata_written_bytes = 8 + n` and `metadata_free_bytes = metadata_size - (8 + n)`.
 * @param h - the header
 * @param buffer - the segment
 * @param offset - offset of the metadata block
 * @param data - the metadata, at least 1 byte
 */
export function writeMetadata(h: Header, buffer: SharedArrayBuffer, offset: number, data: ArrayBufferView): void {
  if (!ArrayBuffer.isView(data)) throw new InvalidArgumentError("metadata must be an ArrayBufferView (Uint8Array, Buffer, ...)");
  if (h.load(Q.metadataWritten) > 0) throw new MetadataAlreadyWrittenError("the metadata of this buffer was already written (it is write-once)");
  const size = h.load(Q.metadataSize);
  const n = data.byteLength;
  if (n === 0) throw new InvalidArgumentError("metadata must not be empty (reference readers reject a length of 0)");
  if (8 + n > size) throw new FrameTooLargeError(`metadata of ${n} bytes needs ${8 + n} bytes, the metadata block has ${size}`);
  writeU64(new DataView(buffer, offset, 8), 0, n);
  new Uint8Array(buffer, offset + 8, n).set(new Uint8Array(data.buffer, data.byteOffset, n));
  h.store(Q.metadataFree, size - (8 + n));
  h.store(Q.metadataWritten, 8 + n);
}

/**
 * Reads the metadata block: null when none was written, else a view of its content (without
 * the length prefix). A length of 0 or one larger than `metadata_written_bytes - 8` is a
 * {@link ProtocolError} ("invalid metadata size", as the C++ and Python readers say).
 */
export function readMetadata(h: Header, buffer: SharedArrayBuffer, offset: number): Uint8Array | null {
  const written = h.load(Q.metadataWritten);
  if (written === 0) return null;
  const size = h.load(Q.metadataSize);
  if (written < 8 || written > size) throw new ProtocolError(`invalid metadata_written_bytes ${written} (metadata block of ${size} bytes)`);
  const n = readU64(new DataView(buffer, offset, 8), 0);
  if (n === 0 || n > written - 8) throw new ProtocolError(`invalid metadata size ${n} (metadata_written_bytes ${written})`);
  return new Uint8Array(buffer, offset + 8, n);
}
