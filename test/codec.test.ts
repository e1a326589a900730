// Tests of the codec (src/codec): round trips of every supported kind of value, out-of-band
// buffers (type, alignment, zero copy), the raw fast path, encode errors, and hostile frames
// (hand-made and fuzzed) that must all end in ProtocolError.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { pack as foreignPack, unpack as foreignUnpack } from "msgpackr";
import { BufferType, CHECK_BUDGET, checkEncodable, copyBytes, decode, decodeAt, encode, encodeChunks, encodedSize, encodeInto, FRAME_HEADER_BYTES, FrameKind, MAX_DEPTH, rawFrameLength, writeRawFrame, writeRawFrameHeader } from "../src/codec/index.js";
import { EncodeError, InvalidArgumentError, ProtocolError } from "../src/errors.js";

// ---- helpers ----------------------------------------------------------------------------------

/** Encodes and decodes `value`. */
function roundTrip(value: unknown): unknown {
  return decode(encode(value));
}

/** Asserts that `value` comes back deep-equal (same types, -0 kept, NaN equal). */
function same(value: unknown): void {
  assert.deepStrictEqual(roundTrip(value), value);
}

/** Asserts that `fn` throws a ProtocolError. */
function rejects(frame: Uint8Array, why = ""): void {
  assert.throws(
    () => decode(frame),
    (err: unknown) => err instanceof ProtocolError && err.code === "ERR_PLEXUS_PROTOCOL",
    `expected ProtocolError ${why}`,
  );
}

/**
 * Asserts that encoding `value` throws an EncodeError whose message matches `pattern`, and that
 * `checkEncodable` (with no budget limit) refuses it with the same message, encoding nothing.
 */
function refuses(value: unknown, pattern: RegExp): void {
  for (const attempt of [() => encodedSize(value), () => encode(value), () => checkEncodable(value, Infinity)]) {
    assert.throws(attempt, (err: unknown) => {
      assert.ok(err instanceof EncodeError, `expected EncodeError, got ${String(err)}`);
      assert.equal(err.code, "ERR_PLEXUS_ENCODE");
      assert.equal(err.name, "EncodeError");
      assert.match(err.message, pattern);
      return true;
    });
  }
}

/** Concatenates chunks. */
function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Little-endian helpers for hand-made frames. */
function put32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, v, true);
}

interface Entry {
  offset: number;
  length: number;
  type: number;
  reserved?: number;
}

/** Builds a value frame by hand: header, table, body, then `size - used` zero bytes. */
function handFrame(opts: { body: number[] | Uint8Array; entries?: Entry[]; size?: number; version?: number; kind?: number; flags?: number; magic?: number; bodyLength?: number; count?: number }): Uint8Array {
  const entries = opts.entries ?? [];
  const body = opts.body instanceof Uint8Array ? opts.body : Uint8Array.from(opts.body);
  const bodyOffset = 16 + 16 * entries.length;
  const used = bodyOffset + body.length;
  let size = opts.size ?? used;
  for (const e of entries) size = Math.max(size, e.offset + e.length);
  const f = new Uint8Array(Math.max(size, used));
  put32(f, 0, opts.magic ?? 0x46584c50);
  f[4] = opts.version ?? 1;
  f[5] = opts.kind ?? FrameKind.Value;
  f[6] = opts.flags ?? 0;
  put32(f, 8, opts.bodyLength ?? body.length);
  put32(f, 12, opts.count ?? entries.length);
  entries.forEach((e, i) => {
    put32(f, 16 + i * 16, e.offset);
    put32(f, 16 + i * 16 + 4, e.length);
    f[16 + i * 16 + 8] = e.type;
    f[16 + i * 16 + 9] = e.reserved ?? 0;
  });
  f.set(body, bodyOffset);
  return f;
}

/** Every typed-array kind, with awkward values. */
function typedArrays(): ArrayBufferView[] {
  return [
    Int8Array.of(-128, 0, 127),
    Uint8Array.of(0, 1, 255),
    Uint8ClampedArray.of(0, 128, 255),
    Int16Array.of(-32768, 1, 32767),
    Uint16Array.of(0, 65535),
    Int32Array.of(-(2 ** 31), 2 ** 31 - 1),
    Uint32Array.of(0, 2 ** 32 - 1),
    Float32Array.of(1.5, -0, NaN, Infinity),
    Float64Array.of(Math.PI, -0, NaN, -Infinity, Number.MIN_VALUE),
    BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n),
    BigUint64Array.of(0n, 2n ** 64n - 1n),
  ];
}

// ---- round trips ------------------------------------------------------------------------------

test("scalars round-trip, including -0, NaN, the infinities, undefined and 64-bit bigints", () => {
  const values = [
    0, -0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536, -32768, -32769, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, -(2 ** 31) - 1,
    Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, Number.MAX_VALUE, Number.MIN_VALUE, 0.1, -1.5e-300, NaN, Infinity, -Infinity,
    true, false, null, undefined,
    0n, -1n, 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n,
    "", "a", "héllo wörld", "日本語", "😀🎉 emoji", "\u0000nul", "x".repeat(31), "x".repeat(32), "y".repeat(255), "z".repeat(256), "é".repeat(40000), "w".repeat(70000),
  ];
  for (const v of values) {
    const back = roundTrip(v);
    assert.ok(Object.is(back, v) || (typeof v === "string" && back === v), `${String(v)} came back as ${String(back)}`);
  }
  assert.ok(Object.is(roundTrip(-0), -0));
  assert.deepStrictEqual(roundTrip([-0, 0]), [-0, 0]);
});

