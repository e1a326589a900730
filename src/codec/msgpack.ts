/**
 * The MessagePack side of the codec: one `Packr` and one `Unpackr` (msgpackr), reused for every
 * frame, and the extensions that write the Plexus profile's tags (see docs/codec.md).
 *
 * The codec uses its own instance of msgpackr (see `msgpackr.cts`) and registers extensions only
 * for its private placeholder classes ({@link BufferRef}, {@link MapEntries}, {@link NegativeZero}).
 * (Internal: not part of the public API.)
 * @module
 */
import type { Packr } from "msgpackr";
import { msgpackr } from "./msgpackr.cjs";
import { ProtocolError } from "../errors.js";
import { EXT_NEGATIVE_ZERO_PLACEHOLDER, TAG_BUFFER, TAG_MAP } from "./format.js";

/** Placeholder for an out-of-band buffer: packed as the buffer tag followed by `index`. */
export class BufferRef {
  /** @param index - the buffer's index in the frame's buffer table */
  constructor(readonly index: number) {}
}

/** Placeholder for a `Map`: packed as the map tag followed by `[k0, v0, k1, v1, ...]`. */
export class MapEntries {
  /** @param flat - keys and values, alternating (already made encodable) */
  constructor(readonly flat: unknown[]) {}
}

/** Placeholder for `-0`, which msgpackr would pack as the integer 0: packed as float64 `-0.0`. */
export class NegativeZero {}

/** The one negative-zero placeholder. */
export const NEGATIVE_ZERO = new NegativeZero();

/** Resolves buffer indexes while a body is being unpacked (set by the decoder, else undefined). */
let resolver: ((index: number) => unknown) | undefined;

/** Where msgpackr lets an extension write raw bytes. */
type Allocate = (size: number) => { target: Uint8Array; targetView: DataView; position: number };

msgpackr.addExtension({
  Class: BufferRef,
  type: TAG_BUFFER,
  write: (ref: BufferRef): number => ref.index,
  read: (index: unknown): unknown => {
    if (resolver === undefined) throw new ProtocolError("a Plexus buffer reference outside a Plexus frame");
    if (typeof index !== "number") throw new ProtocolError("buffer tag not followed by an index");
    return resolver(index);
  },
});

msgpackr.addExtension({
  Class: MapEntries,
  type: TAG_MAP,
  write: (entries: MapEntries): unknown[] => entries.flat,
  read: (flat: unknown): Map<unknown, unknown> => {
    if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new ProtocolError("map tag not followed by an array of even length");
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
    return map;
  },
});

msgpackr.addExtension({
  Class: NegativeZero,
  type: EXT_NEGATIVE_ZERO_PLACEHOLDER,
  pack(_value: unknown, allocate?: Allocate): undefined {
    const at = (allocate as Allocate)(9);
    at.target[at.position] = 0xcb;
    at.targetView.setFloat64(at.position + 1, -0);
    return undefined;
  },
  unpack: (): number => -0,
} as unknown as Parameters<typeof msgpackr.addExtension>[0]);

/**
 * The packer: plain objects as MessagePack maps (no msgpackr records, so any MessagePack
 * library can read the body), `Set` with msgpackr's set tag, `undefined` as fixext1 type 0,
 * numbers as the smallest int or as float64 (never float32), `Date` as a timestamp.
 */
export const packr: Packr = new msgpackr.Packr({
  useRecords: false,
  moreTypes: true,
  variableMapSize: true,
  useFloat32: 0,
  encodeUndefinedAsNil: false,
  structuredClone: false,
  bundleStrings: false,
  useToJSON: false,
});

/** The unpacker: maps as plain objects, 64-bit integers as `bigint`, no structured clone. */
const unpackr = new msgpackr.Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "bigint",
  structuredClone: false,
  moreTypes: true,
});

/**
 * Views over whole buffers, one per buffer frames were decoded from: msgpackr caches a DataView
 * on its source, so unpacking every body from the same (ring) buffer allocates nothing.
 */
const wholeViews = new WeakMap<ArrayBufferLike, Uint8Array>();

/**
 * Unpacks the body `frame[start .. end)`, already checked against the profile, resolving buffer
 * tags with `resolve`. Any failure is a {@link ProtocolError}.
 */
export function unpackBody(frame: Uint8Array, start: number, end: number, resolve: (index: number) => unknown): unknown {
  const buffer = frame.buffer;
  let whole = wholeViews.get(buffer);
  if (whole === undefined) {
    whole = new Uint8Array(buffer);
    wholeViews.set(buffer, whole);
  }
  resolver = resolve;
  try {
    return unpackr.unpack(whole, { start: frame.byteOffset + start, end: frame.byteOffset + end }) as unknown;
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`malformed frame body: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    resolver = undefined;
  }
}
