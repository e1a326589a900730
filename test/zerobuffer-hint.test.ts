/**
 * The wake hint between Plexus ends of a v1 buffer (src/zerobuffer/hint.ts): the writer gets
 * the reader's eventfd, signals it, and the reader's event loop wakes on it; only the buffer's
 * writer (by pid) makes the hint live; EOF ends it; a reader with a live hint still sees every
 * frame and a writer's death. Foreign writers (semaphores only) are covered by the conformance
 * tests in zerobuffer.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { native } from "../src/native.js";
import { HintListener, HintSender } from "../src/zerobuffer/hint.js";
import { Reader, Writer } from "../src/zerobuffer/index.js";
import { eventually } from "./helpers/eventually.js";
import { leftovers, pattern, uniqueName } from "./helpers/zb.js";

test("hint: the writer's signal wakes a reader sleeping on it; EOF ends the hint", async () => {
  const name = uniqueName("h");
  const listener = HintListener.open(name, () => process.pid);
  assert.ok(listener);
  const sender = HintSender.connect(name);
  assert.ok(sender);
  await eventually("the hint becomes live", () => listener.active);
  const ac = new AbortController();
  const woke = listener.sleep(10_000, ac.signal).then(() => "woke");
  sender.signal();
  assert.equal(await Promise.race([woke, new Promise((r) => setTimeout(() => r("timeout"), 5000))]), "woke");
  const fdsBefore = native().ownedFdCount();
  sender.close();
  await eventually("EOF ends the hint", () => !listener.active);
  assert.ok(native().ownedFdCount() < fdsBefore, "the sender's descriptors are closed");
  listener.close();
  listener.close(); // idempotent
  ac.abort();
});

test("hint: a process that is not the buffer's writer never makes it live; no listener means no sender", async () => {
  const name = uniqueName("h");
  const listener = HintListener.open(name, () => 1); // the buffer's writer is someone else
  assert.ok(listener);
  const sender = HintSender.connect(name);
  assert.ok(sender);
  sender.signal(); // harmless either way
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(listener.active, false);
  sender.close();
  listener.close();
  assert.equal(HintSender.connect(uniqueName("none")), undefined, "a reader that offers no hint (a foreign one)");
});

test("hint: between Plexus ends the reader waits on the hint, reads every frame, and learns of the writer's close", async () => {
  const name = uniqueName("h");
  const reader = await Reader.create(name, { payloadSize: 1 << 16, metadataSize: 0, timeout: 5000 });
  const writer = await Writer.connect(name, { timeout: 2000 });
  const hint = (reader as unknown as { hint?: HintListener }).hint;
  await eventually("the reader's hint is live", () => hint?.active === true);
  for (let seq = 1; seq <= 50; seq++) {
    const reading = reader.read();
    await new Promise((r) => setImmediate(r)); // the reader is asleep on the hint now
    await writer.write(pattern(seq, 10 + seq));
    const f = await reading;
    assert.equal(f.sequence, seq);
    assert.deepEqual(new Uint8Array(f.data), pattern(seq, 10 + seq));
    f.release();
  }
  const pending = reader.read();
  await writer.close();
  await assert.rejects(pending, (err: Error & { graceful?: boolean }) => err.name === "WriterDeadError" && err.graceful === true);
  await eventually("the writer's close ends the hint", () => hint?.active === false);
  await reader.close();
  assert.deepEqual(leftovers(name), []);
});