test("nested objects and arrays round-trip; undefined properties stay, holes become undefined", () => {
  same({ ts: 1700000000000, seq: 42, name: "camera/frames" });
  same({ a: { b: { c: [1, [2, [3, { d: "e" }]], { f: null, g: undefined }] } } });
  same([]);
  same({});
  same([[], {}, [[]], { x: {} }]);
  same({ "": 1, "key with spaces": 2, "1": 3, "ключ": 4, "🔑": 5, constructor: 6, toString: 7, hasOwnProperty: 8 });
  same({ u: undefined });
  same({ toJSON: 1, constructor: "c", valueOf: [] });
  assert.deepStrictEqual(roundTrip(Object.assign(Object.create(null) as object, { toJSON: "x" })), { toJSON: "x" });
  assert.deepStrictEqual(Object.keys(roundTrip({ u: undefined }) as object), ["u"]);
  // eslint-disable-next-line no-sparse-arrays -- the hole is the point
  assert.deepStrictEqual(roundTrip([1, , 3]), [1, undefined, 3]);
  const many: Record<string, number> = {};
  for (let i = 0; i < 70000; i++) many[`k${i}`] = i;
  same(many);
  same(Array.from({ length: 70000 }, (_, i) => i * 1.5));
  const nullProto = Object.assign(Object.create(null) as object, { a: 1 });
  assert.deepStrictEqual(roundTrip(nullProto), { a: 1 }, "a null-prototype object arrives as a plain object");
});

test("shared references are encoded by value; a buffer referenced twice travels once", () => {
  const inner = { x: 1 };
  const v = roundTrip({ a: inner, b: inner }) as { a: object; b: object };
  assert.deepStrictEqual(v, { a: { x: 1 }, b: { x: 1 } });
  assert.notEqual(v.a, v.b);
  const f = new Float64Array([1, 2]);
  const plan = encodedSize({ a: f, b: [f, f] });
  assert.equal(plan.bufferCount, 1);
  const back = roundTrip({ a: f, b: [f, f] }) as { a: Float64Array; b: Float64Array[] };
  assert.equal(back.a, back.b[0]);
  assert.equal(back.a, back.b[1]);
  assert.deepStrictEqual(back.a, f);
});

test("Date, Map and Set round-trip (with nested and non-string keys)", () => {
  for (const d of [new Date(0), new Date(1700000000123), new Date(-1500), new Date(-8.64e15), new Date(8.64e15), new Date(1000)]) same(d);
  const invalid = roundTrip(new Date(NaN));
  assert.ok(invalid instanceof Date && Number.isNaN(invalid.getTime()));
  same(new Map());
  same(new Set());
  same(new Map<unknown, unknown>([[1, "one"], ["1", "string one"], [{ k: [1] }, new Set([1, "a", null])], [null, undefined], [2n, new Map([[true, -0]])]]));
  same(new Set<unknown>([1, "1", { a: 1 }, [2], new Date(5), undefined]));
  same({ m: new Map([["a", new Float64Array([1, 2])]]), s: new Set([new Int16Array([3])]) });
});

test("every typed array kind, Buffer, DataView and ArrayBuffer round-trip with their type", () => {
  for (const ta of typedArrays()) {
    const back = roundTrip({ ta }) as { ta: ArrayBufferView };
    assert.equal(Object.getPrototypeOf(back.ta), Object.getPrototypeOf(ta), ta.constructor.name);
    assert.deepStrictEqual(back.ta, ta);
  }
  const buf = roundTrip({ b: Buffer.from("a Node.js Buffer") }) as { b: Buffer };
  assert.ok(Buffer.isBuffer(buf.b), "a Buffer comes back as a Buffer");
  assert.equal(buf.b.toString(), "a Node.js Buffer");

  const dv = new DataView(new ArrayBuffer(7));
  dv.setUint32(1, 0xdeadbeef);
  const backDv = (roundTrip({ dv }) as { dv: DataView }).dv;
  assert.ok(backDv instanceof DataView);
  assert.equal(backDv.byteLength, 7);
  assert.equal(backDv.getUint32(1), 0xdeadbeef);

  const ab = Uint8Array.of(9, 8, 7).buffer;
  const backAb = (roundTrip({ ab }) as { ab: ArrayBuffer }).ab;
  assert.ok(backAb instanceof ArrayBuffer, "an ArrayBuffer comes back as an ArrayBuffer (a copy)");
  assert.deepStrictEqual(new Uint8Array(backAb), Uint8Array.of(9, 8, 7));

  // Empty ones, and a top-level typed array that is not a Uint8Array.
  for (const e of [new Float64Array(0), new BigInt64Array(0), new DataView(new ArrayBuffer(0)), Buffer.alloc(0)]) {
    assert.deepStrictEqual(roundTrip({ e }), { e });
  }
  same(new ArrayBuffer(0));
  same(Float32Array.of(1, 2, 3));
  same(new DataView(Uint8Array.of(1, 2).buffer));
});

test("views at odd offsets of a larger buffer carry only their own bytes, aligned", () => {
  const big = new ArrayBuffer(64);
  new Uint8Array(big).forEach((_, i, a) => (a[i] = i));
  const value = {
    u8: new Uint8Array(big, 3, 5),
    i16: new Int16Array(big, 6, 3),
    f64: new Float64Array(big, 8, 3),
    f32: new Float32Array(big, 4, 1),
    dv: new DataView(big, 1, 9),
    b: Buffer.from(big, 7, 2),
    u8sab: new Uint8Array(new SharedArrayBuffer(32), 5, 3).fill(7),
  };
  const plan = encodedSize(value);
  assert.equal(plan.bufferCount, 7);
  const frame = encode(value);
  const back = decode(frame) as typeof value;
  assert.deepStrictEqual(back.u8, value.u8);
  assert.deepStrictEqual(back.i16, value.i16);
  assert.deepStrictEqual(back.f64, value.f64);
  assert.deepStrictEqual(back.f32, value.f32);
  assert.deepStrictEqual(new Uint8Array(back.dv.buffer, back.dv.byteOffset, back.dv.byteLength), new Uint8Array(big, 1, 9));
  assert.deepStrictEqual([...back.b], [7, 8]);
  assert.deepStrictEqual(back.u8sab, Uint8Array.of(7, 7, 7));
  for (const v of Object.values(back)) {
    assert.equal(v.buffer, frame.buffer, "a view over the frame");
    assert.equal((v.byteOffset - frame.byteOffset) % 16, 0, "16-aligned in the frame");
  }
});

