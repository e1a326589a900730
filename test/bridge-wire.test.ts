/**
 * The bridge's pure parts: the subject mapping (reversible, never a wildcard or separator of its
 * own), name patterns and filters, the envelope, and reassembly under its memory bound.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameTooLargeError, ProtocolError, ResourceExhaustedError } from "../src/index.js";
import { nameFromTokens, nameOfSubject, nameTokens, NameFilter, NamePattern, subjectOf } from "../src/bridge/subjects.js";
import { batchHeadBytes, batchItemBytes, EnvelopeArena, envelopes, Kind, loneFrameAt, loneRawEnvelope, readBatch, readEnvelope, Reassembler, sendBatch, senderNames, sendEnvelopes, type Sender } from "../src/bridge/envelope.js";
import { decode, encodedSize, rawFrameLength } from "../src/codec/index.js";

const from: Sender = { origin: new TextEncoder().encode("host-a"), port: new TextEncoder().encode("p1") };

describe("bridge subjects", () => {
  it("escapes NATS's separators and wildcards, a leading $ and empty segments", () => {
    assert.equal(subjectOf("plexus", "t", "camera/front"), "plexus.t.camera.front");
    assert.equal(subjectOf("plexus", "t", "a.b/*/>/$sys/~x"), "plexus.t.a~2Eb.~2A.~3E.~24sys.~7Ex");
    assert.equal(subjectOf("plexus", "t", "/lead//trail/"), "plexus.t.~.lead.~.trail.~");
    assert.equal(nameOfSubject("plexus", "t", "plexus.t.a~2Eb.~2A.~3E.~24sys.~7Ex"), "a.b/*/>/$sys/~x");
    assert.equal(nameOfSubject("plexus", "s", "plexus.t.x"), undefined, "another kind");
    assert.equal(nameOfSubject("plexus", "t", "plexus.t.$bad"), undefined, "a token the mapping never makes");
    assert.equal(nameOfSubject("plexus", "t", "plexus.t.~2e"), undefined, "lower-case escapes are not the mapping's");
  });

  it("is reversible for every topic name, and its tokens hold no separator, wildcard or leading $", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("a", "b", ".", "*", ">", "/", "~", "$", "é", "-", "2", "E"), minLength: 1, maxLength: 40 }), (name) => {
        const tokens = nameTokens(name);
        for (const t of tokens) {
          assert.ok(t.length > 0);
          assert.ok(!/[.*>\s]/.test(t), t);
          assert.ok(!t.startsWith("$"), t);
        }
        assert.equal(nameFromTokens(tokens), name);
        assert.equal(nameOfSubject("p", "t", subjectOf("p", "t", name)), name);
      }),
    );
  });

  it("patterns: * is one segment, > one or more at the end; their subjects use NATS wildcards", () => {
    const p = new NamePattern("camera/*/raw");
    assert.ok(p.matches("camera/front/raw"));
    assert.ok(!p.matches("camera/front/left/raw"));
    assert.ok(!p.matches("camera/raw"));
    const all = new NamePattern("sensors/>");
    assert.ok(all.matches("sensors/imu"));
    assert.ok(all.matches("sensors/imu/accel"));
    assert.ok(!all.matches("sensors"));
    assert.equal(all.subject("plexus", "t"), "plexus.t.sensors.>");
    assert.equal(new NamePattern("a.b/*").subject("plexus", "t"), "plexus.t.a~2Eb.*");
    assert.throws(() => new NamePattern("a/>/b"), /last segment/);
    assert.throws(() => new NamePattern(""), /non-empty/);
  });

  it("the subjects of an allow list never deliver a message twice: covered patterns go, partial overlaps become one subject", () => {
    assert.deepEqual(new NameFilter(["big/>", ">", "big/*"]).subjects("p", "t"), ["p.t.>"]);
    assert.deepEqual(new NameFilter(["a/>", "a/*", "b/c"]).subjects("p", "t"), ["p.t.a.>", "p.t.b.c"]);
    assert.deepEqual(new NameFilter(["a/*", "*/b"]).subjects("p", "t"), ["p.t.>"], "a/b matches both");
    assert.deepEqual(new NameFilter(["a/*", "b/*", "a/*"]).subjects("p", "t"), ["p.t.a.*", "p.t.b.*"]);
    assert.ok(new NamePattern("a/>").covers(new NamePattern("a/b/*")));
    assert.ok(!new NamePattern("a/*").covers(new NamePattern("a/>")));
    assert.ok(!new NamePattern("a/*").overlaps(new NamePattern("a/b/c")));
    assert.ok(new NamePattern("*/b/>").overlaps(new NamePattern("a/*/c")));
  });

  it("filters: nothing passes without an allow pattern; deny wins", () => {
    assert.ok(!new NameFilter([], []).passes("x"));
    const f = new NameFilter([">"], ["secret/>"]);
    assert.ok(f.passes("camera/front"));
    assert.ok(!f.passes("secret/key"));
  });
});

