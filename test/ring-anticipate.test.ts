// Anticipation of paced streams on shared-memory rings: the reader learns the period, sleeps
// until just before the next message is due (a high-resolution alarm) and polls through a
// short window instead of being woken by the writer. What is checked here is behaviour: every
// message arrives, in order; a paced stream is learnt and caught in its windows; the option
// turns it off; the alarm fires once when armed, never when cleared.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connectShm, InvalidArgumentError, ShmSender, type ShmAddress } from "../src/index.js";
import { Alarm } from "../src/util/alarm.js";

test("alarm: fires once when armed, not when cleared or closed", async () => {
  let fired = 0;
  const alarm = new Alarm(() => fired++);
  try {
    alarm.set(2);
    await sleep(30);
    assert.equal(fired, 1);
    alarm.set(5);
    alarm.clear();
    await sleep(30);
    assert.equal(fired, 1, "a cleared alarm does not fire");
    alarm.set(1);
    alarm.set(10); // re-arming replaces
    await sleep(40);
    assert.equal(fired, 2);
  } finally {
    alarm.close();
    alarm.close();
  }
  alarm.set(1); // closed: does nothing
  await sleep(20);
  assert.equal(fired, 2);
});

/** Reads a paced stream (5 ms apart) written by a worker; `stallEvery`: the reader is busy for 6 ms before every n-th read. */
async function pacedStream(stallEvery: number): Promise<{ caught: number; missed: number }> {
  // The writer is a worker thread that paces itself with a blocking sleep (steadier than the
  // event loop's timers, which are late by up to a millisecond); this thread reads.
  const n = 120;
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
    import(workerData.index).then(async ({ ShmSender }) => {
      const tx = ShmSender.create({ capacity: 1 << 16 });
      parentPort.postMessage(tx.address);
      await new Promise((r) => parentPort.once("message", r));
      const word = new Int32Array(new SharedArrayBuffer(4));
      const t0 = performance.now();
      for (let i = 1; i <= workerData.n; i++) {
        for (let left = t0 + i * 5 - performance.now(); left > 0; left = t0 + i * 5 - performance.now()) Atomics.wait(word, 0, 0, left);
        if (!tx.trySend(Uint32Array.of(i))) throw new Error("ring full");
      }
      await new Promise((r) => parentPort.once("message", r));
      await tx.close();
    });`,
    { eval: true, workerData: { index: new URL("../src/index.js", import.meta.url).href, n } },
  );
  try {
    const [address] = (await once(worker, "message")) as [ShmAddress];
    await using rx = await connectShm(address, { anticipate: true });
    worker.postMessage("go");
    const word = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 1; i <= n; i++) {
      if (stallEvery > 0 && i % stallEvery === 0) Atomics.wait(word, 0, 0, 6); // busy: the next frame is there before it reads
      const f = await rx.receive({ timeout: 5000 });
      assert.ok(f !== null);
      assert.equal(new Uint32Array(f.bytes.slice().buffer)[0], i);
      f.release();
    }
    const a = rx.anticipation;
    assert.ok(a !== undefined);
    return a;
  } finally {
    worker.postMessage("end");
    await once(worker, "exit");
  }
}

test("ring: a paced stream is learnt and caught in its windows; every message arrives in order", async () => {
  const a = await pacedStream(0);
  assert.ok(a.caught > 0, `caught ${a.caught}, missed ${a.missed}`); // caught in a window: the period was learnt
});

test("ring: a reader that is late now and then keeps anticipating (a frame taken at once keeps the period)", async () => {
  const a = await pacedStream(5);
  assert.ok(a.caught > 0, `caught ${a.caught}, missed ${a.missed}`);
});

test("ring: without anticipate (the default) nothing is learnt, and the option is checked", async () => {
  await using tx = ShmSender.create({ capacity: 1 << 16 });
  await using rx = await connectShm(tx.address);
  assert.equal(rx.anticipation, undefined);
  await assert.rejects(connectShm(tx.address, { anticipate: "yes" as unknown as boolean }), InvalidArgumentError);
});