test("every out-of-band buffer is 16-aligned in the frame and element-aligned in memory", () => {
  const random = rng(7);
  const sab = new SharedArrayBuffer(1 << 20);
  for (let round = 0; round < 50; round++) {
    const value: Record<string, unknown> = { name: "x".repeat(Math.floor(random() * 40)) };
    const kinds: ArrayBufferView[] = [...typedArrays(), Buffer.alloc(1), new DataView(new ArrayBuffer(1))];
    for (let i = 0; i < 6; i++) {
      const ta = kinds[Math.floor(random() * kinds.length)];
      const n = Math.floor(random() * 9);
      if (ta instanceof DataView) value[`k${i}`] = new DataView(new ArrayBuffer(n));
      else if (Buffer.isBuffer(ta)) value[`k${i}`] = Buffer.alloc(n, 3);
      else value[`k${i}`] = new (ta.constructor as new (n: number) => ArrayBufferView)(n);
    }
    const plan = encodedSize(value);
    const at = 16 * Math.floor(random() * 1000);
    const frame = new Uint8Array(sab, at, plan.byteLength);
    assert.equal(encodeInto(plan, frame), plan.byteLength);
    const back = decode(frame) as Record<string, unknown>;
    for (let i = 0; i < 6; i++) {
      const v = back[`k${i}`] as ArrayBufferView & { BYTES_PER_ELEMENT?: number };
      assert.equal(v.buffer, sab);
      assert.equal((v.byteOffset - at) % 16, 0);
      assert.equal(v.byteOffset % (v.BYTES_PER_ELEMENT ?? 1), 0);
      assert.equal(Object.getPrototypeOf(v), Object.getPrototypeOf(value[`k${i}`]));
      assert.deepStrictEqual(v, value[`k${i}`]);
    }
  }
});

test("a value in shared memory encodes into ordinary memory byte for byte, and copyBytes copies out of shared memory", () => {
  const shared = new Uint8Array(new SharedArrayBuffer(70_000), 3, 65_536).map((_, i) => (i * 13 + 1) & 0xff);
  const floats = new Float64Array(new SharedArrayBuffer(8 * 1000)).map((_, i) => i / 4);
  for (const value of [shared, { floats, tag: "x" }]) {
    const plan = encodedSize(value);
    const out = new Uint8Array(plan.byteLength + 9);
    encodeInto(plan, out, 9);
    assert.deepStrictEqual(out.subarray(9), encode(value));
    assert.deepStrictEqual(decode(out.subarray(9)), value instanceof Uint8Array ? new Uint8Array(value) : { floats: new Float64Array(floats), tag: "x" });
  }
  const target = new Uint8Array(new ArrayBuffer(70_000), 100, 69_000);
  copyBytes(target, 5, shared);
  assert.deepStrictEqual(target.subarray(5, 5 + shared.length), new Uint8Array(shared));
  assert.equal(target[4], 0);
  copyBytes(target, 0, new Uint8Array([1, 2, 3])); // small and ordinary
  assert.deepStrictEqual([...target.subarray(0, 4)], [1, 2, 3, 0]);
});

test("zero copy: a 1 MiB Float64Array is copied once on encode and never on decode", () => {
  const data = new Float64Array(1 << 17).map((_, i) => i * 0.5);
  const value = { ts: 1, data };
  const plan = encodedSize(value);
  // The plan refers to the caller's memory: nothing was copied yet.
  data[0] = 42;
  const sab = new SharedArrayBuffer(plan.byteLength + 4096);
  const frame = new Uint8Array(sab, 4096, plan.byteLength);
  encodeInto(plan, frame);
  const back = decode(frame) as typeof value;
  assert.equal(back.data.buffer, sab, "the decoded array's buffer IS the frame's buffer");
  assert.equal(back.data.length, data.length);
  assert.equal(back.data[0], 42, "the copy happened at encodeInto, from the caller's memory");
  assert.deepStrictEqual(back.data, data);
  // It is a view: writing the frame's memory changes it.
  new Float64Array(sab, back.data.byteOffset, 1)[0] = -7;
  assert.equal(back.data[0], -7);
  // A vectored write does not even copy: the chunk is the caller's memory.
  const chunks = encodeChunks(plan);
  assert.ok(chunks.some((c) => c.buffer === data.buffer && c.byteLength === data.byteLength));
  assert.deepStrictEqual(concat(chunks), encode(value));
});

test("one plan writes identical frames into any number of targets; padding is zeroed", () => {
  const value = { a: "x", b: Int32Array.of(1, 2, 3), c: new Uint8Array(5), d: [Float64Array.of(1)] };
  const plan = encodedSize(value);
  const reference = encode(value);
  for (let i = 0; i < 3; i++) {
    const target = new Uint8Array(plan.byteLength + 10).fill(0xff);
    assert.equal(encodeInto(plan, target), plan.byteLength);
    assert.deepStrictEqual(target.subarray(0, plan.byteLength), reference);
    assert.ok(target.subarray(plan.byteLength).every((b) => b === 0xff), "bytes after the frame are untouched");
  }
  const shared = new Uint8Array(new SharedArrayBuffer(plan.byteLength));
  encodeInto(plan, shared);
  assert.deepStrictEqual(new Uint8Array(shared), reference);
  assert.equal(plan.kind, FrameKind.Value);
  assert.equal(plan.bufferCount, 3);
  assert.equal(plan.byteLength, reference.byteLength);
});

