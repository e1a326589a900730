/**
 * The transport conformance suite: every transport runs these same tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Receiver, ReceiverOptions, Sender } from "../../src/index.js";

/** What a transport provides to the suite. */
export interface TransportUnderTest {
  /** A sender with a small ring (capacity in bytes). */
  sender(opts: { capacity: number; timeout?: number }): Promise<Sender>;
  /** A receiver attached to `sender`. */
  receiver(sender: Sender, opts?: ReceiverOptions): Promise<Receiver>;
}

/** Byte `i` of message `seq`. */
export const pattern = (seq: number, i: number): number => (seq * 31 + i) & 0xff;

/** A message whose bytes follow {@link pattern}. */
export function message(seq: number, size: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = pattern(seq, i);
  return m;
}

/** Asserts `bytes` is message `seq` of `size` bytes. */
export function checkMessage(bytes: Uint8Array, seq: number, size: number): void {
  assert.equal(bytes.length, size, `message ${seq}: ${bytes.length} bytes, expected ${size}`);
  for (let i = 0; i < size; i++) {
    if (bytes[i] !== pattern(seq, i)) assert.fail(`message ${seq} byte ${i} is ${bytes[i]}, expected ${pattern(seq, i)}`);
  }
}

const sizeOf = (seq: number): number => (seq * 7919) % 1500;

