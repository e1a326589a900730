/**
 * Checks that a frame body follows the Plexus MessagePack profile (docs/codec.md §3) before
 * anything is unpacked: exactly one value filling the body, only the allowed types and
 * extensions, string map keys, tags followed by what they need, buffer indexes inside the
 * table, nesting at most {@link MAX_DEPTH}. One pass, no allocation beyond a small stack, so a
 * hostile body is refused before msgpackr sees it.
 * (Internal: not part of the public API.)
 * @module
 */
import { ProtocolError } from "../errors.js";
import { EXT_TIMESTAMP, EXT_UNDEFINED, MAX_DEPTH, TAG_BUFFER, TAG_MAP, TAG_SET } from "./format.js";

/** Bytes of `"__proto__"`: a map key the profile refuses (it would not decode as an own key). */
const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/** Which kind of value a pending tag requires. */
const NEED_NONE = 0;
const NEED_INDEX = 1;
const NEED_ARRAY = 2;
const NEED_EVEN_ARRAY = 3;

/** Open containers: items still to start (maps count keys and values)... */
const left = new Float64Array(MAX_DEPTH + 1);
/** ... and whether each is a map. */
const isMap = new Uint8Array(MAX_DEPTH + 1);

/** Where the body being checked starts (for error messages). */
let origin = 0;

function fail(what: string, at: number): never {
  throw new ProtocolError(`malformed frame body at byte ${at - origin}: ${what}`);
}

/**
 * Throws {@link ProtocolError} unless `body[start .. end)` is exactly one value of the profile
 * whose buffer tags refer to indexes below `bufferCount`.
 */