test("encode() returns frames starting on a multiple of 8 bytes, so every view is aligned", () => {
  for (let i = 0; i < 200; i++) {
    const frame = encode({ i, f: new Float64Array(i % 3), s: "x".repeat(i) });
    assert.equal(frame.byteOffset % 8, 0);
    assert.equal(Object.getPrototypeOf(frame), Uint8Array.prototype);
    const back = decode(frame) as { f: Float64Array };
    assert.equal(back.f.buffer, frame.buffer);
  }
});

test("a misaligned frame (e.g. from a socket) still decodes: typed arrays are then copied", () => {
  const value = { f: Float64Array.of(1, 2, 3), u: Uint8Array.of(4, 5), i: Int32Array.of(-1) };
  const frame = encode(value);
  const holder = new Uint8Array(frame.length + 1);
  holder.set(frame, 1);
  const odd = holder.subarray(1);
  const back = decode(odd) as typeof value;
  assert.deepStrictEqual(back, value);
  assert.equal(back.u.buffer, holder.buffer, "bytes need no alignment: still a view");
  assert.notEqual(back.f.buffer, holder.buffer, "a misaligned Float64Array is copied");
});

test("raw fast path: a whole Uint8Array (or Buffer) skips MessagePack and decodes as a view", () => {
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
  const plan = encodedSize(bytes);
  assert.equal(plan.kind, FrameKind.Raw);
  assert.equal(plan.byteLength, FRAME_HEADER_BYTES + bytes.length);
  const frame = encode(bytes);
  assert.equal(frame[5], FrameKind.Raw);
  assert.deepStrictEqual(frame.subarray(FRAME_HEADER_BYTES), bytes);
  const back = decode(frame) as Uint8Array;
  assert.equal(Object.getPrototypeOf(back), Uint8Array.prototype);
  assert.equal(back.buffer, frame.buffer);
  assert.equal(back.byteOffset, frame.byteOffset + FRAME_HEADER_BYTES);
  assert.deepStrictEqual(back, bytes);

  const b = decode(encode(Buffer.from("raw buffer")));
  assert.ok(Buffer.isBuffer(b));
  assert.equal(b.toString(), "raw buffer");
  same(new Uint8Array(0));
  assert.deepStrictEqual(encodeChunks(plan).length, 2);
  assert.deepStrictEqual(concat(encodeChunks(plan)), frame);
  // A view at an offset of a bigger buffer carries only its bytes.
  same(new Uint8Array(bytes.buffer, 10, 20));
});

test("a raw Uint8Array frame read from a Buffer (a socket's) decodes as a plain Uint8Array, not a Buffer", () => {
  const frame = Buffer.from(encode(new Uint8Array([1, 2, 3])));
  const value = decode(frame) as Uint8Array;
  assert.equal(Buffer.isBuffer(value), false);
  assert.deepStrictEqual(value, new Uint8Array([1, 2, 3]));
  assert.equal(value.buffer, frame.buffer, "still a view of the frame");
  assert.ok(Buffer.isBuffer(decode(Buffer.from(encode(Buffer.from([4]))))), "a Buffer stays a Buffer");
});

test("a raw message whose buffer was detached after planning is refused, not written with stale bytes", () => {
  const bytes = new Uint8Array(4096).fill(7);
  const plan = encodedSize(bytes);
  structuredClone(bytes.buffer, { transfer: [bytes.buffer] }); // detaches: bytes.length is 0 now
  const target = new Uint8Array(plan.byteLength).fill(0xee);
  assert.throws(() => encodeInto(plan, target), EncodeError);
  assert.ok(target.every((b) => b === 0xee), "nothing written");
  assert.throws(() => encodeChunks(plan), EncodeError);
});

test("strings with lone surrogates are sent as valid UTF-8 (U+FFFD), like TextEncoder", () => {
  assert.equal(roundTrip("a\ud800b"), "a\ufffdb");
  assert.deepStrictEqual(roundTrip({ ["k\udc00"]: "\ud83d" }), { ["k\ufffd"]: "\ufffd" });
  assert.deepStrictEqual(roundTrip(["ok", "\udfff"]), ["ok", "\ufffd"]);
});

// ---- encode errors ----------------------------------------------------------------------------

test("values that cannot travel throw EncodeError at encode time, naming where", () => {
  refuses(() => 1, /value: a function/);
  refuses({ a: [1, { b: () => 1 }] }, /value\.a\[1\]\.b: a function/);
  refuses(Symbol("s"), /a symbol/);
  refuses({ s: Symbol.iterator }, /value\.s: a symbol/);
  refuses({ ["odd key"]: { f() {} } }, /value\["odd key"\]\.f: a function/);
  class Point {
    x = 1;
  }
  refuses(new Point(), /instance of Point/);
  refuses({ p: [new Point()] }, /value\.p\[0\]: an instance of Point/);
  refuses(new Error("e"), /instance of Error/);
  refuses(/re/, /instance of RegExp/);
  refuses(new WeakMap(), /instance of WeakMap/);
  refuses(Promise.resolve(), /instance of Promise/);
  refuses(new Number(1), /instance of Number/);
  refuses({ s: new SharedArrayBuffer(8) }, /value\.s: a SharedArrayBuffer/);
  class MyBytes extends Uint8Array {}
  refuses({ b: new MyBytes(2) }, /instance of MyBytes/);
  refuses(new MyBytes(2), /instance of MyBytes/);
  refuses(2n ** 64n, /bigint outside/);
  refuses([-(2n ** 63n) - 1n], /value\[0\]: a bigint outside/);
  refuses(JSON.parse('{"__proto__": 1}'), /__proto__/);

  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  refuses(cyclic, /value\.self: a cyclic reference/);
  const arr: unknown[] = [1];
  arr.push([arr]);
  refuses(arr, /value\[1\]\[0\]: a cyclic reference/);
  const m = new Map<unknown, unknown>();
  m.set("m", m);
  refuses(m, /cyclic/);
  const s = new Set<unknown>();
  s.add({ s });
  refuses(s, /cyclic/);

  const throwing = {
    get boom(): never {
      throw new TypeError("no");
    },
  };
  refuses({ x: [throwing] }, /value\.x\[0\]\.boom: reading it threw TypeError: no/);

  let deep: unknown = 1;
  for (let i = 0; i < MAX_DEPTH; i++) deep = [deep];
  assert.doesNotThrow(() => roundTrip(deep), "MAX_DEPTH levels travel");
  refuses([deep], new RegExp(`deeper than ${MAX_DEPTH}`));
});

