// A subscriber with no traffic costs no CPU: polling (adaptive spin) stops when messages stop.
// The subscriber is a real process linked over shared memory; its CPU time is read from
// /proc/<pid>/stat. The bound is generous (a tenth of a core): a reader that kept polling
// would use a whole one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, GraphServer } from "../src/index.js";
import { fixture } from "./helpers/child.js";

/** User + system CPU time of `pid` in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // after "pid (comm) "
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

type Msg = { seq: number; from: string; data: Float64Array };

/**
 * A subscriber process (options `sub`) receives `count` messages: `traffic` publishes the first
 * `count - 1`; after it, the subscriber's CPU time over 2 s of silence must stay under a tenth of
 * a core; then the last message must still wake it, and every message must have arrived in order.
 */
async function idleAfter(topic: string, count: number, sub: Record<string, unknown>, traffic: (publish: (seq: number) => Promise<void>) => Promise<void>): Promise<void> {
  const server = await GraphServer.start({ port: 0 });
  await using _server = server;
  const address = `127.0.0.1:${server.address.port}`;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Msg>(topic, { transport: "shm" });
  const child = fixture("pubsub-peer", { role: "sub", address, topic, count, transport: "shm", ...sub });
  assert.equal(await child.line(), "ready");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  const pid = child.proc.pid as number;
  const publish = (seq: number): Promise<void> => pub.publish({ seq, from: "p", data: new Float64Array(8).fill(seq) });
  await traffic(publish);
  await sleep(300);
  const before = cpuMs(pid);
  await sleep(2000);
  const used = cpuMs(pid) - before;
  assert.ok(used <= 200, `the idle subscriber used ${used} ms of CPU in 2 s`);
  // It wakes for the next message, and got every one in order.
  await publish(count);
  assert.deepEqual(JSON.parse(await child.line(10_000)), { count, errors: [], zeroCopy: true });
  await child.exited;
}

test("pubsub: after a burst that made it poll, an idle subscriber process uses (almost) no CPU", async () => {
  await idleAfter("idle/t", 20_001, {}, async (publish) => {
    // A burst: messages faster than a wake-up, so the subscriber's ring starts polling.
    for (let seq = 1; seq <= 20_000; seq++) {
      await publish(seq);
      if (seq % 256 === 0) await new Promise((r) => setImmediate(r));
    }
  });
});

test("pubsub: after a paced stream it anticipated, an idle subscriber process uses (almost) no CPU", async () => {
  await idleAfter("idle/paced", 301, { anticipate: true }, async (publish) => {
    // A paced stream, 4 ms apart (a blocking sleep: steadier than a timer), that the subscriber
    // learns and polls for around each message.
    const word = new Int32Array(new SharedArrayBuffer(4));
    const t0 = performance.now();
    for (let seq = 1; seq <= 300; seq++) {
      for (let left = t0 + seq * 4 - performance.now(); left > 0; left = t0 + seq * 4 - performance.now()) Atomics.wait(word, 0, 0, left);
      await publish(seq);
    }
  });
});