/** Registers the conformance tests for one transport. */
export function conformance(name: string, t: TransportUnderTest): void {
  test(`${name}: every message arrives once, in order, with its bytes and sequence`, async () => {
    await using sender = await t.sender({ capacity: 16384 });
    await using rx = await t.receiver(sender);
    const n = 2000;
    const producing = (async () => {
      for (let seq = 1; seq <= n; seq++) await sender.send(message(seq, sizeOf(seq)));
    })();
    for (let seq = 1; seq <= n; seq++) {
      const f = await rx.receive({ timeout: 5000 });
      assert.ok(f);
      assert.equal(f.sequence, seq);
      checkMessage(f.bytes, seq, sizeOf(seq));
      f.release();
    }
    await producing;
    assert.equal(rx.tryReceive(), null);
  });

  test(`${name}: each receiver gets every message (fan-out)`, async () => {
    await using sender = await t.sender({ capacity: 16384 });
    const rxs = await Promise.all([t.receiver(sender), t.receiver(sender), t.receiver(sender)]);
    assert.equal(sender.receivers, 3);
    const n = 300;
    const producing = (async () => {
      for (let seq = 1; seq <= n; seq++) await sender.send(message(seq, sizeOf(seq)));
      await sender.close();
    })();
    await Promise.all(
      rxs.map(async (rx) => {
        let seq = 0;
        for await (const f of rx) {
          seq++;
          assert.equal(f.sequence, seq);
          checkMessage(f.bytes, seq, sizeOf(seq));
        }
        assert.equal(seq, n);
      }),
    );
    await producing;
  });

  test(`${name}: a loan is written in place and published on commit; abort publishes nothing`, async () => {
    await using sender = await t.sender({ capacity: 16384 });
    await using rx = await t.receiver(sender);
    const a = await sender.loan(100);
    a.bytes.set(message(1, 100));
    a.commit(60);
    const b = await sender.loan(50);
    b.abort();
    const c = await sender.loan(10);
    c.bytes.set(message(2, 10));
    c.commit();
    const f1 = await rx.receive({ timeout: 2000 });
    assert.ok(f1);
    checkMessage(f1.bytes, 1, 60);
    const f2 = await rx.receive({ timeout: 2000 });
    assert.ok(f2);
    assert.equal(f2.sequence, 2);
    checkMessage(f2.bytes, 2, 10);
    assert.throws(() => a.commit(), { code: "ERR_PLEXUS_CLOSED" });
  });

  test(`${name}: a loan takes its room up front; sends wait for it to end`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using rx = await t.receiver(sender);
    let seq = 0;
    while (sender.trySend(message(seq + 1, 1000))) seq++;
    const ac = new AbortController();
    const lending = sender.loan(1000, { signal: ac.signal, timeout: 5000 });
    const first = await rx.receive({ timeout: 2000 });
    assert.ok(first);
    first.release(); // room for one more message: the loan gets it
    const loan = await lending;
    assert.throws(() => sender.trySend(message(99, 10)), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
    loan.bytes.set(message(seq + 1, 1000));
    loan.commit();
    for (let k = 2; k <= seq + 1; k++) {
      const f = await rx.receive({ timeout: 2000 });
      assert.ok(f);
      assert.equal(f.sequence, k);
      checkMessage(f.bytes, k, 1000);
      f.release();
    }
  });

  test(`${name}: block backpressure waits for the slowest receiver, with timeout and abort`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using rx = await t.receiver(sender);
    let seq = 0;
    while (sender.trySend(message(seq + 1, 1000))) seq++;
    assert.ok(seq >= 4 && seq <= 8, `${seq} messages fit in 8 KiB`);
    await assert.rejects(sender.send(message(seq + 1, 1000), { timeout: 30 }), { code: "ERR_PLEXUS_TIMEOUT" });
    const ac = new AbortController();
    const aborted = sender.send(message(seq + 1, 1000), { signal: ac.signal });
    ac.abort(new Error("enough"));
    await assert.rejects(aborted, (e: { code?: string; cause?: Error }) => e.code === "ERR_PLEXUS_ABORTED" && e.cause?.message === "enough");
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(sender.send(message(seq + 1, 1000), { signal: pre.signal }), { code: "ERR_PLEXUS_ABORTED" });
    const pending = sender.send(message(seq + 1, 1000), { timeout: 5000 });
    for (let k = 1; k <= seq + 1; k++) {
      const f = await rx.receive({ timeout: 5000 });
      assert.ok(f);
      checkMessage(f.bytes, k, 1000);
      f.release();
    }
    await pending;
  });

  test(`${name}: a drop-oldest receiver never stalls the sender and counts what it missed`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using leaky = await t.receiver(sender, { backpressure: "drop-oldest" });
    const n = 500;
    for (let seq = 1; seq <= n; seq++) assert.ok(sender.trySend(message(seq, 200)), `send ${seq} blocked`);
    // close() resolves once the receiver took the rest (tcp: its queue at the sender, as it releases).
    const closed = sender.close();
    let got = 0;
    let last = 0;
    for await (const f of leaky) {
      assert.ok(f.sequence > last);
      checkMessage(f.bytes, f.sequence, 200);
      last = f.sequence;
      got++;
    }
    await closed;
    assert.equal(last, n);
    assert.equal(got + leaky.takeMissed(), n);
  });

  test(`${name}: a fail receiver makes the sender fail at once`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using _rx = await t.receiver(sender, { backpressure: "fail" });
    await assert.rejects(
      (async () => {
        for (let seq = 1; seq < 100; seq++) await sender.send(message(seq, 1000));
      })(),
      { code: "ERR_PLEXUS_BACKPRESSURE" },
    );
  });

  test(`${name}: the stream ends after the sender closes; handles refuse use after close`, async () => {
    const sender = await t.sender({ capacity: 8192 });
    const rx = await t.receiver(sender);
    await sender.send(message(1, 5));
    await sender.close();
    await sender.close();
    await assert.rejects(sender.send(message(2, 5)), { code: "ERR_PLEXUS_CLOSED" });
    const f = await rx.receive({ timeout: 2000 });
    assert.ok(f);
    checkMessage(f.bytes, 1, 5);
    f.release();
    assert.equal(await rx.receive({ timeout: 2000 }), null);
    await rx.close();
    await rx[Symbol.asyncDispose]();
    await assert.rejects(rx.receive(), { code: "ERR_PLEXUS_CLOSED" });
  });

  test(`${name}: receive honours timeout and abort`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using rx = await t.receiver(sender);
    await assert.rejects(rx.receive({ timeout: 20 }), { code: "ERR_PLEXUS_TIMEOUT" });
    const ac = new AbortController();
    const p = rx.receive({ signal: ac.signal });
    ac.abort("why");
    await assert.rejects(p, (e: { code?: string; cause?: unknown }) => e.code === "ERR_PLEXUS_ABORTED" && e.cause === "why");
    await sender.send(message(1, 3));
    const f = await rx.receive({ timeout: 2000 });
    assert.ok(f);
    checkMessage(f.bytes, 1, 3);
  });

  test(`${name}: a receiver that leaves no longer holds the sender; a late one starts now`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    const early = await t.receiver(sender);
    while (sender.trySend(message(1, 1000)));
    assert.equal(sender.trySend(message(1, 1000)), false);
    await early.close();
    assert.ok(sender.trySend(message(1, 1000)));
    await using late = await t.receiver(sender);
    assert.equal(late.tryReceive(), null);
    await sender.send(message(7, 20));
    const f = await late.receive({ timeout: 2000 });
    assert.ok(f);
    checkMessage(f.bytes, 7, 20);
  });

  test(`${name}: break in for-await closes the receiver and frees the sender`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    const rx = await t.receiver(sender);
    await sender.send(message(1, 10));
    await sender.send(message(2, 10));
    for await (const f of rx) {
      checkMessage(f.bytes, 1, 10);
      break;
    }
    await assert.rejects(rx.receive(), { code: "ERR_PLEXUS_CLOSED" });
    assert.equal(sender.receivers, 0);
  });

  test(`${name}: oversized messages and bad arguments are typed errors`, async () => {
    await using sender = await t.sender({ capacity: 8192 });
    await using _rx = await t.receiver(sender);
    assert.throws(() => sender.trySend(new Uint8Array(8192)), { code: "ERR_PLEXUS_FRAME_TOO_LARGE" });
    await assert.rejects(sender.loan(-5), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
    await assert.rejects(sender.send(message(1, 1), { timeout: -1 }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
    await assert.rejects(t.receiver(sender, { backpressure: "sometimes" as never }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  });

  test(`${name}: typed arrays of any kind are sent as their bytes`, async () => {
    await using sender = await t.sender({ capacity: 16384 });
    await using rx = await t.receiver(sender);
    const f64 = new Float64Array([1.5, -2, Math.PI]);
    await sender.send(f64);
    const big = new Uint32Array(1000).map((_, i) => i * 2654435761);
    await sender.send(big);
    const f = await rx.receive({ timeout: 2000 });
    assert.ok(f);
    assert.deepEqual(new Float64Array(f.bytes.buffer, f.bytes.byteOffset, 3), f64);
    f.release();
    const g = await rx.receive({ timeout: 2000 });
    assert.ok(g);
    assert.equal(g.bytes.byteOffset % 16, 0);
    assert.deepEqual(new Uint32Array(g.bytes.buffer, g.bytes.byteOffset, 1000), big);
  });
}