test("checkEncodable refuses what the encoding refuses, with its message, looking at most CHECK_BUDGET values inside", () => {
  const message = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      assert.ok(err instanceof EncodeError, String(err));
      return err.message;
    }
    return "accepted";
  };
  const bad: unknown[] = [() => 1, Symbol("s"), { a: [1, { f() {} }] }, new Map([[1, { s: Symbol.iterator }]]), new Set([{ big: 2n ** 64n }]), [new (class P {})()]];
  for (const v of bad) assert.equal(message(() => checkEncodable(v)), message(() => encodedSize(v)));
  // The value itself, then CHECK_BUDGET values inside it, depth first (containers count): the
  // last one looked at...
  const list: unknown[] = new Array<unknown>(CHECK_BUDGET).fill(0);
  list[CHECK_BUDGET - 1] = () => 1;
  assert.equal(message(() => checkEncodable(list)), `cannot encode value[${CHECK_BUDGET - 1}]: a function`);
  // ...and what lies beyond is not (the encoding still refuses it)
  const nested = { inner: list }; // `inner` takes one of the values
  assert.equal(message(() => checkEncodable(nested)), "accepted");
  assert.equal(message(() => encodedSize(nested)), `cannot encode value.inner[${CHECK_BUDGET - 1}]: a function`);
  // What travels passes, however large; bytes and primitives cost one test
  for (const v of [1, "s", null, undefined, true, 2n, new Date(0), new Uint8Array(8), Buffer.alloc(2), new Float64Array(3), { a: new Array(10_000).fill({ b: 1 }) }, new Map([["k", new Set([1])]])]) {
    assert.equal(message(() => checkEncodable(v)), "accepted");
  }
});

test("encodeInto and encodeChunks check their arguments", () => {
  const plan = encodedSize({ a: 1 });
  assert.throws(() => encodeInto(plan, new Uint8Array(plan.byteLength - 1)), InvalidArgumentError);
  assert.throws(() => encodeInto({ byteLength: 10, kind: FrameKind.Value, bufferCount: 0 }, new Uint8Array(10)), InvalidArgumentError);
  assert.throws(() => encodeChunks({ byteLength: 10, kind: FrameKind.Raw, bufferCount: 0 }), InvalidArgumentError);
  assert.throws(() => encodeInto(plan, [] as unknown as Uint8Array), InvalidArgumentError);
  assert.throws(() => decode("frame" as unknown as Uint8Array), InvalidArgumentError);
});

test("a buffer that shrinks between planning and writing is refused", () => {
  // Resizable ArrayBuffers (ES2024) are in Node.js 20, not in the TypeScript lib used here.
  const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
  const ab = new Resizable(32, { maxByteLength: 64 });
  const plan = encodedSize({ t: new Float64Array(ab) });
  ab.resize(8);
  assert.throws(() => encodeInto(plan, new Uint8Array(plan.byteLength)), EncodeError);
});

test("the codec leaves the process's own msgpackr alone", () => {
  // Packing with the application's msgpackr is unaffected by the codec's extensions...
  const m = foreignUnpack(foreignPack(new Map([["a", 1]]))) as unknown;
  assert.ok(m instanceof Map || (typeof m === "object" && m !== null));
  // ...and it does not resolve the codec's buffer tags.
  const frame = encode({ f: Float64Array.of(1) });
  const bodyLength = new DataView(frame.buffer).getUint32(8, true);
  assert.throws(() => foreignUnpack(frame.subarray(32, 32 + bodyLength)));
});

// ---- hostile frames -----------------------------------------------------------------------------

