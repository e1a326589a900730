import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AtomicsBell, createHeapRing, H_WRITER_WAKE, RingReader, RingWriter, type Policy } from "../src/ring/index.js";
import { H_WRITE_POS } from "../src/ring/layout.js";

/** Byte `i` of message `seq`. */
const pattern = (seq: number, i: number): number => (seq * 31 + i) & 0xff;

function message(seq: number, size: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = pattern(seq, i);
  return m;
}

function check(view: Uint8Array, seq: number, size: number): void {
  assert.equal(view.length, size, `message ${seq} has size ${view.length}, expected ${size}`);
  for (let i = 0; i < size; i++) if (view[i] !== pattern(seq, i)) assert.fail(`message ${seq} byte ${i} is ${view[i]}, expected ${pattern(seq, i)}`);
}

function writer(buffer: SharedArrayBuffer, nativeCopy = false): RingWriter {
  return new RingWriter(buffer, new AtomicsBell(new Int32Array(buffer), H_WRITER_WAKE), { nativeCopy });
}

function reader(buffer: SharedArrayBuffer, policy: Policy = "block"): RingReader {
  return new RingReader(buffer, (w, i) => new AtomicsBell(w, i), undefined, { policy });
}

test("one writer, one reader: messages arrive in order with their content", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const r = reader(buf);
  for (let seq = 1; seq <= 1000; seq++) {
    const size = (seq * 37) % 700;
    assert.ok(w.tryWrite(message(seq, size)));
    const v = r.tryRead();
    assert.ok(v);
    assert.equal(r.sequence, seq);
    check(v, seq, size);
    r.release();
  }
  assert.equal(r.tryRead(), null);
});

test("property: random sizes, loans, aborts and releases with several readers keep every byte", () => {
  const op = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant("write" as const), size: fc.oneof(fc.integer({ min: 0, max: 2032 }), fc.constantFrom(0, 1, 15, 16, 17, 2032, 1008, 1024 - 16)) }), weight: 5 },
    { arbitrary: fc.record({ kind: fc.constant("loan" as const), size: fc.integer({ min: 0, max: 2032 }), commit: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 2032 })) }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant("read" as const), reader: fc.nat(2) }), weight: 5 },
    { arbitrary: fc.record({ kind: fc.constant("release" as const), reader: fc.nat(2), which: fc.nat(8) }), weight: 4 },
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 3 }), (ops, nReaders) => {
      const buf = createHeapRing({ capacity: 4096 });
      const w = writer(buf);
      const readers = Array.from({ length: nReaders }, () => reader(buf));
      const sizes = new Map<number, number>();
      const next = readers.map(() => 1);
      const held = readers.map(() => [] as { token: number; seq: number; view: Uint8Array }[]);
      for (const o of ops) {
        if (o.kind === "write") {
          const seq = w.nextSequence;
          if (w.tryWrite(message(seq, o.size))) sizes.set(seq, o.size);
          else assert.ok(held.some((h) => h.length > 0) || readers.some((r) => r.readable), "write refused while every reader is empty");
        } else if (o.kind === "loan") {
          const seq = w.nextSequence;
          const loan = w.tryLoan(o.size);
          if (loan === null) continue;
          assert.equal(loan.bytes.length, o.size);
          const n = o.commit < 0 ? -1 : Math.min(o.commit, o.size);
          loan.bytes.set(message(seq, o.size));
          if (n < 0) loan.abort();
          else {
            loan.commit(n);
            sizes.set(seq, n);
          }
        } else {
          const i = o.reader % nReaders;
          const r = readers[i];
          if (o.kind === "read") {
            const v = r.tryRead();
            if (v === null) continue;
            assert.equal(r.sequence, next[i]);
            check(v, r.sequence, sizes.get(r.sequence) ?? -1);
            held[i].push({ token: r.token, seq: r.sequence, view: v });
            next[i]++;
          } else if (held[i].length > 0) {
            const [h] = held[i].splice(o.which % held[i].length, 1);
            r.release(h.token);
          }
        }
        // Every held view still holds its bytes, whatever was written since.
        for (const hs of held) for (const h of hs) check(h.view, h.seq, sizes.get(h.seq) ?? -1);
      }
      // Drain: everything written reaches every reader.
      readers.forEach((r, i) => {
        r.releaseAll();
        for (let v = r.tryRead(); v !== null; v = r.tryRead()) {
          assert.equal(r.sequence, next[i]);
          check(v, r.sequence, sizes.get(r.sequence) ?? -1);
          next[i]++;
          r.release();
        }
        assert.equal(next[i], w.nextSequence);
      });
    }),
    { numRuns: 300 },
  );
});

