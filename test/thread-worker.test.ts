import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connectThread, ThreadSender, type ThreadEndpoint } from "../src/index.js";
import { checkMessage, message } from "./conformance/suite.js";

const script = new URL("./fixtures/thread-worker.js", import.meta.url);

function reader(sender: ThreadSender, mode: "read" | "hold", count = 0): Worker {
  const { endpoint, transfer } = sender.endpoint();
  return new Worker(script, { workerData: { mode, endpoint, count }, transferList: transfer });
}

test("thread: two worker readers receive every message with its bytes", async () => {
  await using sender = ThreadSender.create({ capacity: 32768 });
  const count = 5000;
  const workers = [reader(sender, "read", count), reader(sender, "read", count)];
  const results = workers.map((w) => once(w, "message"));
  while (sender.receivers < 2) await new Promise((r) => setTimeout(r, 1));
  for (let seq = 1; seq <= count; seq++) await sender.send(message(seq, 100 + (seq % 900)), { timeout: 10000 });
  for (const r of results) assert.deepEqual((await r)[0], { count, errors: [] });
  await Promise.all(workers.map((w) => w.terminate()));
});

test("thread: terminating a worker that holds a message frees a blocked sender", async () => {
  await using sender = ThreadSender.create({ capacity: 8192, timeout: 10000 });
  const w = reader(sender, "hold");
  while (sender.receivers < 1) await new Promise((r) => setTimeout(r, 1));
  await sender.send(message(1, 1000));
  assert.equal((await once(w, "message"))[0], "holding");
  let seq = 2;
  while (sender.trySend(message(seq, 1000))) seq++;
  const blocked = sender.send(message(seq, 1000));
  await w.terminate();
  await blocked;
  assert.equal(sender.receivers, 0);
});

test("thread: a sender thread that dies gives the receiver PeerDeadError after what it committed", async () => {
  const w = new Worker(script, { workerData: { mode: "write" } });
  const [endpoint] = (await once(w, "message")) as [ThreadEndpoint];
  await using rx = connectThread(endpoint);
  const first = await rx.receive({ timeout: 10000 });
  assert.ok(first);
  first.release();
  await w.terminate();
  let seq = first.sequence;
  await assert.rejects(
    (async () => {
      for (;;) {
        const f = await rx.receive({ timeout: 10000 });
        assert.ok(f, "the stream must not end quietly when the sender dies");
        seq++;
        assert.equal(f.sequence, seq);
        checkMessage(f.bytes, seq, 100 + (seq % 900));
        f.release();
      }
    })(),
    { code: "ERR_PLEXUS_PEER_DEAD" },
  );
});

test("thread: terminating workers in the middle of wake-ups never crashes the process (20 rounds)", async () => {
  for (let round = 0; round < 20; round++) {
    // The worker writes as fast as it can; we release frames (ringing its eventfd) while it dies.
    const writer = new Worker(script, { workerData: { mode: "write" } });
    const [endpoint] = (await once(writer, "message")) as [ThreadEndpoint];
    const rx = connectThread(endpoint);
    // A reader worker that we keep ringing while it is terminated.
    await using tx = ThreadSender.create({ capacity: 8192 });
    const reading = reader(tx, "read", 1e9);
    while (tx.receivers === 0) await new Promise((r) => setTimeout(r, 1));
    const stop = Date.now() + 5 + (round % 5) * 3;
    let seq = 1;
    while (Date.now() < stop) {
      tx.trySend(message(seq++, 64));
      const f = rx.tryReceive();
      f?.release();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all([writer.terminate(), reading.terminate()]);
    await rx.close();
    // (Freed when the worker's end of the endpoint's port closes: up to seconds on a loaded machine.)
    for (let i = 0; i < 1000 && tx.receivers > 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(tx.receivers, 0, "the terminated reader's slot is freed");
  }
});