test("malformed headers and tables are ProtocolErrors", () => {
  const good = encode({ f: Float64Array.of(1, 2), s: "x" });
  assert.doesNotThrow(() => decode(good));
  const mutate = (fn: (f: Uint8Array) => void): Uint8Array => {
    const f = good.slice();
    fn(f);
    return f;
  };
  rejects(new Uint8Array(0), "empty");
  rejects(good.subarray(0, 15), "shorter than a header");
  rejects(mutate((f) => (f[0] ^= 1)), "bad magic");
  rejects(mutate((f) => (f[4] = 2)), "version 2");
  rejects(mutate((f) => (f[4] = 0)), "version 0");
  for (const k of [0, 3, 255]) rejects(mutate((f) => (f[5] = k)), `kind ${k}`);
  rejects(mutate((f) => (f[6] = 1)), "flags");
  rejects(mutate((f) => (f[7] = 0x80)), "flags high byte");
  rejects(mutate((f) => put32(f, 12, 0xffffffff)), "huge buffer count");
  rejects(mutate((f) => put32(f, 12, 2)), "buffer count too large");
  rejects(mutate((f) => put32(f, 12, 0)), "buffer count too small");
  rejects(mutate((f) => put32(f, 8, 0xffffffff)), "huge body length");
  rejects(mutate((f) => put32(f, 8, 0)), "empty body");
  rejects(mutate((f) => put32(f, 16, 8)), "buffer inside the header");
  rejects(mutate((f) => put32(f, 16, new DataView(f.buffer).getUint32(16, true) + 8)), "misaligned buffer");
  rejects(mutate((f) => put32(f, 16, new DataView(f.buffer).getUint32(16, true) + 16)), "buffer overrunning");
  rejects(mutate((f) => put32(f, 20, 12)), "length not a whole number of elements / not filling the frame");
  rejects(mutate((f) => put32(f, 20, 0xfffffff8)), "huge buffer length");
  rejects(mutate((f) => (f[24] = 0)), "buffer type 0");
  rejects(mutate((f) => (f[24] = 15)), "unknown buffer type");
  rejects(mutate((f) => (f[27] = 1)), "reserved byte");
  rejects(mutate((f) => (f[31] = 1)), "reserved byte");
  rejects(Uint8Array.from([...good, 0]), "trailing byte");
  rejects(good.subarray(0, good.length - 1), "truncated");

  const body = [0x91, 0x01]; // [1]
  assert.deepStrictEqual(decode(handFrame({ body })), [1]);
  rejects(handFrame({ body, size: 32 }), "padding after the body without buffers");
  // Two buffers overlapping, out of order, or with too much padding between them.
  const twoBufs = [0x92, 0xd4, 0x50, 0x00, 0x00, 0xd4, 0x50, 0x00, 0x01];
  const ok = handFrame({ body: twoBufs, entries: [{ offset: 64, length: 8, type: BufferType.Uint8Array }, { offset: 80, length: 8, type: BufferType.Float64Array }] });
  assert.equal((decode(ok) as unknown[]).length, 2);
  rejects(handFrame({ body: twoBufs, entries: [{ offset: 64, length: 24, type: BufferType.Uint8Array }, { offset: 80, length: 8, type: BufferType.Float64Array }] }), "overlap");
  rejects(handFrame({ body: twoBufs, entries: [{ offset: 80, length: 8, type: BufferType.Uint8Array }, { offset: 64, length: 8, type: BufferType.Float64Array }] }), "out of order");
  rejects(handFrame({ body: twoBufs, entries: [{ offset: 64, length: 8, type: BufferType.Uint8Array }, { offset: 96, length: 8, type: BufferType.Float64Array }] }), "a gap of 16+ bytes");
  rejects(handFrame({ body: twoBufs, entries: [{ offset: 64, length: 8, type: BufferType.Uint8Array }, { offset: 80, length: 6, type: BufferType.Float64Array }] }), "6 bytes of float64");

  // Raw frames.
  const raw = encode(Uint8Array.of(1, 2, 3));
  rejects(Uint8Array.from([...raw, 4]), "raw length mismatch");
  rejects(raw.subarray(0, raw.length - 1), "raw truncated");
  const rawCount = raw.slice();
  put32(rawCount, 12, 1);
  rejects(rawCount, "raw with buffers");
  const rawFlags = raw.slice();
  rawFlags[6] = 2;
  rejects(rawFlags, "raw unknown flag");
});

