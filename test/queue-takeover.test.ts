/**
 * Taking over a dead client's identity (`queue.client({ identity })` in a new client object or
 * process): the new client starts a new session under that identity. Nothing the new client
 * puts is taken for a duplicate of the old one's messages, what the server had in flight to the
 * old client rejects with PeerDeadError at once (no wedge, no timeout), a displaced client that
 * is still alive learns it, and over repeated takeovers every put that resolved was received by
 * the other side's application — in one process over TCP, and across real processes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeHello } from "../src/net/handshake.js";
import { encodeBody, QUEUE_SPEC } from "../src/queue/wire.js";
import { randomBytes } from "node:crypto";
import { queue, PlexusError, type QueueClient, type QueueServer } from "../src/index.js";
import { startProxy, type Proxy } from "./helpers/proxy.js";
import { fixture, type Child } from "./helpers/child.js";
import { raw } from "./helpers/raw.js";

const code = (c: string) => (e: unknown) => e instanceof PlexusError && e.code === c;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A client that reaches the server through a relay: `crash()` cuts its connection and closes
 * the relay, so the client object can never get back in — to the server it is a client whose
 * process died (no BYE, connection gone, never reconnects).
 */
async function crashable(server: QueueServer, opts: Partial<Parameters<typeof queue.client>[0]> = {}): Promise<{ client: QueueClient; proxy: Proxy; crash(): Promise<void> }> {
  const proxy = await startProxy(server.port);
  const client = await queue.client({ url: `tcp://127.0.0.1:${proxy.port}`, reconnectWindow: 300, ...opts });
  return { client, proxy, crash: () => proxy.close() };
}

/** Takes every message of `end` and releases it, recording its value (before the release). */
function takeAll(end: QueueServer | QueueClient, into: unknown[]): Promise<void> {
  return (async () => {
    for (;;) {
      let m;
      try {
        m = await end.get();
      } catch {
        return;
      }
      into.push(m.value);
      m.release();
    }
  })();
}

test("takeover (A): after a client crashed, a new client with its identity puts and the server's application receives every put that resolved", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable" });
  const x = await crashable(server, { mode: "reliable", slots: 4 });
  const got: unknown[] = [];
  const taking = takeAll(server, got);
  await Promise.all(Array.from({ length: 20 }, (_, i) => x.client.put({ from: "x", i })));
  assert.equal(got.length, 20);
  await x.crash();
  const y = await queue.client({ url: server.url, identity: x.client.id, mode: "reliable", slots: 4 });
  assert.equal(y.id, x.client.id);
  await Promise.all(Array.from({ length: 10 }, (_, i) => y.put({ from: "y", i }, { timeout: 5000 })));
  // reliable: each resolved put was released by the server's application, so it is recorded
  assert.deepEqual(
    got.slice(20),
    Array.from({ length: 10 }, (_, i) => ({ from: "y", i })),
    "every put of the new client that resolved reached the server's application, once",
  );
  assert.equal(got.length, 30);
  assert.deepEqual(server.peers, [y.id]);
  await y.close();
  await x.client.close();
  await server.close();
  await taking;
});

test("takeover (B): the server's put in flight to the crashed client rejects PeerDeadError; the new client's session works both ways at once", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", reconnectWindow: 30000 });
  const x = await crashable(server, { mode: "reliable" });
  const got: unknown[] = [];
  const taking = takeAll(server, got);
  await x.client.put("from x");
  const first = server.put("first for x", x.client.id);
  (await x.client.get({ timeout: 5000 })).release();
  await first;
  const toX = assert.rejects(server.put("held by x", { peers: [x.client.id], timeout: 20000 }), code("ERR_PLEXUS_PEER_DEAD"));
  const held = await x.client.get({ timeout: 5000 }); // taken, never released: in flight at the crash
  assert.equal(held.value, "held by x");
  await x.crash();
  const y = await queue.client({ url: server.url, identity: x.client.id, mode: "reliable" });
  // the old session ended with the takeover: not a timeout, and long before the 30 s window
  await toX;
  await Promise.all(Array.from({ length: 10 }, (_, i) => y.put(i, { timeout: 5000 })));
  assert.deepEqual(got, ["from x", ...Array.from({ length: 10 }, (_, i) => i)]);
  const forY = server.put("for y", { peers: [y.id], timeout: 5000 }); // reliable: resolves on y's release
  const m = await y.get({ timeout: 5000 });
  assert.equal(m.value, "for y", "what was in flight to the old client is not handed to the new one");
  m.release();
  await forY;
  assert.equal(y.queued, 0);
  await y.close();
  await x.client.close();
  await server.close();
  await taking;
});

