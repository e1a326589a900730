/**
 * `ReaderOptions.anticipate`: the period learner (deterministic arrival times) and a reader of a
 * paced stream whose frames are written by timers of the same process — a frame can only be
 * caught inside its window if polling leaves the event loop free for those timers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Anticipator } from "../src/util/anticipate.js";
import { AbortError, ClosedError, Reader, Writer } from "../src/zerobuffer/index.js";
import { InvalidArgumentError } from "../src/errors.js";
import { leftovers, pattern, uniqueName } from "./helpers/zb.js";

/** An anticipator fed arrivals at the given times (ms). */
function fed(times: number[]): Anticipator {
  const a = new Anticipator();
  for (const t of times) a.arrived(t);
  return a;
}

test("anticipator: no window until the stream is regular; then a short window around the next frame", () => {
  assert.equal(fed([1000]).window(), undefined);
  assert.equal(fed([1000, 1020]).window(), undefined, "one interval is not a period yet");
  const a = fed([1000, 1020, 1040, 1060]);
  assert.equal(a.periodMs, 20);
  const w = a.window();
  assert.ok(w !== undefined);
  const [start, end] = w;
  assert.ok(start < 1080 && end > 1080, `the window ${start}..${end} surrounds the next frame, due at 1080`);
  assert.ok(end - start <= 20 * 0.25 + 1e-9, "at most a quarter of the period");
  assert.ok(start >= 1060, "not before the previous frame");
});

test("anticipator: one late frame moves the next window by a share of its delay, not all of it", () => {
  const a = fed([1000, 1020, 1040, 1060, 1080, 1100, 1121.5]);
  const w = a.window();
  assert.ok(w !== undefined);
  const due = (w[0] + w[1]) / 2 + 0.25; // the window opens LEAD_MS (0.5) earlier than it is centred
  assert.ok(due > 1140 && due < 1141.5, `next frame expected near 1140 (on the grid), got ${due}`);
  assert.ok(w[0] < 1140 && w[1] > 1140, "the window still covers the grid time");
});

test("anticipator: an irregular interval restarts the learning; fast streams and spent windows get none", () => {
  const a = fed([1000, 1020, 1040, 1060, 1080]);
  assert.ok(a.window() !== undefined);
  a.arrived(1200); // a pause
  assert.equal(a.window(), undefined);
  assert.equal(a.periodMs, 0);
  a.arrived(1220);
  a.arrived(1240);
  assert.equal(a.window(), undefined, "the 120 ms interval was taken as the period: 20 ms is irregular again");
  a.arrived(1260);
  a.arrived(1280);
  assert.ok(a.window() !== undefined, "regular again");
  a.miss();
  assert.equal(a.window(), undefined, "a window that passed in vain is not polled again");
  assert.equal(a.missed, 1);
  a.arrived(1301);
  assert.ok(a.window() !== undefined, "the next frame gets its window");
  assert.equal(fed([1000, 1002, 1004, 1006, 1008, 1010]).window(), undefined, "a 2 ms stream keeps CPUs awake by itself");
});

test("anticipator: a fresh period is confirmed closely — a pause is not taken for the period", () => {
  // The first interval after a start is a 52.5 ms pause; the stream runs at 33.3 ms, which is
  // within 40% of the pause: only a close confirmation keeps the pause from becoming the period.
  const a = fed([1000, 1052.5, 1085.8, 1119.1, 1152.4]);
  assert.ok(Math.abs(a.periodMs - 33.3) < 0.5, `period ${a.periodMs}`);
  const w = a.window();
  assert.ok(w !== undefined && w[0] < 1185.7 && w[1] > 1185.7, "the window surrounds the next frame");
});

test("anticipator: a frame outside its window (the stream's phase moved) places the next window at the new phase", () => {
  const a = fed([1000, 1033.3, 1066.6, 1099.9]);
  assert.ok(a.window() !== undefined);
  a.miss(); // polled through the window of 1133.2 in vain: the frame comes 11.8 ms late
  a.arrived(1145);
  const w = a.window();
  assert.ok(w !== undefined && w[0] < 1178.3 && w[1] > 1178.3, `the next window ${w?.join("..")} surrounds 1178.3`);
  a.arrived(1178.3);
  const w2 = a.window();
  assert.ok(w2 !== undefined && w2[0] < 1211.6 && w2[1] > 1211.6, "and the one after");
});

test("anticipate must be a boolean", async () => {
  await assert.rejects(Reader.create(uniqueName("a"), { anticipate: "yes" as unknown as boolean }), InvalidArgumentError);
});

