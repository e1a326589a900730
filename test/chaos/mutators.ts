/**
 * Mutations of captured traffic. None knows a wire format: length and type fields are found
 * generically, by rewriting aligned 32-bit and 16-bit words and single bytes near the starts of
 * the chunks a client wrote (where frames begin) as well as anywhere in the capture.
 */
import type { Capture } from "./capture.js";
import type { Rng } from "./rng.js";

export const MUTATORS = ["replay", "bitflip", "truncate", "u32", "u16", "u8", "splice", "insert", "repeat", "garbage", "flood", "slow"] as const;
export type MutatorName = (typeof MUTATORS)[number];

/** An input for one connection. `slow`: written a few bytes at a time. */
export interface Input {
  mutator: MutatorName;
  bytes: Buffer;
  slow: boolean;
}

const INTERESTING_32 = [0, 1, 2, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x1000000, 0x4000000];

/** Offsets where a chunk starts (frame boundaries, usually). */
function starts(c: Capture): number[] {
  const out: number[] = [];
  let at = 0;
  for (const ch of c.chunks) {
    out.push(at);
    at += ch.length;
  }
  return out;
}

/** A position in `b` for a field of `width` bytes: near a chunk start (aligned to it) or anywhere aligned. */
function fieldAt(rng: Rng, b: Buffer, c: Capture, width: number): number {
  if (b.length < width) return -1;
  if (rng.chance(0.6)) {
    const s = rng.pick(starts(c));
    const off = s + width * rng.int(0, 8);
    if (off + width <= b.length) return off;
  }
  return width * rng.int(0, Math.floor((b.length - width) / width));
}

/** One mutated input from `base` (and `other`, for splices). */
export function mutate(rng: Rng, base: Capture, other: Capture, mutator: MutatorName = rng.pick(MUTATORS)): Input {
  const whole = Buffer.concat(base.chunks);
  let b = Buffer.from(whole);
  let slow = false;
  switch (mutator) {
    case "replay":
      break;
    case "bitflip": {
      for (let k = rng.int(1, 8); k > 0 && b.length > 0; k--) b[rng.int(0, b.length - 1)] ^= 1 << rng.int(0, 7);
      break;
    }
    case "truncate":
      b = b.subarray(0, rng.int(0, Math.max(0, b.length - 1)));
      break;
    case "u32": {
      const at = fieldAt(rng, b, base, 4);
      if (at >= 0) {
        const old = b.readUInt32LE(at);
        const v = rng.chance(0.5) ? rng.pick(INTERESTING_32) : rng.chance(0.5) ? (old + rng.int(-16, 16)) >>> 0 : rng.int(0, 0xffffffff);
        if (rng.chance(0.5)) b.writeUInt32LE(v >>> 0, at);
        else b.writeUInt32BE(v >>> 0, at);
      }
      break;
    }
    case "u16": {
      const at = fieldAt(rng, b, base, 2);
      if (at >= 0) b.writeUInt16LE(rng.pick([0, 1, 2, 0x7fff, 0xffff, rng.int(0, 0xffff)]), at);
      break;
    }
    case "u8": {
      for (let k = rng.int(1, 3); k > 0; k--) {
        const at = fieldAt(rng, b, base, 1);
        if (at >= 0) b[at] = rng.pick([0, 1, 2, 3, 7, 8, 0x7f, 0x80, 0xff, rng.int(0, 255)]);
      }
      break;
    }
    case "splice": {
      const o = Buffer.concat(other.chunks);
      b = Buffer.concat([b.subarray(0, rng.int(0, b.length)), o.subarray(rng.int(0, o.length))]);
      break;
    }
    case "insert": {
      const at = rng.int(0, b.length);
      b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.bytes(rng.int(1, 64))), b.subarray(at)]);
      break;
    }
    case "repeat": {
      const from = rng.int(0, b.length);
      const piece = b.subarray(from, Math.min(b.length, from + rng.int(1, 256)));
      b = Buffer.concat([b.subarray(0, from), ...Array.from({ length: rng.int(2, 50) }, () => piece), b.subarray(from)]);
      break;
    }
    case "garbage":
      b = Buffer.from(rng.bytes(rng.int(0, 512)));
      break;
    case "flood": {
      // the capture again and again, or its start and then a mass of random bytes
      const size = rng.int(64 << 10, 1 << 20);
      if (rng.chance(0.5) && b.length > 0) b = Buffer.concat(Array.from({ length: Math.ceil(size / b.length) }, () => whole)).subarray(0, size);
      else b = Buffer.concat([b.subarray(0, rng.int(0, b.length)), Buffer.alloc(size, rng.int(0, 255))]);
      break;
    }
    case "slow":
      b = b.subarray(0, Math.min(b.length, rng.int(1, 48)));
      slow = true;
      break;
  }
  return { mutator, bytes: b, slow };
}