test("takeover of a live client: the displaced client ends with PeerDeadError and does not take the identity back", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const x = await queue.client({ url: server.url, reconnectWindow: 2000 });
  await x.put("x1");
  assert.equal((await server.get({ timeout: 5000 })).value, "x1");
  const y = await queue.client({ url: server.url, identity: x.id });
  await assert.rejects(x.get({ timeout: 5000 }), code("ERR_PLEXUS_PEER_DEAD"));
  await assert.rejects(x.put("x2"), code("ERR_PLEXUS_PEER_DEAD"));
  await y.put("y1");
  assert.equal((await server.get({ timeout: 5000 })).value, "y1");
  await server.put("to y", y.id);
  assert.equal((await y.get({ timeout: 5000 })).value, "to y");
  assert.deepEqual(server.peers, [y.id]);
  assert.equal(server.queued, 0, "nothing of x2 arrived");
  await x.close();
  await y.close();
  await server.close();
});

test("takeover loop: 6 crashes and takeovers with puts in flight both ways; every resolved put was received once, every other rejected PeerDeadError", async (t) => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", slots: 4, reconnectWindow: 500 });
  const identity = randomBytes(16).toString("hex");
  const serverGot: unknown[] = [];
  const taking = takeAll(server, serverGot);
  const clientGot: unknown[] = [];
  /** Each put's key and outcome (handled at once: a rejection is an outcome, not an unhandled error). */
  const puts: [string, Promise<PromiseSettledResult<void>>][] = [];
  const settle = (p: Promise<void>) =>
    p.then(
      (): PromiseSettledResult<void> => ({ status: "fulfilled", value: undefined }),
      (reason: unknown): PromiseSettledResult<void> => ({ status: "rejected", reason }),
    );
  const clients: QueueClient[] = [];
  const takers: Promise<void>[] = [];
  const N = 40;
  for (let round = 0; round < 6; round++) {
    const x = await crashable(server, { identity, mode: "reliable", slots: 4, timeout: 20000 });
    clients.push(x.client);
    takers.push(takeAll(x.client, clientGot));
    for (let i = 0; i < N; i++) {
      const c = `c${round}.${i}`;
      const s = `s${round}.${i}`;
      puts.push([c, settle(x.client.put(c))]);
      puts.push([s, settle(server.put(s, { peers: [identity], timeout: 20000 }))]);
    }
    // crash once the server's application took some of this round's messages (or none, in round 0)
    const want = round === 0 ? 0 : 1 + Math.floor(Math.random() * (N - 5));
    const deadline = Date.now() + 10000;
    const taken = () => serverGot.filter((v) => typeof v === "string" && v.startsWith(`c${round}.`)).length;
    while (taken() < want && Date.now() < deadline) await sleep(2);
    assert.ok(taken() >= want, `round ${round}: only ${taken()} of the new client's puts reached the server`);
    await x.crash();
  }
  const outcomes = await Promise.all(puts.map(([, p]) => p)); // resolves only if none hangs
  const count = { c: { resolved: 0, rejected: 0 }, s: { resolved: 0, rejected: 0 } };
  outcomes.forEach((o, k) => {
    const key = puts[k][0];
    const received = (key.startsWith("c") ? serverGot : clientGot).filter((v) => v === key).length;
    count[key.startsWith("c") ? "c" : "s"][o.status === "fulfilled" ? "resolved" : "rejected"]++;
    if (o.status === "fulfilled") {
      assert.equal(received, 1, `${key} resolved but the receiving application got it ${received} times`);
    } else {
      assert.ok(o.reason instanceof PlexusError, `${key} rejected with ${String(o.reason)}`);
      assert.equal(o.reason.code, "ERR_PLEXUS_PEER_DEAD", `${key}: ${o.reason.message}`);
      assert.ok(received <= 1, `${key} was received ${received} times`);
    }
  });
  t.diagnostic(`client puts ${JSON.stringify(count.c)}, server puts ${JSON.stringify(count.s)}`);
  // both directions had puts resolve and puts cut off by a crash
  for (const side of [count.c, count.s]) assert.ok(side.resolved > 0 && side.rejected > 0, JSON.stringify(count));
  assert.equal(new Set(serverGot).size, serverGot.length, "the server's application got no message twice");
  for (const c of clients) await c.close();
  await server.close();
  await Promise.all([taking, ...takers]);
});


/** A queue HELLO (version 3) for `identity` with session token `token`. */
function hello(identity: Buffer, token: Buffer): Buffer {
  return encodeHello(QUEUE_SPEC, 1000, encodeBody({ resumed: false, slots: 1, maxMessage: 1 << 20, identity, session: token }));
}

/** Bytes of a WELCOME (header, preamble, the queue's body), and where its body starts. */
const WELCOME_BYTES = 16 + 16 + 32;
const BODY = 32;