test("drop-oldest: a lapped reader skips ahead and learns how many it missed", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const leaky = reader(buf, "drop-oldest");
  const total = 200;
  for (let seq = 1; seq <= total; seq++) assert.ok(w.tryWrite(message(seq, 100)), `write ${seq} refused`);
  let got = 0;
  let last = 0;
  for (let v = leaky.tryRead(); v !== null; v = leaky.tryRead()) {
    assert.ok(leaky.sequence > last);
    check(v, leaky.sequence, 100);
    last = leaky.sequence;
    got++;
    leaky.release();
  }
  const missed = leaky.takeMissed();
  assert.ok(missed > 0);
  assert.equal(got + missed, total);
  assert.equal(last, total);
});

test("drop-oldest never overwrites a held view; the writer waits for it instead", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const leaky = reader(buf, "drop-oldest");
  assert.ok(w.tryWrite(message(1, 1000)));
  const v = leaky.tryRead();
  assert.ok(v);
  let refused = false;
  for (let seq = 2; seq < 50 && !refused; seq++) refused = !w.tryWrite(message(seq, 1000));
  assert.ok(refused, "the writer must not overwrite a held view");
  check(v, 1, 1000);
  leaky.release();
  assert.ok(w.tryWrite(message(w.nextSequence, 1000)));
});

test("fail policy: the writer gets BackpressureError at once", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  reader(buf, "fail");
  assert.throws(() => {
    for (let seq = 1; seq < 100; seq++) w.tryWrite(message(seq, 500));
  }, { code: "ERR_PLEXUS_BACKPRESSURE" });
});

test("block policy: write waits for a release, and times out or aborts with typed errors", async () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const r = reader(buf);
  while (w.tryWrite(message(w.nextSequence, 500)));
  await assert.rejects(w.write(message(w.nextSequence, 500), { timeout: 20 }), { code: "ERR_PLEXUS_TIMEOUT" });
  const ac = new AbortController();
  const p = w.write(message(w.nextSequence, 500), { signal: ac.signal });
  ac.abort(new Error("stop"));
  await assert.rejects(p, (e: Error & { code?: string; cause?: Error }) => e.code === "ERR_PLEXUS_ABORTED" && e.cause?.message === "stop");
  const seq = w.nextSequence;
  const pending = w.write(message(seq, 500), { timeout: 2000 });
  setTimeout(() => {
    for (let v = r.tryRead(); v !== null; v = r.tryRead()) r.release();
  }, 10);
  await pending;
  assert.equal(w.nextSequence, seq + 1);
});

test("read waits for the writer, ends after a graceful close, and honours timeout and signal", async () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const r = reader(buf);
  await assert.rejects(r.read({ timeout: 10 }), { code: "ERR_PLEXUS_TIMEOUT" });
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(r.read({ signal: ac.signal }), { code: "ERR_PLEXUS_ABORTED" });
  setTimeout(() => {
    w.tryWrite(message(1, 10));
    w.close();
  }, 5);
  const v = await r.read({ timeout: 2000 });
  assert.ok(v);
  check(v, 1, 10);
  r.release();
  assert.equal(await r.read({ timeout: 2000 }), null);
});

test("a late reader starts at the current position; a reader that leaves stops holding the writer", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const early = reader(buf);
  for (let seq = 1; seq <= 5; seq++) assert.ok(w.tryWrite(message(seq, 100)));
  const late = reader(buf);
  assert.equal(late.tryRead(), null);
  assert.ok(w.tryWrite(message(6, 100)));
  const v = late.tryRead();
  assert.ok(v);
  assert.equal(late.sequence, 6);
  while (w.tryWrite(message(w.nextSequence, 100)));
  late.releaseAll();
  for (let v2 = late.tryRead(); v2 !== null; v2 = late.tryRead()) late.release();
  assert.equal(w.tryWrite(message(w.nextSequence, 100)), false, "the early reader still holds the ring");
  early.leave();
  assert.ok(w.tryWrite(message(w.nextSequence, 100)));
  assert.equal(w.readers, 1);
});

test("bad sizes and a corrupt header are typed errors", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  assert.throws(() => w.tryWrite(new Uint8Array(4096)), { code: "ERR_PLEXUS_FRAME_TOO_LARGE" });
  assert.throws(() => w.tryLoan(-1), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  const bad = createHeapRing({ capacity: 4096 });
  new Int32Array(bad)[0] = 0x12345678;
  assert.throws(() => reader(bad), { code: "ERR_PLEXUS_PROTOCOL" });
  const badVersion = createHeapRing({ capacity: 4096 });
  new Int32Array(badVersion)[1] = 99;
  assert.throws(() => reader(badVersion), { code: "ERR_PLEXUS_PROTOCOL" });
  const badSize = createHeapRing({ capacity: 4096 });
  new Int32Array(badSize)[3] = 5000;
  assert.throws(() => reader(badSize), { code: "ERR_PLEXUS_PROTOCOL" });
  const r = reader(buf);
  assert.ok(w.tryWrite(message(1, 10)));
  new Int32Array(buf)[new Int32Array(buf)[2] / 4] = 1 << 30; // corrupt the frame's length
  assert.throws(() => r.tryRead(), { code: "ERR_PLEXUS_PROTOCOL" });
  w.close();
  assert.throws(() => w.tryWrite(message(2, 1)), { code: "ERR_PLEXUS_CLOSED" });
});