test("bodies outside the profile are ProtocolErrors (and never reach msgpackr)", () => {
  const bodies: [string, number[]][] = [
    ["two values", [0x01, 0x02]],
    ["reserved 0xc1", [0xc1]],
    ["truncated str", [0xa5, 0x61]],
    ["truncated array", [0x92, 0x01]],
    ["truncated map", [0x81, 0xa1, 0x61]],
    ["truncated uint32", [0xce, 0x00, 0x00]],
    ["str32 longer than the body", [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]],
    ["array32 of 4 billion items", [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ["map32 of 4 billion items", [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]],
    ["non-string map key", [0x81, 0x01, 0x02]],
    ["array as map key", [0x81, 0x90, 0x02]],
    ["__proto__ key", [0x81, 0xa9, ...Buffer.from("__proto__"), 0x01]],
    ["__proto__ key as str8", [0x81, 0xd9, 0x09, ...Buffer.from("__proto__"), 0x01]],
    ["msgpackr typed array ext", [0xc7, 0x02, 0x74, 0x01, 0x00]],
    ["msgpackr record", [0xd4, 0x72, 0x40]],
    ["msgpackr structured-clone pointer", [0xd6, 0x70, 0, 0, 0, 1]],
    ["msgpackr structured-clone id", [0xd6, 0x69, 0, 0, 0, 1, 0x90]],
    ["msgpackr error", [0xd4, 0x65, 0x00, 0x92, 0xa1, 0x45, 0xa1, 0x6d]],
    ["msgpackr regexp", [0xd4, 0x78, 0x00, 0x92, 0xa1, 0x28, 0xa0]],
    ["msgpackr bundled strings", [0xd6, 0x62, 0, 0, 0, 0]],
    ["msgpackr big bigint", [0xc7, 0x09, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9]],
    ["unknown fixext 1", [0xd4, 0x01, 0x00]],
    ["fixext 2", [0xd5, 0xff, 0x00, 0x00]],
    ["fixext 16", [0xd8, 0xff, ...new Array<number>(16).fill(0)]],
    ["ext 16", [0xc8, 0x00, 0x01, 0x05, 0x00]],
    ["ext 32", [0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00]],
    ["timestamp of a wrong size", [0xc7, 0x05, 0xff, 0, 0, 0, 0, 0]],
    ["buffer tag without buffers", [0xd4, 0x50, 0x00, 0x00]],
    ["buffer tag followed by a string", [0xd4, 0x50, 0x00, 0xa1, 0x61]],
    ["buffer tag followed by a negative int", [0xd4, 0x50, 0x00, 0xff]],
    ["buffer tag at the end", [0x91, 0xd4, 0x50, 0x00]],
    ["map tag followed by a map", [0xd4, 0x4d, 0x00, 0x80]],
    ["map tag followed by an odd array", [0xd4, 0x4d, 0x00, 0x91, 0x01]],
    ["set tag followed by a number", [0xd4, 0x73, 0x00, 0x01]],
    ["tag followed by a tag", [0xd4, 0x73, 0x00, 0xd4, 0x73, 0x00, 0x90]],
    ["tag as a map key", [0x81, 0xd4, 0x73, 0x00, 0x90, 0x01]],
    ["undefined with data 1", [0xd4, 0x00, 0x01]],
  ];
  for (const [why, body] of bodies) rejects(handFrame({ body }), why);
  // Buffer index beyond the table.
  rejects(handFrame({ body: [0xd4, 0x50, 0x00, 0x01], entries: [{ offset: 48, length: 1, type: BufferType.Uint8Array }] }), "index 1 of 1");
  rejects(handFrame({ body: [0xd4, 0x50, 0x00, 0xce, 0xff, 0xff, 0xff, 0xff], entries: [{ offset: 48, length: 1, type: BufferType.Uint8Array }] }), "index 2^32-1");
  // Nesting: MAX_DEPTH is fine, one more is not, and a million levels do not overflow the stack.
  const nested = (n: number): number[] => [...new Array<number>(n).fill(0x91), 0x01];
  assert.doesNotThrow(() => decode(handFrame({ body: nested(MAX_DEPTH) })));
  rejects(handFrame({ body: nested(MAX_DEPTH + 1) }), "too deep");
  rejects(handFrame({ body: nested(1_000_000) }), "a million levels");
  // What the profile allows from other encoders: bin (a view), int64 (bigint), a set tag, a map tag.
  const bin = decode(handFrame({ body: [0xc4, 0x02, 0x07, 0x08] })) as Uint8Array;
  assert.deepStrictEqual([...bin], [7, 8]);
  assert.equal(decode(handFrame({ body: [0xd3, 0, 0, 0, 0, 0, 0, 0, 5] })), 5n);
  assert.equal(decode(handFrame({ body: [0xcf, 0, 0, 0, 0, 0, 0, 0, 5] })), 5n);
  assert.deepStrictEqual(decode(handFrame({ body: [0xd4, 0x73, 0x00, 0x92, 0x01, 0x02] })), new Set([1, 2]));
  assert.deepStrictEqual(decode(handFrame({ body: [0xd4, 0x4d, 0x00, 0x92, 0x01, 0xa1, 0x61] })), new Map([[1, "a"]]));
  assert.deepStrictEqual(decode(handFrame({ body: [0xca, 0x3f, 0xc0, 0x00, 0x00] })), 1.5);
  assert.deepStrictEqual(decode(handFrame({ body: [0xde, 0x00, 0x01, 0xa1, 0x61, 0xc0] })), { a: null });
});

/** Decodes, accepting success or ProtocolError only; returns true if it decoded. */
function survives(frame: Uint8Array): boolean {
  try {
    decode(frame);
    return true;
  } catch (err) {
    if (err instanceof ProtocolError) return false;
    throw new Error(`decode threw ${String(err)} instead of ProtocolError for ${Buffer.from(frame.subarray(0, 64)).toString("hex")}`, { cause: err });
  }
}

/** A few valid frames of every shape to mutate. */
function seeds(): Uint8Array[] {
  return [
    encode({ ts: 1700000000000, seq: 7, name: "camera/frames" }),
    encode({ f: Float64Array.of(1, 2, 3), b: Buffer.from("ab"), d: new DataView(new ArrayBuffer(3)), a: new ArrayBuffer(2), big: BigInt64Array.of(1n) }),
    encode([new Map<unknown, unknown>([[1, new Set(["x"])]]), new Date(5), -0, undefined, null, 2n ** 63n, "é😀".repeat(10)]),
    encode({ nested: { deeper: [[[{ x: [1, 2, { y: "z" }] }]]] }, list: Array.from({ length: 40 }, (_, i) => i * 1000.5) }),
    encode(Uint8Array.of(1, 2, 3, 4)),
    encode(Buffer.from("raw")),
  ];
}

test("fuzz: every truncation of valid frames is a ProtocolError", () => {
  for (const frame of seeds()) {
    for (let n = 0; n < frame.length; n++) assert.equal(survives(frame.subarray(0, n)), false, `prefix of ${n} bytes decoded`);
  }
});

test("fuzz: every single-bit flip of valid frames decodes or is a ProtocolError", () => {
  let decoded = 0;
  let refused = 0;
  for (const frame of seeds()) {
    const f = frame.slice();
    for (let i = 0; i < f.length * 8; i++) {
      f[i >> 3] ^= 1 << (i & 7);
      if (survives(f)) decoded++;
      else refused++;
      f[i >> 3] ^= 1 << (i & 7);
    }
  }
  assert.ok(refused > 0 && decoded > 0, `decoded ${decoded}, refused ${refused}`);
});

test("fuzz: random bytes, random headers and random multi-byte corruption (seeded)", () => {
  const random = rng(0xc0dec);
  const byte = (): number => Math.floor(random() * 256);
  const base = seeds();
  let cases = 0;
  for (let i = 0; i < 4000; i++) {
    // Pure noise.
    const noise = Uint8Array.from({ length: Math.floor(random() * 200) }, byte);
    survives(noise);
    // A valid header in front of noise (so the table and body checks are exercised).
    const h = Uint8Array.from({ length: 16 + Math.floor(random() * 300) }, byte);
    put32(h, 0, 0x46584c50);
    h[4] = 1;
    h[5] = random() < 0.5 ? FrameKind.Value : FrameKind.Raw;
    h[6] = h[7] = 0;
    if (random() < 0.7) put32(h, 12, Math.floor(random() * 4));
    if (random() < 0.7) put32(h, 8, Math.floor(random() * (h.length - 16)));
    survives(h);
    // A valid frame with a few random bytes overwritten, and maybe truncated or extended.
    const seed = base[Math.floor(random() * base.length)];
    let f = seed.slice();
    const hits = 1 + Math.floor(random() * 4);
    for (let k = 0; k < hits; k++) f[Math.floor(random() * f.length)] = byte();
    if (random() < 0.2) f = f.subarray(0, Math.floor(random() * f.length));
    if (random() < 0.1) f = Uint8Array.from([...f, ...Array.from({ length: 1 + Math.floor(random() * 20) }, byte)]);
    survives(f);
    // A valid body with msgpack-ish noise spliced in.
    const body = Uint8Array.from({ length: 1 + Math.floor(random() * 60) }, () => (random() < 0.5 ? [0x90, 0x91, 0x80, 0x81, 0xa1, 0xd4, 0x50, 0x4d, 0x73, 0x00, 0xc0, 0xdc, 0xde][Math.floor(random() * 13)] : byte()));
    survives(handFrame({ body, entries: random() < 0.5 ? [] : [{ offset: align16(32 + body.length), length: 8, type: 1 + Math.floor(random() * 14) }] }));
    cases += 4;
  }
  assert.equal(cases, 16000);
});

function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

test("property: arbitrary values of the supported kinds round-trip exactly (fast-check, seeded)", () => {
  const key = fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__");
  const leaf = fc.oneof(
    fc.double(),
    fc.integer(),
    fc.constantFrom(-0, NaN, Infinity, -Infinity, 2 ** 32, -(2 ** 31) - 1),
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.date({ noInvalidDate: true }),
    fc.float64Array({ maxLength: 5 }),
    fc.int8Array({ maxLength: 5 }),
    fc.uint8Array({ maxLength: 5 }),
    fc.uint8ClampedArray({ maxLength: 5 }),
    fc.int16Array({ maxLength: 5 }),
    fc.uint16Array({ maxLength: 5 }),
    fc.int32Array({ maxLength: 5 }),
    fc.uint32Array({ maxLength: 5 }),
    fc.float32Array({ maxLength: 5 }),
    fc.bigInt64Array({ maxLength: 3 }),
    fc.bigUint64Array({ maxLength: 3 }),
  );
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("array"), tie("object"), tie("map"), tie("set")),
    array: fc.array(tie("value"), { maxLength: 5 }),
    object: fc.dictionary(key, tie("value"), { maxKeys: 5, noNullPrototype: true }),
    map: fc.array(fc.tuple(fc.oneof(key, fc.integer()), tie("value")), { maxLength: 4 }).map((entries) => new Map<unknown, unknown>(entries)),
    set: fc.array(fc.oneof(fc.integer(), key), { maxLength: 4 }).map((items) => new Set<unknown>(items)),
  }));
  fc.assert(
    fc.property(value, (v) => {
      checkEncodable(v, Infinity); // what travels passes the check
      assert.deepStrictEqual(roundTrip(v), v);
    }),
    { numRuns: 1500, seed: 20240501 },
  );
});