/** Writes `count` frames 20 ms apart from timers of this process; resolves when all are written. */
async function paced(writer: Writer, count: number, periodMs = 20): Promise<void> {
  const t0 = performance.now();
  for (let seq = 1; seq <= count; seq++) {
    const wait = t0 + seq * periodMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await writer.write(pattern(seq, 100 + seq));
  }
}

test("a paced stream: every frame arrives intact, and frames written by this process's timers are caught in their window", async () => {
  const name = uniqueName("a");
  const reader = await Reader.create(name, { payloadSize: 1 << 16, metadataSize: 0, anticipate: true, timeout: 5000 });
  const writer = await Writer.connect(name, { timeout: 2000 });
  const frames = 30;
  const writing = paced(writer, frames);
  for (let seq = 1; seq <= frames; seq++) {
    const f = reader.tryRead() ?? (await reader.read());
    assert.equal(f.sequence, seq);
    assert.equal(f.data.length, 100 + seq);
    assert.deepEqual(new Uint8Array(f.data), pattern(seq, 100 + seq), `frame ${seq} content`);
    f.release();
  }
  await writing;
  const a = reader.anticipation;
  assert.ok(a !== undefined);
  assert.ok(a.periodMs > 10 && a.periodMs < 40, `period learnt: ${a.periodMs} ms`);
  assert.ok(a.caught >= 1, `frames caught in their window: ${a.caught} (missed ${a.missed}); none means polling held the timers back`);
  const plain = await Reader.create(uniqueName("b"), { payloadSize: 4096 });
  assert.equal(plain.anticipation, undefined, "undefined without anticipate");
  await plain.close();
  await writer.close();
  await reader.close();
  assert.deepEqual(leftovers(name), []);
});

test("a read polling in its window ends with AbortError on abort and ClosedError on close", async () => {
  const name = uniqueName("a");
  const reader = await Reader.create(name, { payloadSize: 1 << 16, metadataSize: 0, anticipate: true, timeout: 5000 });
  const writer = await Writer.connect(name, { timeout: 2000 });
  // Frames every 20 ms until the reader has learnt the period (a loaded machine's timers are
  // late now and then, which restarts the learning: up to 60 frames).
  const t0 = performance.now();
  for (let seq = 1; seq <= 60 && !(seq > 6 && (reader.anticipation?.periodMs ?? 0) > 0); seq++) {
    const wait = t0 + seq * 20 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await writer.write(pattern(seq, 100 + seq));
    (reader.tryRead() ?? (await reader.read())).release();
  }
  // Learnt: the next frame is due about 20 ms after the last. None comes; abort inside the window.
  assert.ok((reader.anticipation?.periodMs ?? 0) > 0, "the period was learnt");
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("stop")), 20);
  await assert.rejects(reader.read({ signal: ac.signal }), AbortError);
  const pending = reader.read();
  setTimeout(() => void reader.close(), 19);
  await assert.rejects(pending, ClosedError);
  await writer.close();
  assert.deepEqual(leftovers(name), []);
});

test("anticipator: a frame taken without waiting keeps the period and moves the window on by whole periods", () => {
  const a = fed([1000, 1020, 1040, 1060]);
  a.taken(1085); // the frame due at 1080, taken 5 ms late (the reader was busy)
  assert.equal(a.periodMs, 20, "still paced");
  let w = a.window();
  assert.ok(w !== undefined && w[0] < 1100 && w[1] > 1100, `the next window surrounds 1100, got ${String(w)}`);
  a.taken(1130); // late by more than a period: the frame due at 1120 (1100's was skipped)
  w = a.window();
  assert.ok(w !== undefined && w[0] < 1140 && w[1] > 1140, `then 1140, got ${String(w)}`);
  assert.equal(a.periodMs, 20);
  // Before the stream is learnt, a frame taken at once is an arrival like any other.
  const b = new Anticipator();
  b.taken(1000);
  b.taken(1020);
  b.taken(1040);
  b.taken(1060);
  assert.equal(b.periodMs, 20);
});

test("anticipator: a learnt lead is capped by the period, a given one is not", () => {
  const given = new Anticipator({ leadMs: 0.5 });
  for (const t of [1000, 1003, 1006, 1009]) given.arrived(t);
  const wg = given.window();
  assert.ok(wg !== undefined);
  const learnt = new Anticipator({ leadMs: 0.5 });
  for (const t of [1000, 1003, 1006, 1009]) learnt.arrived(t);
  learnt.learnLead(5); // a timer that woke 5 ms late
  const wl = learnt.window();
  assert.ok(wl !== undefined, "a late timer does not close the windows");
  assert.ok(wl[0] > wg[0] - 0.5, `learnt lead capped: the window opens at ${wl[0]}, the given lead's at ${wg[0]}`);
  assert.equal(learnt.leadMs, 5);
});