test("slots run out with a typed error", () => {
  const buf = createHeapRing({ capacity: 4096, maxReaders: 2 });
  reader(buf);
  reader(buf);
  assert.throws(() => reader(buf), { code: "ERR_PLEXUS_RESOURCE_EXHAUSTED" });
});

test("property: a leaky reader beside a blocking one sees increasing sequences, intact bytes, and got + missed = sent", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant("write" as const), size: fc.integer({ min: 0, max: 1500 }) }),
          fc.record({ kind: fc.constant("read" as const), who: fc.constantFrom(0, 1), release: fc.boolean() }),
          fc.record({ kind: fc.constant("releaseAll" as const), who: fc.constantFrom(0, 1) }),
        ),
        { minLength: 1, maxLength: 400 },
      ),
      (ops) => {
        const buf = createHeapRing({ capacity: 4096 });
        const w = writer(buf);
        const leaky = reader(buf, "drop-oldest");
        const steady = reader(buf, "block");
        const sizes = new Map<number, number>();
        const rs = [leaky, steady];
        const got = [0, 0];
        const last = [0, 0];
        const held: { seq: number; view: Uint8Array }[][] = [[], []];
        const read = (i: number, release: boolean): boolean => {
          const v = rs[i].tryRead();
          if (v === null) return false;
          const seq = rs[i].sequence;
          if (i === 0) assert.ok(seq > last[0], `leaky reader went from ${last[0]} to ${seq}`);
          else assert.equal(seq, last[1] + 1);
          check(v, seq, sizes.get(seq) ?? -1);
          last[i] = seq;
          got[i]++;
          if (release) rs[i].release(rs[i].token);
          else held[i].push({ seq, view: v });
          return true;
        };
        for (const o of ops) {
          if (o.kind === "write") {
            const seq = w.nextSequence;
            if (w.tryWrite(message(seq, o.size))) sizes.set(seq, o.size);
          } else if (o.kind === "read") {
            read(o.who, o.release);
          } else {
            rs[o.who].releaseAll();
            held[o.who] = [];
          }
          for (const hs of held) for (const h of hs) check(h.view, h.seq, sizes.get(h.seq) ?? -1);
        }
        for (const i of [0, 1]) {
          rs[i].releaseAll();
          while (read(i, true));
        }
        const sent = w.nextSequence - 1;
        assert.equal(got[1], sent);
        assert.equal(got[0] + leaky.takeMissed(), sent);
      },
    ),
    { numRuns: 300 },
  );
});

test("tryReserve/commitReserved write straight into the ring; abortReserved publishes nothing", () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const r = reader(buf);
  const at = w.tryReserve(100);
  assert.ok(at >= 0);
  assert.throws(() => w.tryWrite(new Uint8Array(1)), { code: "ERR_PLEXUS_INVALID_ARGUMENT" }, "nothing else is written while a reservation is open");
  const m = message(1, 100);
  w.ringBytes.set(m, at);
  assert.equal(r.tryRead(), null, "not visible before the commit");
  w.commitReserved(60);
  const v = r.tryRead();
  assert.ok(v);
  check(v, 1, 60);
  r.release();
  assert.throws(() => w.commitReserved(1), { code: "ERR_PLEXUS_CLOSED" }, "no reservation left to commit");
  assert.ok(w.tryReserve(10) >= 0);
  w.abortReserved();
  assert.equal(r.tryRead(), null, "an aborted reservation publishes nothing");
  assert.ok(w.tryWrite(message(2, 10)), "the writer is usable after an abort");
  check(r.tryRead() as Uint8Array, 2, 10);
  r.release();
  // No room: -1, like tryLoan's null.
  while (w.tryWrite(new Uint8Array(1000)));
  assert.equal(w.tryReserve(1000), -1);
  assert.throws(() => w.tryReserve(1 << 20), { code: "ERR_PLEXUS_FRAME_TOO_LARGE" });
});