describe("bridge envelope", () => {
  it("a value that fits is one message: the header, the names, the codec frame", () => {
    const [m, ...rest] = envelopes(Kind.Message, from, 42, { x: new Float64Array([1.5]) }, 1 << 20, 1 << 20);
    assert.equal(rest.length, 0);
    const e = readEnvelope(m);
    assert.equal(e.kind, Kind.Message);
    assert.equal(e.origin, "host-a");
    assert.equal(e.port, "p1");
    assert.equal(e.sequence, 42);
    assert.equal(e.count, 1);
    const v = decode(e.chunk) as { x: Float64Array };
    assert.ok(v.x instanceof Float64Array);
    assert.equal(v.x[0], 1.5);
  });

  it("a larger value is cut into chunks no larger than max_payload, and put back together", () => {
    const big = new Uint8Array(10_000).map((_, i) => i & 0xff);
    const parts = envelopes(Kind.Message, from, 7, big, 1000, 1 << 20);
    assert.ok(parts.length > 10);
    for (const p of parts) assert.ok(p.length <= 1000);
    const r = new Reassembler(1 << 20, 1 << 20);
    let whole;
    for (const p of parts) whole = r.add(readEnvelope(p));
    assert.ok(whole);
    assert.equal(whole.sequence, 7);
    assert.deepEqual(decode(whole.frame), big);
    assert.equal(r.pending, 0);
  });

  it("refuses what is not an envelope, and names that run past the end, before allocating", () => {
    assert.throws(() => readEnvelope(new Uint8Array(10)), ProtocolError);
    assert.throws(() => readEnvelope(new TextEncoder().encode("x".repeat(64))), /bad magic/);
    const [m] = envelopes(Kind.Message, from, 1, 1, 1 << 20, 1 << 20);
    const wrongVersion = m.slice();
    wrongVersion[4] = 9;
    assert.throws(() => readEnvelope(wrongVersion), /version 9/);
    const chunks = m.slice();
    new DataView(chunks.buffer).setUint32(20, 0xffffffff, true); // more chunks than bytes
    assert.throws(() => readEnvelope(chunks), ProtocolError);
    assert.throws(() => readEnvelope(m.subarray(0, 33)), /names run past/);
    const truncated = m.subarray(0, m.length - 1);
    assert.throws(() => readEnvelope(truncated), /says \d+ bytes and carries/);
  });

  it("reassembly: a lost chunk drops its message; a message above maxMessage is refused; memory for incomplete ones is bounded", () => {
    const big = new Uint8Array(5000);
    const r = new Reassembler(1 << 20, 12_000);
    const a = envelopes(Kind.Message, from, 1, big, 1000, 1 << 20);
    r.add(readEnvelope(a[0]));
    assert.throws(() => r.add(readEnvelope(a[2])), /out of order/);
    assert.equal(r.pending, 0);
    assert.equal(r.dropped, 1);
    assert.throws(() => new Reassembler(1000, 1 << 20).add(readEnvelope(a[0])), FrameTooLargeError);
    // Three senders' incomplete messages: the third needs the room of the first.
    const senders = ["p1", "p2", "p3"].map((p) => ({ origin: from.origin, port: new TextEncoder().encode(p) }));
    r.add(readEnvelope(envelopes(Kind.Message, senders[0], 1, big, 1000, 1 << 20)[0]));
    r.add(readEnvelope(envelopes(Kind.Message, senders[1], 1, big, 1000, 1 << 20)[0]));
    assert.throws(() => r.add(readEnvelope(envelopes(Kind.Message, senders[2], 1, big, 1000, 1 << 20)[0])), ResourceExhaustedError);
    assert.ok(r.pending <= 12_000);
    // The second sender's message still completes.
    const rest = envelopes(Kind.Message, senders[1], 1, big, 1000, 1 << 20).slice(1);
    let whole;
    for (const p of rest) whole = r.add(readEnvelope(p));
    assert.ok(whole);
  });

  it("a batch carries several messages of one port, each with its sequence number, its frames 8-aligned: typed arrays decode as views of it", () => {
    const values = [{ n: 1 }, new Float64Array([1.5, 2.5]), "x".repeat(13), new Uint8Array(3).fill(9)];
    const plans = values.map((v) => encodedSize(v));
    const out: Uint8Array[] = [];
    sendBatch(from, [10, 11, 13, 20], plans, (p) => out.push(p), (n) => new Uint8Array(n));
    assert.equal(out.length, 1);
    const batch = out[0] as Uint8Array;
    assert.equal(batch.length, batchHeadBytes(from) + plans.reduce((n, p) => n + batchItemBytes(p.byteLength), 0));
    const e = readEnvelope(batch);
    assert.equal(e.kind, Kind.Batch);
    assert.equal(e.items, 4);
    assert.equal(e.sequence, 10);
    const items = readBatch(e, 1 << 20);
    assert.deepEqual(items.map((m) => m.sequence), [10, 11, 13, 20]);
    assert.deepEqual(items.map((m) => decode(m.frame)), values);
    for (const m of items) assert.equal(m.frame.byteOffset % 8, 0);
    const f = decode((items[1] as { frame: Uint8Array }).frame) as Float64Array;
    assert.equal(f.buffer, batch.buffer, "a view of the batch, not a copy");
  });

  it("refuses malformed batches: messages past the end or short of it, sequence numbers that do not rise, a frame above maxMessage, a chunked batch", () => {
    const plans = [encodedSize(1), encodedSize(new Uint8Array(100))];
    const make = (): Uint8Array => {
      const out: Uint8Array[] = [];
      sendBatch(from, [1, 2], plans, (p) => out.push(p), (n) => new Uint8Array(n));
      return out[0] as Uint8Array;
    };
    const set32 = (b: Uint8Array, at: number, v: number): void => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
    const first = 40; // 32 + "host-a" + "p1" = 40: already a multiple of 8
    const more = make();
    set32(more, 28, 3); // says three messages, holds two
    assert.throws(() => readBatch(readEnvelope(more), 1 << 20), /ends after 2/);
    const fewer = make();
    set32(fewer, 28, 1); // says one message: the second one's bytes are left over
    assert.throws(() => readBatch(readEnvelope(fewer), 1 << 20), /bytes more/);
    const long = make();
    set32(long, first, 1 << 20); // the first frame's length runs past the end
    assert.throws(() => readBatch(readEnvelope(long), 2 << 20), /runs past its end/);
    assert.throws(() => readBatch(readEnvelope(long), 1000), FrameTooLargeError);
    const falling = make();
    new DataView(falling.buffer).setFloat64(first + 8, 5, true); // 5, then 2
    assert.throws(() => readBatch(readEnvelope(falling), 1 << 20), /do not rise/);
    const chunked = make();
    set32(chunked, 20, 2);
    assert.throws(() => readEnvelope(chunked), ProtocolError);
    const empty = make();
    set32(empty, 28, 0);
    assert.throws(() => readEnvelope(empty), ProtocolError);
    const [m] = envelopes(Kind.Message, from, 1, 1, 1 << 20, 1 << 20);
    const counted = (m as Uint8Array).slice();
    set32(counted, 28, 2); // a message that claims batched messages
    assert.throws(() => readEnvelope(counted), ProtocolError);
    const tiny = make();
    set32(tiny, first, 0); // an empty frame: nothing to decode, refused before delivery
    assert.throws(() => readBatch(readEnvelope(tiny), 1 << 20), /shorter than a codec frame's header/);
    for (const huge of [0xfffffff9, 0xffffffff, 0x7ffffff9]) {
      const wrap = make();
      set32(wrap, first, huge); // lengths whose padding would overflow 32-bit arithmetic
      assert.throws(() => readBatch(readEnvelope(wrap), 2 ** 32 - 1), /runs past its end/);
    }
    const unpadded = make().subarray(0, make().length - 1);
    set32(unpadded, 24, readEnvelope(make()).total - 1);
    assert.throws(() => readBatch(readEnvelope(unpadded), 1 << 20), /runs past its end/);
    assert.equal(readBatch(readEnvelope(make()), 1 << 20).length, 2, "the untouched batch reads");
  });

  it("requests and answers are never chunked: one that does not fit is FrameTooLargeError", () => {
    assert.throws(() => envelopes(Kind.Request, from, 0, new Uint8Array(5000), 1000, 1 << 20), FrameTooLargeError);
  });

  it("a lone message of bytes: loneRawEnvelope writes envelopes()'s bytes in one pass; loneFrameAt finds the frame for its sender and that sequence number only", () => {
    const te = new TextEncoder();
    const from: Sender = { origin: te.encode("graph-a"), port: te.encode("pub-1") };
    const { names, o } = senderNames("graph-a", "pub-1");
    for (const value of [Uint8Array.of(1, 2, 3), Buffer.from("xyz")]) {
      const n = rawFrameLength(value);
      const one = loneRawEnvelope(from, 7, value, 1 << 20, 1 << 20, (k) => new Uint8Array(k)) as Uint8Array;
      assert.deepEqual(one, envelopes(Kind.Message, from, 7, value, 1 << 20, 1 << 20)[0]);
      const at = loneFrameAt(one, names, o, 7);
      assert.equal(at, one.length - n);
      assert.deepEqual(decode(one.subarray(at)), value);
      assert.equal(loneFrameAt(one, names, o, 8), -1, "not the sequence number expected");
      const port2 = senderNames("graph-a", "pub-2");
      assert.equal(loneFrameAt(one, port2.names, port2.o, 7), -1, "another port");
      const cut = senderNames("graph-", "apub-1");
      assert.equal(loneFrameAt(one, cut.names, cut.o, 7), -1, "the same bytes, another graph name");
      assert.equal(loneFrameAt(one.subarray(0, one.length - 1), names, o, 7), -1, "cut short");
      assert.equal(loneFrameAt(one.subarray(0, 20), names, o, 7), -1, "shorter than the header");
      const bad = one.slice();
      bad[0] ^= 1;
      assert.equal(loneFrameAt(bad, names, o, 7), -1, "bad magic");
    }
    for (const [i, at] of [[16, "chunk index 1"], [28, "batched messages"]] as const) {
      const odd = (loneRawEnvelope(from, 7, Uint8Array.of(1), 1 << 20, 1 << 20, (k) => new Uint8Array(k)) as Uint8Array).slice();
      odd[i] = 1;
      assert.equal(loneFrameAt(odd, names, o, 7), -1, at);
    }
    const big = new Uint8Array(300);
    const whole = envelopes(Kind.Message, from, 1, big, 1 << 20, 1 << 20)[0] as Uint8Array;
    const noMemory = (): Uint8Array => assert.fail("no memory is taken");
    assert.deepEqual(loneRawEnvelope(from, 1, big, whole.length, 1 << 20, (k) => new Uint8Array(k)), whole, "exactly max_payload fits");
    assert.equal(loneRawEnvelope(from, 1, big, whole.length - 1, 1 << 20, noMemory), undefined, "one byte more needs chunks");
    assert.equal(loneRawEnvelope(from, 1, big, 1 << 20, rawFrameLength(big) - 1, noMemory), undefined, "above maxMessage: sendEnvelopes refuses it");
    for (const other of [{ n: 1 }, Uint16Array.of(1), "s"]) assert.equal(loneRawEnvelope(from, 1, other, 1 << 20, 1 << 20, noMemory), undefined, "not bytes: a plan");
    // Chunks, batches and requests are not lone messages.
    const chunks = envelopes(Kind.Message, from, 3, big, 200, 1 << 20);
    assert.ok(chunks.length > 1);
    for (const c of chunks) assert.equal(loneFrameAt(c, names, o, 3), -1);
    assert.equal(loneFrameAt(envelopes(Kind.Request, from, 3, Uint8Array.of(1), 1 << 20, 1 << 20)[0] as Uint8Array, names, o, 3), -1);
    const batch: Uint8Array[] = [];
    sendBatch(from, [3, 4], [encodedSize(Uint8Array.of(1)), encodedSize(Uint8Array.of(2))], (p) => void batch.push(p));
    assert.equal(loneFrameAt(batch[0] as Uint8Array, names, o, 3), -1);
  });

  it("sendEnvelopes hands each chunk over before it takes the memory of the next, with the bytes of envelopes()", () => {
    const big = new Uint8Array(new SharedArrayBuffer(10_000)).map((_, i) => (i * 7) & 0xff); // out of shared memory, as from a ring
    const expected = envelopes(Kind.Message, from, 3, big, 1000, 1 << 20);
    const events: string[] = [];
    const sent: Uint8Array[] = [];
    const count = sendEnvelopes(
      Kind.Message,
      from,
      3,
      encodedSize(big),
      1000,
      1 << 20,
      (p) => {
        events.push("send");
        sent.push(p.slice());
      },
      (n) => {
        events.push("take");
        return new Uint8Array(n);
      },
    );
    assert.equal(count, expected.length);
    assert.deepEqual(events, expected.flatMap(() => ["take", "send"]));
    assert.deepEqual(sent, expected);
    // Nothing is sent for a message that is refused.
    assert.throws(() => sendEnvelopes(Kind.Message, from, 4, encodedSize(big), 1000, 100, () => assert.fail("sent"), (n) => new Uint8Array(n)), FrameTooLargeError);
  });

  it("reassembly reuses the memory of frames given back, never of unchunked ones", () => {
    const r = new Reassembler(1 << 20, 1 << 20);
    const whole = (value: Uint8Array, seq: number) => {
      let w;
      for (const p of envelopes(Kind.Message, from, seq, value, 1000, 1 << 20)) w = r.add(readEnvelope(p));
      assert.ok(w);
      return w;
    };
    const a = whole(new Uint8Array(10_000).fill(1), 1);
    assert.equal(a.owned, true);
    const first = a.frame.buffer;
    const b = whole(new Uint8Array(10_000).fill(2), 2);
    assert.notEqual(b.frame.buffer, first, "not given back: new memory");
    r.recycle(a.frame);
    const c = whole(new Uint8Array(9_000).fill(3), 3);
    assert.equal(c.frame.buffer, first, "given back: used again");
    assert.deepEqual(decode(c.frame), new Uint8Array(9_000).fill(3));
    const small = r.add(readEnvelope(envelopes(Kind.Message, from, 4, 5, 1000, 1 << 20)[0]));
    assert.equal(small?.owned, false, "an unchunked frame is a view of the received message");
  });

  it("an envelope arena reuses a full slab only once a flush issued after it completed", async () => {
    const flushes: { resolve: () => void; reject: (e: Error) => void }[] = [];
    const arena = new EnvelopeArena(() => new Promise<void>((resolve, reject) => flushes.push({ resolve, reject })));
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    const a = arena.take(1000);
    const b = arena.take(1000);
    assert.equal(a.buffer, b.buffer);
    assert.ok(b.byteOffset >= a.byteOffset + a.length, "envelopes follow each other in the slab");
    const first = a.buffer;
    const fill = (): ArrayBufferLike => {
      // 1 MiB pieces: the fourth does not fit a 4 MiB slab that holds the first ones
      let buffer: ArrayBufferLike = arena.take(1 << 20).buffer;
      for (let i = 0; i < 3; i++) buffer = arena.take(1 << 20).buffer;
      return buffer;
    };
    const second = fill();
    assert.notEqual(second, first, "a full slab is left to the client");
    assert.equal(flushes.length, 1, "and a flush asked for");
    const third = fill();
    assert.ok(third !== first && third !== second, "not flushed yet: new memory");
    assert.equal(flushes.length, 2);
    flushes[0].resolve();
    await turn();
    assert.equal(fill(), first, "flushed: the first slab is used again");
    flushes[1].reject(new Error("closed"));
    await turn();
    const fourth = fill();
    assert.ok(fourth !== second, "a slab whose flush failed is not used again");
    // An envelope larger than half a slab has memory of its own.
    const huge = arena.take(3 << 20);
    assert.ok(huge.buffer !== first && huge.buffer !== fourth);
    assert.equal(huge.byteOffset, 0);
  });
});
