/**
 * The bridge across real processes, through the `plexus` command: two graphs (`plexus serve`),
 * one with its bridge inside (`serve --nats`), one with a separate `plexus bridge`, publishers
 * and subscribers as `plexus pub` / `plexus echo` processes. Killing the bridge process with
 * SIGKILL: local traffic on both graphs goes on, the other graph sees it leave, and a new bridge
 * takes up where it stopped.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { natsServer, type NatsServer } from "./helpers/nats.js";
import { freePort, plexus, spawnPlexus, type Running } from "./helpers/cli.js";
import { queue } from "../src/index.js";

let nats: NatsServer;
const running: Running[] = [];
function run(args: string[]): Running {
  const r = spawnPlexus(args);
  running.push(r);
  return r;
}

/** Reads lines until one matches (rejects after `ms`). */
async function until(r: Running, re: RegExp, ms = 20_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const l = await r.line(Math.max(1, end - Date.now()));
    if (re.test(l)) return l;
  }
}

/** The sequence number of the next `plexus echo -v` line that comes (`<seq> <publisher> <value>`). */
async function nextSeq(r: Running, ms = 20_000): Promise<number> {
  return Number((await until(r, /^\d+ /, ms)).split(" ")[0]);
}

before(async () => {
  nats = await natsServer({ jetstream: true });
});
after(async () => {
  for (const r of running) r.proc.kill("SIGKILL");
  await Promise.all(running.map((r) => r.exited));
  await nats?.close();
});

test("bridge processes: topics across two graphs; a bridge killed -9 leaves both graphs' own traffic running and is seen to leave", async () => {
  const [pa, pb] = [await freePort(), await freePort()];
  const A = `127.0.0.1:${pa}`;
  const B = `127.0.0.1:${pb}`;
  const bridgeArgs = (name: string): string[] => ["--nats", nats.url, "--export", ">", "--import", ">", "--name", name, "--announce-interval", "200"];
  const serveA = run(["serve", "-a", A, ...bridgeArgs("graph-a")]);
  await until(serveA, /^GraphServer listening/); // printed once its bridge runs too
  const serveB = run(["serve", "-a", B]);
  await until(serveB, /^GraphServer listening/);
  let bridgeB = run(["bridge", "-a", B, ...bridgeArgs("graph-b")]);
  await until(bridgeB, /^bridge graph-b on NATS/);

  const echoA = run(["echo", "ticks", "-v", "-a", A]); // A's own subscriber
  const echoB = run(["echo", "ticks", "-v", "-a", B]); // across the bridge
  const localEcho = run(["echo", "local/b", "-v", "-a", B]); // B's own traffic
  run(["pub", "ticks", "1", "-n", "1000000", "-i", "10", "-a", A]);
  run(["pub", "local/b", "2", "-n", "1000000", "-i", "10", "-a", B]);
  await nextSeq(echoA);
  const crossed = await nextSeq(echoB);
  assert.ok(crossed > 0, "graph B receives graph A's publisher through NATS");
  await until(serveA, /^joined: graph-b/);

  bridgeB.proc.kill("SIGKILL");
  await bridgeB.exited;
  await until(serveA, /^left: graph-b/, 10_000);
  // Both graphs' own traffic goes on: new sequence numbers keep coming on each.
  const a1 = await nextSeq(echoA);
  const b1 = await nextSeq(localEcho);
  assert.ok((await nextSeq(echoA)) > a1);
  assert.ok((await nextSeq(localEcho)) > b1);

  // A new bridge for graph B: graph A's messages cross again.
  bridgeB = run(["bridge", "-a", B, ...bridgeArgs("graph-b")]);
  await until(bridgeB, /^bridge graph-b on NATS/);
  const seqBefore = crossed;
  let again = await nextSeq(echoB);
  while (again <= seqBefore) again = await nextSeq(echoB);
  assert.ok(again > seqBefore);
  await until(serveA, /^joined: graph-b/);
});

test("plexus bridge processes: a queue exported by one bridge and imported by the other (--export-queue, --import-queue)", async () => {
  await using app = await queue.server<{ n: number }>({ url: "tcp://127.0.0.1:0" });
  const [pa, pb, pq] = [await freePort(), await freePort(), await freePort()];
  const args = (name: string): string[] => ["--nats", nats.url, "--name", name, "--announce-interval", "200"];
  const serveA = run(["serve", "-a", `127.0.0.1:${pa}`, ...args("q-a"), "--export-queue", `work=tcp://127.0.0.1:${pq}`, "--queue-delivery", "reliable"]);
  await until(serveA, /^GraphServer listening/);
  const serveB = run(["serve", "-a", `127.0.0.1:${pb}`, ...args("q-b"), "--import-queue", `work=${app.url}`]);
  await until(serveB, /^GraphServer listening/);
  await using producer = await queue.client<{ n: number }>({ url: `tcp://127.0.0.1:${pq}` });
  const puts = [1, 2, 3].map((n) => producer.put({ n }, { timeout: 15_000 }));
  const got: number[] = [];
  for (let i = 0; i < 3; i++) {
    const m = await app.get({ timeout: 15_000 });
    got.push(m.value.n);
    m.release();
  }
  await Promise.all(puts);
  assert.deepEqual(got.sort(), [1, 2, 3]);
  const bad = await plexus(["bridge", "--nats", nats.url, "--export-queue", "nourl"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--export-queue takes name=url/);
});

test("plexus bridge: usage errors exit 2 before anything starts", async () => {
  const none = await plexus(["bridge", "--export", ">"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--nats <url> is required/);
  const nothing = await plexus(["bridge", "--nats", "nats://127.0.0.1:4222"]);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /nothing to bridge/);
  const bad = await plexus(["bridge", "--nats", "nats://127.0.0.1:4222", "--export", "a/>/b"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /">" may only be the last segment/);
});