test("pinned frames: the writer does not reuse them after the reader released them, until unpinned (any order)", async () => {
  const buf = createHeapRing({ capacity: 4096 });
  const w = writer(buf);
  const r = reader(buf);
  // Two pinned frames of 1000 bytes, read and released at once by the reader.
  const pins: number[] = [];
  const offsets: number[] = [];
  for (const seq of [1, 2]) {
    const at = w.tryReserve(1000);
    w.ringBytes.set(message(seq, 1000), at);
    pins.push(w.pinReserved());
    offsets.push(at);
    w.commitReserved(1000);
    check(r.tryRead() as Uint8Array, seq, 1000);
    r.release();
  }
  // The reader holds nothing, yet only the room not pinned is written: at most 4096 - 2 x 1016.
  let written = 0;
  while (w.tryWrite(new Uint8Array(100).fill(0xee))) {
    assert.ok(r.tryRead());
    r.release();
    written++;
  }
  assert.ok(written > 0 && written * 116 <= 4096 - 2 * 1016, `${written} frames of 116 bytes beside two pinned frames of 1016`);
  offsets.forEach((at, i) => check(w.ringBytes.subarray(at, at + 1000), i + 1, 1000)); // untouched
  // Unpinning the newer one frees nothing: the older one still holds the writer back.
  w.unpin(pins[1]);
  assert.equal(w.tryReserve(100), -1);
  w.unpin(pins[1]); // idempotent
  check(w.ringBytes.subarray(offsets[0], offsets[0] + 1000), 1, 1000);
  // A write waiting for room wakes when the older one is unpinned.
  let done = false;
  const waiting = w.write(new Uint8Array(1500), { timeout: 5000 }).then(() => (done = true));
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(done, false, "waits while pinned");
  w.unpin(pins[0]);
  await waiting;
  assert.equal((r.tryRead() as Uint8Array).length, 1500);
  r.release();
  // pinReserved needs an open reservation; an aborted one drops its pin.
  assert.throws(() => w.pinReserved(), { code: "ERR_PLEXUS_CLOSED" });
  assert.ok(w.tryReserve(1500) >= 0);
  w.pinReserved();
  w.abortReserved();
  for (let i = 0; i < 3; i++) {
    assert.ok(w.tryWrite(new Uint8Array(1500)), "nothing pinned by the aborted reservation");
    assert.ok(r.tryRead());
    r.release();
  }
  // An aborted pin behind an older live one, then a live pin at the very same position: unpinning
  // both frees everything (the aborted entry is not mistaken for the live one).
  assert.ok(w.tryReserve(100) >= 0);
  const older = w.pinReserved();
  w.commitReserved(100);
  assert.ok(w.tryReserve(100) >= 0);
  w.pinReserved();
  w.abortReserved();
  assert.ok(w.tryReserve(100) >= 0);
  const same = w.pinReserved();
  w.commitReserved(100);
  for (let i = 0; i < 2; i++) {
    assert.ok(r.tryRead());
    r.release();
  }
  w.unpin(same);
  w.unpin(older);
  for (let i = 0; i < 6; i++) {
    assert.ok(w.tryWrite(new Uint8Array(1900)), `frame ${i}: nothing left pinned`);
    assert.ok(r.tryRead());
    r.release();
  }
});

test("pinned frames past 2 GiB written: the ring's positions turn negative as int32, pin tokens never do", () => {
  const buf = createHeapRing({ capacity: 4096 });
  // A ring that has carried almost 2 GiB: its write position is about to pass 2^31.
  new Int32Array(buf)[H_WRITE_POS] = 2 ** 31 - 2048; // (16-aligned, as every position is)
  const w = writer(buf);
  const r = reader(buf);
  const tokens = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const at = w.tryReserve(500);
    assert.ok(at >= 0, `frame ${i} fits: the previous one was unpinned`);
    const pin = w.pinReserved();
    assert.ok(Number.isInteger(pin) && pin >= 0 && pin <= 0xffffffff, `token ${pin}`);
    tokens.add(pin);
    w.commitReserved(500);
    assert.ok(r.tryRead());
    r.release();
    w.unpin(pin);
  }
  assert.equal(tokens.size, 200);
  assert.ok([...tokens].some((t) => t >= 2 ** 31), "positions past 2^31 were pinned and unpinned");
  // With one pin held past the boundary, the writer still stops short of it.
  assert.ok(w.tryReserve(1500) >= 0);
  const held = w.pinReserved();
  w.commitReserved(1500);
  assert.ok(r.tryRead());
  r.release();
  let more = 0;
  while (w.tryWrite(new Uint8Array(500))) {
    assert.ok(r.tryRead());
    r.release();
    more++;
  }
  assert.ok(more <= (4096 - 1532) / 516, `${more} more frames beside the pinned one`);
  w.unpin(held);
  assert.ok(w.tryWrite(new Uint8Array(1500)));
});