test("encodeInto at an offset writes the same frame there and leaves the bytes around it alone", () => {
  for (const value of [new Uint8Array(70).fill(9), Buffer.from("hello"), { a: 1, f: Float64Array.of(1, 2) }, "text"]) {
    const plan = encodedSize(value);
    const reference = encode(value);
    for (const shared of [false, true]) {
      const memory = shared ? new Uint8Array(new SharedArrayBuffer(plan.byteLength + 64)) : new Uint8Array(plan.byteLength + 64);
      memory.fill(0xee);
      assert.equal(encodeInto(plan, memory, 40), plan.byteLength);
      assert.deepStrictEqual(memory.slice(40, 40 + plan.byteLength), reference.slice());
      assert.ok(memory.subarray(0, 40).every((b) => b === 0xee), "bytes before the frame are untouched");
      assert.ok(memory.subarray(40 + plan.byteLength).every((b) => b === 0xee), "bytes after the frame are untouched");
      assert.deepStrictEqual(decode(memory.slice(40, 40 + plan.byteLength)), value instanceof Uint8Array && !Buffer.isBuffer(value) ? value : decode(reference));
    }
    const small = new Uint8Array(plan.byteLength + 8);
    assert.throws(() => encodeInto(plan, small, 9), { code: "ERR_PLEXUS_INVALID_ARGUMENT" }, "no room at that offset");
    assert.throws(() => encodeInto(plan, small, -1), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  }
});

test("raw frames in one pass: rawFrameLength and writeRawFrame give encode()'s bytes; decodeAt keeps the kind of bytes, as a view, whatever the memory", () => {
  for (const value of [new Uint8Array([1, 2, 3]), Buffer.from("buf"), new Uint8Array(0)]) {
    const frame = encode(value);
    const n = rawFrameLength(value);
    assert.equal(n, frame.length);
    const out = new Uint8Array(n + 5).fill(0xee);
    writeRawFrame(value, out, 5);
    assert.deepEqual(out.subarray(0, 5), new Uint8Array(5).fill(0xee));
    assert.deepEqual(out.subarray(5), frame);
    // Read back at an offset of a Buffer (a socket's memory): a Uint8Array stays one, a Buffer one.
    const memory = Buffer.alloc(n + 7, 0xee);
    memory.set(frame, 3);
    const back = decodeAt(memory, 3, 3 + n) as Uint8Array;
    assert.equal(Buffer.isBuffer(back), Buffer.isBuffer(value));
    assert.equal(Object.getPrototypeOf(back), Object.getPrototypeOf(value));
    assert.deepEqual([...back], [...value]);
    assert.equal(back.buffer, memory.buffer, "a view of the memory, not a copy");
  }
  class Bytes extends Uint8Array {}
  for (const other of [new Uint16Array(2), new DataView(new ArrayBuffer(2)), [1], "s", null, undefined, new Bytes(2), { length: 2 }]) {
    assert.equal(rawFrameLength(other), -1, `${Object.prototype.toString.call(other)} is not framed raw`);
  }
  assert.throws(() => writeRawFrame(new Bytes(2), new Uint8Array(64), 0), InvalidArgumentError, "a subclass is not framed raw");
  // The header alone, in front of a payload already in place.
  const payload = Uint8Array.of(9, 8, 7);
  const inPlace = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  inPlace.set(payload, FRAME_HEADER_BYTES);
  writeRawFrameHeader(inPlace, 0, payload.length);
  assert.deepEqual(inPlace, encode(payload));
});
