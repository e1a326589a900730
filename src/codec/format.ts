/**
 * The frame format's constants: header and buffer-table layout, frame kinds, buffer types and
 * the MessagePack extension types of the body. Specified byte by byte in docs/codec.md.
 * (Internal: not part of the public API.)
 * @module
 */

/** "PLXF" little-endian: the first four bytes of every frame. */
export const FRAME_MAGIC = 0x46584c50;
/** Frame format version. */
export const FRAME_VERSION = 1;
/** Bytes of the fixed frame header. */
export const HEADER_BYTES = 16;
/** Bytes of one buffer-table entry. */
export const ENTRY_BYTES = 16;
/** Out-of-band buffers start on multiples of this many bytes from the frame's start. */
export const BUFFER_ALIGN = 16;
/** Deepest nesting of arrays, objects, maps and sets a frame may carry (encoder and decoder). */
export const MAX_DEPTH = 512;

// ---- header field offsets ------------------------------------------------------------------
/** Header: uint32 magic. */
export const H_MAGIC = 0;
/** Header: uint8 version. */
export const H_VERSION = 4;
/** Header: uint8 kind ({@link FrameKind}). */
export const H_KIND = 5;
/** Header: uint16 flags. */
export const H_FLAGS = 6;
/** Header: uint32 body length in bytes. */
export const H_BODY_LENGTH = 8;
/** Header: uint32 number of buffer-table entries. */
export const H_BUFFER_COUNT = 12;

// ---- buffer-table entry field offsets --------------------------------------------------------
/** Entry: uint32 offset of the buffer from the frame's first byte. */
export const E_OFFSET = 0;
/** Entry: uint32 length of the buffer in bytes. */
export const E_LENGTH = 4;
/** Entry: uint8 buffer type ({@link BufferType}). */
export const E_TYPE = 8;

/** What a frame's body is. */
export const FrameKind = {
  /** The value was a `Uint8Array` (or a `Buffer`); the body is its bytes, nothing else. */
  Raw: 1,
  /** The body is MessagePack (the Plexus profile) referring to out-of-band buffers. */
  Value: 2,
} as const;
/** A {@link FrameKind} code. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Raw frames: the value was a Node.js `Buffer`, and decodes as one. */
export const FLAG_RAW_BUFFER = 1;

/** The type of an out-of-band buffer: what the receiver gets back. */
export const BufferType = {
  Int8Array: 1,
  Uint8Array: 2,
  Uint8ClampedArray: 3,
  Int16Array: 4,
  Uint16Array: 5,
  Int32Array: 6,
  Uint32Array: 7,
  Float32Array: 8,
  Float64Array: 9,
  BigInt64Array: 10,
  BigUint64Array: 11,
  DataView: 12,
  ArrayBuffer: 13,
  Buffer: 14,
} as const;
/** A {@link BufferType} code. */
export type BufferType = (typeof BufferType)[keyof typeof BufferType];
/** Highest valid {@link BufferType} code. */
export const MAX_BUFFER_TYPE = 14;

/** A typed-array constructor, as the decoder uses it. */
export interface TypedArrayConstructor {
  /** A view over `length` elements of `buffer` from `byteOffset`. */
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView;
  /** Bytes per element. */
  readonly BYTES_PER_ELEMENT: number;
}

/** Constructors of the typed-array buffer types, by code (undefined for the others). */
export const TYPED_ARRAYS: readonly (TypedArrayConstructor | undefined)[] = [
  undefined,
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];

/** Bytes per element of each buffer type, by code (0 for invalid codes). */
export const ELEMENT_BYTES: readonly number[] = [0, 1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 1, 1, 1];

// ---- MessagePack extension types of the body -------------------------------------------------
/** fixext1 type 0, data 0: `undefined` (the msgpackr / notepack convention). */
export const EXT_UNDEFINED = 0x00;
/** Timestamp (MessagePack spec): a `Date`. fixext1 with this type: an invalid `Date`. */
export const EXT_TIMESTAMP = 0xff;
/** Tag: the next value is a uint, the index of an out-of-band buffer. */
export const TAG_BUFFER = 0x50;
/** Tag: the next value is an array `[k0, v0, k1, v1, ...]`, a `Map`. */
export const TAG_MAP = 0x4d;
/** Tag: the next value is an array of the elements of a `Set` (msgpackr's own Set tag). */
export const TAG_SET = 0x73;
/**
 * Never on the wire: the msgpackr extension type our encoder's negative-zero placeholder is
 * registered under (it writes a plain float64 `-0.0`). The profile check rejects it.
 */
export const EXT_NEGATIVE_ZERO_PLACEHOLDER = 0x5a;

/** Rounds `n` up to the next multiple of {@link BUFFER_ALIGN}. */
export function align(n: number): number {
  return Math.ceil(n / BUFFER_ALIGN) * BUFFER_ALIGN;
}