export function checkBody(body: Uint8Array, start: number, end: number, bufferCount: number): void {
  origin = start;
  left[0] = 1;
  isMap[0] = 0;
  let top = 0;
  let p = start;
  while (top >= 0) {
    if (p >= end) fail("truncated", p);
    const at = p;
    // Is this item a map key? (A map's items alternate key, value; `left` is even before a key.)
    const key = isMap[top] === 1 && left[top] % 2 === 0;
    left[top]--;
    let t = body[p++];
    let need = NEED_NONE;
    if (t === 0xd4 && p + 1 < end && body[p + 1] === 0) {
      const ext = body[p];
      if (ext === TAG_BUFFER || ext === TAG_MAP || ext === TAG_SET) {
        if (key) fail("a tag as a map key", at);
        need = ext === TAG_BUFFER ? NEED_INDEX : ext === TAG_MAP ? NEED_EVEN_ARRAY : NEED_ARRAY;
        p += 2;
        if (p >= end) fail("truncated after a tag", p);
        t = body[p++];
      }
    }
    let children = 0;
    let map = false;
    let len = -1; // bytes of string / binary / extension payload to skip
    let str = false;
    let uint = -1; // the value of an unsigned integer (for buffer indexes)
    if (t < 0x80) uint = t;
    else if (t < 0x90) {
      children = (t & 0x0f) * 2;
      map = true;
    } else if (t < 0xa0) children = t & 0x0f;
    else if (t < 0xc0) {
      len = t & 0x1f;
      str = true;
    } else if (t >= 0xe0) {
      // negative fixint
    } else {
      const n = end - p; // bytes available after the type byte
      switch (t) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          if (n < 1) fail("truncated", p);
          len = body[p];
          p += 1;
          str = t === 0xd9;
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          if (n < 2) fail("truncated", p);
          len = (body[p] << 8) | body[p + 1];
          p += 2;
          str = t === 0xda;
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          if (n < 4) fail("truncated", p);
          len = be32(body, p);
          p += 4;
          str = t === 0xdb;
          break;
        case 0xc7: // ext 8: only the 96-bit timestamp
          if (n < 2) fail("truncated", p);
          if (body[p] !== 12 || body[p + 1] !== EXT_TIMESTAMP) fail(`unsupported ext 8 (length ${body[p]}, type ${body[p + 1]})`, at);
          p += 2;
          len = 12;
          break;
        case 0xca: // float 32
        case 0xce: // uint 32
        case 0xd2: // int 32
          if (n < 4) fail("truncated", p);
          if (t === 0xce) uint = be32(body, p);
          p += 4;
          break;
        case 0xcb: // float 64
        case 0xd3: // int 64
          if (n < 8) fail("truncated", p);
          p += 8;
          break;
        case 0xcf: // uint 64
          if (n < 8) fail("truncated", p);
          p += 8;
          break;
        case 0xcc: // uint 8
          if (n < 1) fail("truncated", p);
          uint = body[p];
          p += 1;
          break;
        case 0xd0: // int 8
          if (n < 1) fail("truncated", p);
          p += 1;
          break;
        case 0xcd: // uint 16
          if (n < 2) fail("truncated", p);
          uint = (body[p] << 8) | body[p + 1];
          p += 2;
          break;
        case 0xd1: // int 16
          if (n < 2) fail("truncated", p);
          p += 2;
          break;
        case 0xd4: // fixext 1: undefined, or an invalid Date
          if (n < 2) fail("truncated", p);
          if (!((body[p] === EXT_UNDEFINED && body[p + 1] === 0) || body[p] === EXT_TIMESTAMP)) fail(`unsupported fixext 1 (type ${body[p]}, data ${body[p + 1]})`, at);
          p += 2;
          break;
        case 0xd6: // fixext 4: 32-bit timestamp
          if (n < 5) fail("truncated", p);
          if (body[p] !== EXT_TIMESTAMP) fail(`unsupported fixext 4 (type ${body[p]})`, at);
          p += 5;
          break;
        case 0xd7: // fixext 8: 64-bit timestamp
          if (n < 9) fail("truncated", p);
          if (body[p] !== EXT_TIMESTAMP) fail(`unsupported fixext 8 (type ${body[p]})`, at);
          p += 9;
          break;
        case 0xdc: // array 16
        case 0xde: // map 16
          if (n < 2) fail("truncated", p);
          children = (body[p] << 8) | body[p + 1];
          p += 2;
          map = t === 0xde;
          if (map) children *= 2;
          break;
        case 0xdd: // array 32
        case 0xdf: // map 32
          if (n < 4) fail("truncated", p);
          children = be32(body, p);
          p += 4;
          map = t === 0xdf;
          if (map) children *= 2;
          break;
        default: // 0xc1 (never used), ext 16/32, fixext 2/16
          fail(`unsupported type byte 0x${t.toString(16)}`, at);
      }
    }
    if (len >= 0) {
      if (len > end - p) fail("truncated string, binary or extension", p);
      if (key && str && len === PROTO.length && matches(body, p, PROTO)) fail(`map key "__proto__"`, at);
      p += len;
    }
    if (key && !str) fail("a map key that is not a string", at);
    if (need !== NEED_NONE) {
      const array = (t >= 0x90 && t < 0xa0) || t === 0xdc || t === 0xdd;
      if (need === NEED_INDEX) {
        if (uint < 0) fail("buffer tag not followed by an unsigned integer", at);
        if (uint >= bufferCount) fail(`buffer index ${uint} outside the table of ${bufferCount}`, at);
      } else if (!array) fail("map or set tag not followed by an array", at);
      else if (need === NEED_EVEN_ARRAY && children % 2 !== 0) fail("map tag followed by an array of odd length", at);
    }
    if (children > 0) {
      // Every item takes at least one byte: refuse counts the body cannot hold before looping.
      if (children > end - p) fail(`${map ? "map" : "array"} of ${map ? children / 2 : children} items in ${end - p} bytes`, at);
      if (top + 1 > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, at);
      top++;
      left[top] = children;
      isMap[top] = map ? 1 : 0;
    }
    while (top >= 0 && left[top] === 0) top--;
  }
  if (p !== end) fail(`${end - p} bytes after the value`, p);
}

/** Big-endian uint32 at `p`. */
function be32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
}

/** Whether `b` holds `bytes` at `p`. */
function matches(b: Uint8Array, p: number, bytes: readonly number[]): boolean {
  for (let i = 0; i < bytes.length; i++) if (b[p + i] !== bytes[i]) return false;
  return true;
}