async function until(cond: () => boolean, what: string): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > 5000) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test("wire: a HELLO with another session token under a known identity starts a new session (BYE with the taken-over flag to the old connection); the superseded token is refused", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const id = randomBytes(16);
  const [ta, tb] = [randomBytes(8), randomBytes(8)];
  const a = raw(server.port);
  a.sock.write(hello(id, ta));
  await until(() => a.bytes().length >= WELCOME_BYTES, "WELCOME to a");
  let w = a.bytes().subarray(0, WELCOME_BYTES);
  assert.equal(w[4], 0x81, "WELCOME");
  assert.equal(w.readUInt32LE(8), 0, "status ok");
  assert.equal(w[BODY], 0, "a new session");
  assert.ok(w.subarray(BODY + 24, BODY + 32).equals(ta), "the WELCOME echoes the session token");

  const b = raw(server.port);
  b.sock.write(hello(id, tb));
  await until(() => b.bytes().length >= WELCOME_BYTES, "WELCOME to b");
  w = b.bytes().subarray(0, WELCOME_BYTES);
  assert.equal(w.readUInt32LE(8), 0, "status ok");
  assert.equal(w[BODY], 0, "not resumed: a new session under the same identity");
  assert.ok(w.subarray(BODY + 24, BODY + 32).equals(tb));
  await a.closed; // the server hung up on the old connection, after a BYE
  const bye = a.bytes().subarray(WELCOME_BYTES, WELCOME_BYTES + 16);
  assert.equal(bye[4], 7, "BYE");
  assert.equal(bye[5], 2, "flag: taken over");

  const again = raw(server.port);
  again.sock.write(hello(id, ta));
  await again.closed;
  w = again.bytes().subarray(0, WELCOME_BYTES);
  assert.equal(w.readUInt32LE(8), 16, "status: superseded");
  assert.deepEqual(server.peers, [id.toString("hex")]);

  // the same token again resumes (a client reconnecting)
  b.sock.destroy();
  const c = raw(server.port);
  c.sock.write(hello(id, tb));
  await until(() => c.bytes().length >= WELCOME_BYTES, "WELCOME to c");
  assert.equal(c.bytes()[BODY], 1, "resumed");
  c.sock.destroy();
  await server.close();
});

/** Reads lines of `c` until `pred` holds for `n` of them; returns every line read. */
async function linesUntil(c: Child, pred: (l: string) => boolean, n: number): Promise<string[]> {
  const lines: string[] = [];
  while (lines.filter(pred).length < n) lines.push(await c.line(10000));
  return lines;
}

test("across processes: a client process killed with SIGKILL; a new process with its identity puts at once and every resolved put reached the server", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", reconnectWindow: 10000 });
  const got: unknown[] = [];
  const taking = takeAll(server, got);
  const identity = randomBytes(16).toString("hex");
  const x = fixture("queue-peer", { role: "client", url: server.url, identity, mode: "reliable", puts: 20, base: 0 });
  await linesUntil(x, (l) => l.startsWith("put "), 20);
  x.proc.kill("SIGKILL");
  await x.exited;
  const y = fixture("queue-peer", { role: "client", url: server.url, identity, mode: "reliable", puts: 10, base: 100 });
  const lines = await linesUntil(y, (l) => l.startsWith("put ") || l.startsWith("failed "), 10);
  assert.deepEqual(lines.filter((l) => l.startsWith("failed ")), []);
  const ids = got.map((v) => (v as { id: number }).id);
  assert.deepEqual(ids.slice(0, 20).sort((p, q) => p - q), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(ids.slice(20).sort((p, q) => p - q), Array.from({ length: 10 }, (_, i) => 100 + i), "every resolved put of the new process was received");
  y.proc.kill("SIGKILL");
  await y.exited;
  await server.close();
  await taking;
});

test("across processes: the server's put in flight to a killed client process rejects PeerDeadError when a new process takes its identity; the new one is served at once", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", reconnectWindow: 30000 });
  const got: unknown[] = [];
  const taking = takeAll(server, got);
  const identity = randomBytes(16).toString("hex");
  const x = fixture("queue-peer", { role: "client", url: server.url, identity, holdAfter: 2 });
  assert.equal(await x.line(), `ready ${identity}`);
  await server.put({ id: 0 }, identity);
  const toX = assert.rejects(server.put({ id: 1 }, { peers: [identity], timeout: 25000 }), code("ERR_PLEXUS_PEER_DEAD"));
  assert.deepEqual(await linesUntil(x, (l) => l.startsWith("got "), 2), ["got 0", "got 1"]); // the second is held
  x.proc.kill("SIGKILL");
  await x.exited;
  const y = fixture("queue-peer", { role: "client", url: server.url, identity, mode: "reliable", puts: 10, base: 100 });
  await toX;
  const lines = await linesUntil(y, (l) => l.startsWith("put ") || l.startsWith("failed "), 10);
  assert.deepEqual(lines.filter((l) => l.startsWith("failed ")), []);
  assert.deepEqual(lines.filter((l) => l.startsWith("got ")), [], "what was in flight to the killed process is not handed to the new one");
  assert.deepEqual(
    got.map((v) => (v as { id: number }).id).sort((p, q) => p - q),
    Array.from({ length: 10 }, (_, i) => 100 + i),
  );
  await server.put({ id: 7 }, { peers: [identity], timeout: 5000 });
  assert.deepEqual((await linesUntil(y, (l) => l.startsWith("got "), 1)).filter((l) => l.startsWith("got ")), ["got 7"]);
  y.proc.kill("SIGKILL");
  await y.exited;
  await server.close();
  await taking;
});
