/**
 * The messages of the chaos suite: each carries an id (`<incarnation tag>:<n>`), a payload whose
 * bytes are derived from the id, and the payload's checksum, so that a receiver can tell a whole
 * message from a torn one (checksum) and from a wrong one (bytes that are not its id's).
 */

/** A chaos message as it travels (any transport encodes it with the project's codec). */
export interface Item {
  id: string;
  sum: number;
  data: Uint8Array;
}

/** FNV-1a, 32 bits. */
export function fnv32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

function seedOf(id: string): number {
  return fnv32(new TextEncoder().encode(id)) || 1;
}

/** The payload of message `id`, `size` bytes (xorshift32 seeded by the id). */
export function payloadFor(id: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seedOf(id);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Builds message `id` with a payload of `size` bytes. */
export function makeItem(id: string, size: number): Item {
  const data = payloadFor(id, size);
  return { id, sum: fnv32(data), data };
}

/** What a receiver makes of a value: its id (if it has one) and whether it is whole and right. */
export function checkItem(v: unknown): { id: string; ok: boolean } {
  if (typeof v !== "object" || v === null) return { id: "?", ok: false };
  const { id, sum, data } = v as Partial<Item>;
  if (typeof id !== "string" || typeof sum !== "number" || !(data instanceof Uint8Array)) return { id: typeof id === "string" ? id : "?", ok: false };
  if (fnv32(data) !== sum) return { id, ok: false };
  const expected = payloadFor(id, data.length);
  for (let i = 0; i < data.length; i++) if (data[i] !== expected[i]) return { id, ok: false };
  return { id, ok: true };
}

/** Payload sizes the senders cycle through: small, medium and a few large ones. */
export const SIZES = [16, 300, 4000, 100, 20000, 64, 1500, 70000] as const;
