/**
 * Acknowledged queues over TCP and TLS in one process: acks on the wire in both delivery
 * modes, slots, limits, typed errors, close, reconnection with the same identity, keep-alives
 * (these two over gRPC as well), idle collection, TLS and the loopback rule.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { queue, type PlexusError, type QueueClient, type QueueServer } from "../src/index.js";
import { startProxy } from "./helpers/proxy.js";
import { testCerts } from "./helpers/tcp-certs.js";
import { Deadlines, PutOp } from "../src/queue/put.js";

const code = (c: string) => (e: unknown) => (e as PlexusError).code === c;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves with "pending" if `p` has not settled after `ms`. */
const state = (p: Promise<unknown>, ms = 50) =>
  Promise.race([p.then(() => "resolved", () => "rejected"), sleep(ms).then(() => "pending")]);

async function pair(sopts: Partial<Parameters<typeof queue.server>[0]> = {}, copts: Partial<Parameters<typeof queue.client>[0]> = {}) {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", ...sopts });
  const client = await queue.client({ url: server.url, ...copts });
  return { server, client };
}

async function closeAll(...q: (QueueServer | QueueClient)[]) {
  for (const x of q) await x.close();
}

test("put/get both ways: values round-trip, msg.peer names the client, a reply reaches it", async () => {
  const { server, client } = await pair();
  await client.put({ n: 1, floats: new Float64Array([1.5, 2.5]), text: "hi" });
  const m = await server.get<{ n: number; floats: Float64Array; text: string }>();
  assert.equal(m.value.n, 1);
  assert.deepEqual([...m.value.floats], [1.5, 2.5]);
  assert.equal(m.peer, client.id);
  assert.deepEqual(server.peers, [client.id]);
  await server.put("reply", m.peer);
  const r = await client.get();
  assert.equal(r.value, "reply");
  assert.equal(r.peer, client.server);
  await closeAll(client, server);
});

test("server put with no peer broadcasts to every client; unknown peer and no clients reject PeerDeadError", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0" });
  await assert.rejects(server.put("x"), code("ERR_PLEXUS_PEER_DEAD"));
  const a = await queue.client({ url: server.url });
  const b = await queue.client({ url: server.url });
  await server.put(new Uint8Array([7, 8, 9]));
  assert.deepEqual([...((await a.get()).value as Uint8Array)], [7, 8, 9]);
  assert.deepEqual([...((await b.get()).value as Uint8Array)], [7, 8, 9]);
  await server.put("only b", { peers: [b.id] });
  assert.equal((await b.get()).value, "only b");
  await assert.rejects(a.get({ timeout: 50 }), code("ERR_PLEXUS_TIMEOUT"));
  await server.put("b once", b.id, b.id); // named twice: delivered once
  assert.equal((await b.get()).value, "b once");
  await assert.rejects(b.get({ timeout: 50 }), code("ERR_PLEXUS_TIMEOUT"));
  await assert.rejects(server.put("x", "00112233445566778899aabbccddeeff"), code("ERR_PLEXUS_PEER_DEAD"));
  await closeAll(a, b, server);
});

test("fast: put resolves once the server queued the message, before any get", async () => {
  const { server, client } = await pair();
  await client.put(1);
  await client.put(2);
  assert.equal(server.queued, 2);
  assert.equal((await server.get()).value, 1);
  await closeAll(client, server);
});

test("reliable: put resolves only when the server's application released the message; one slot in flight", async () => {
  const { server, client } = await pair({}, { mode: "reliable" });
  const p1 = client.put("a");
  const p2 = client.put("b");
  const m = await server.get();
  assert.equal(m.value, "a");
  assert.equal(await state(p1), "pending");
  await sleep(30);
  assert.equal(server.queued, 0, "the second message must not be sent while the first holds the only slot");
  m.release();
  await p1;
  const m2 = await server.get();
  assert.equal(m2.value, "b");
  assert.equal(await state(p2), "pending");
  m2.release();
  await p2;
  await closeAll(client, server);
});

test("fast slots bound what is in flight; maxQueue parks the rest unacknowledged until get makes room", async () => {
  const { server, client } = await pair({ maxQueue: 2 }, { slots: 4 });
  const puts = Array.from({ length: 6 }, (_, i) => client.put(i));
  await sleep(100);
  const settled = await Promise.all(puts.map((p) => state(p, 1)));
  assert.deepEqual(settled, ["resolved", "resolved", "pending", "pending", "pending", "pending"]);
  assert.equal(server.queued, 2);
  const got: unknown[] = [];
  for (let i = 0; i < 6; i++) got.push((await server.get()).value);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
  await Promise.all(puts);
  await closeAll(client, server);
});

test("limits: oversized messages and too many waiting puts are typed errors; nothing is sent", async () => {
  const { server, client } = await pair({ maxMessage: 1024 }, { maxPending: 2, slots: 1, mode: "reliable" });
  await assert.rejects(client.put(new Uint8Array(4096)), code("ERR_PLEXUS_FRAME_TOO_LARGE")); // the server's limit
  await assert.rejects(client.put(new Uint8Array(100 << 20)), code("ERR_PLEXUS_FRAME_TOO_LARGE")); // its own (64 MiB)
  const held = [client.put(1), client.put(2), client.put(3)];
  await assert.rejects(client.put(4), code("ERR_PLEXUS_BACKPRESSURE"));
  await assert.rejects(client.put(() => 1), code("ERR_PLEXUS_ENCODE"));
  for (let i = 1; i <= 3; i++) {
    const m = await server.get();
    assert.equal(m.value, i);
    m.release();
  }
  await Promise.all(held);
  await closeAll(client, server);
});

test("get and put honour timeout and signal", async () => {
  const { server, client } = await pair({}, { mode: "reliable" });
  await assert.rejects(server.get({ timeout: 20 }), code("ERR_PLEXUS_TIMEOUT"));
  const ac = new AbortController();
  const g = server.get({ signal: ac.signal });
  ac.abort(new Error("stop"));
  await assert.rejects(g, (e: PlexusError) => e.code === "ERR_PLEXUS_ABORTED" && (e.cause as Error).message === "stop");
  await assert.rejects(server.get({ signal: AbortSignal.abort() }), code("ERR_PLEXUS_ABORTED"));
  await assert.rejects(client.put(1, { timeout: 30 }), code("ERR_PLEXUS_TIMEOUT")); // never released
  await assert.rejects(client.put(1, { signal: AbortSignal.abort() }), code("ERR_PLEXUS_ABORTED"));
  await assert.rejects(server.get({ timeout: -1 }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  (await server.get()).release();
  await closeAll(client, server);
});

test("the endpoint's default put timeout rejects every put not acknowledged in time, in order", async () => {
  const { server, client } = await pair({}, { mode: "reliable", timeout: 60, slots: 2 });
  const t0 = Date.now();
  const outcomes = await Promise.allSettled([client.put(1), client.put(2), client.put(3)]);
  assert.ok(Date.now() - t0 >= 55);
  for (const o of outcomes) assert.equal(o.status === "rejected" && (o.reason as PlexusError).code, "ERR_PLEXUS_TIMEOUT");
  (await server.get()).release();
  await closeAll(client, server);
});

test("async iteration yields messages in order and releases each (reliable puts resolve)", async () => {
  const { server, client } = await pair({}, { mode: "reliable" });
  const puts = [1, 2, 3].map((v) => client.put(v));
  const seen: unknown[] = [];
  for await (const m of server) {
    seen.push(m.value);
    if (seen.length === 3) break; // leaving the loop releases the last one and closes the server
  }
  assert.deepEqual(seen, [1, 2, 3]);
  await Promise.all(puts);
  await assert.rejects(server.get(), code("ERR_PLEXUS_CLOSED"));
  await client.close();
});

test("close() flushes pending puts, then puts reject ClosedError; a closing server ends its clients' queues", async () => {
  const { server, client } = await pair({ maxQueue: 1 });
  const puts = [client.put(1), client.put(2), client.put(3)];
  setTimeout(() => void (async () => {
    for (let i = 0; i < 3; i++) await server.get();
  })(), 50);
  await client.close();
  await Promise.all(puts); // close waited for every ack
  await assert.rejects(client.put(4), code("ERR_PLEXUS_CLOSED"));
  await sleep(20);
  assert.deepEqual(server.peers, [], "BYE ended the client's session");

  const c2 = await queue.client({ url: server.url });
  await server.put("last", c2.id);
  await server.close();
  assert.equal((await c2.get()).value, "last", "what arrived before the server left is still delivered");
  await assert.rejects(c2.get(), code("ERR_PLEXUS_PEER_DEAD"));
  await assert.rejects(c2.put(1), code("ERR_PLEXUS_PEER_DEAD"));
  await c2.close();
});

test("a client that leaves makes the server's pending put to it reject PeerDeadError", async () => {
  const { server, client } = await pair({ mode: "reliable" });
  const p = assert.rejects(server.put("never released", client.id), code("ERR_PLEXUS_PEER_DEAD"));
  await client.get(); // taken, not released
  await client.close();
  await p;
  await server.close();
});

for (const scheme of ["tcp", "grpc"]) {
  test(`reconnection (${scheme}) with the same identity keeps the server-side session: in-flight puts are resent, nothing doubles`, async () => {
    const server = await queue.server({ url: `${scheme}://127.0.0.1:0`, mode: "reliable" });
    const proxy = await startProxy(server.port);
    const client = await queue.client({ url: `${scheme}://127.0.0.1:${proxy.port}`, mode: "reliable", slots: 4 });
    const events: string[] = [];
    client.on("disconnect", () => events.push("disconnect"));
    client.on("reconnect", ({ resumed }) => events.push(`reconnect ${resumed}`));
    const toClient = server.put("queued for the client", client.id);
    const m0 = await client.get();
    const fromClient = [1, 2, 3].map((v) => client.put(v));
    const m1 = await server.get();
    proxy.cut(); // the connection dies with acks and data in flight
    m0.release(); // the ack is lost with the connection: the server resends, the client acks the duplicate
    m1.release();
    await toClient;
    const rest: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const m = await server.get();
      rest.push(m.value);
      m.release();
    }
    await Promise.all(fromClient);
    assert.deepEqual(rest, [2, 3]);
    assert.equal(server.queued, 0, "no duplicate reached the queue");
    assert.ok(proxy.accepted >= 2, "the client reconnected");
    assert.deepEqual(events, ["disconnect", "reconnect true"]);
    assert.deepEqual(server.peers, [client.id]);
    // another client object with the same identity takes it over: a new session, the old client ends
    const again = await queue.client({ url: `${scheme}://127.0.0.1:${proxy.port}`, identity: client.id });
    assert.deepEqual(server.peers, [client.id]);
    await assert.rejects(client.get(), code("ERR_PLEXUS_PEER_DEAD"));
    await closeAll(again, client, server);
    await proxy.close();
  });

  test(`keep-alives (${scheme}) detect a silent peer; a session that does not come back is collected and its puts reject`, async () => {
    const server = await queue.server({ url: `${scheme}://127.0.0.1:0`, heartbeat: 20, peerTimeout: 150, reconnectWindow: 150, mode: "reliable" });
    const proxy = await startProxy(server.port);
    const client = await queue.client({ url: `${scheme}://127.0.0.1:${proxy.port}`, heartbeat: 20, peerTimeout: 150, reconnectWindow: 150 });
    const p = assert.rejects(server.put("x", client.id), code("ERR_PLEXUS_PEER_DEAD"));
    await client.get(); // not released: the put stays pending
    proxy.frozen = true;
    await p;
    await proxy.close();
    assert.deepEqual(server.peers, []);
    await assert.rejects(client.put(1), code("ERR_PLEXUS_PEER_DEAD"));
    await assert.rejects(client.get(), code("ERR_PLEXUS_PEER_DEAD"));
    await closeAll(client, server);
  });
}

test("idle sessions are collected; the client reconnects on its next put", async () => {
  const { server, client } = await pair({ idleTimeout: 60, heartbeat: 20 }, { heartbeat: 20 });
  await client.put(1);
  await server.get();
  const t = Date.now();
  while (server.peers.length > 0 && Date.now() - t < 3000) await sleep(10);
  assert.deepEqual(server.peers, []);
  await client.put(2);
  assert.equal((await server.get()).value, 2);
  assert.deepEqual(server.peers, [client.id]);
  await closeAll(client, server);
});

test("plain TCP only on loopback unless allowInsecure; bad URLs and options are typed errors", async () => {
  await assert.rejects(queue.server({ url: "tcp://0.0.0.0:0" }), code("ERR_PLEXUS_ACCESS_DENIED"));
  await assert.rejects(queue.client({ url: "tcp://192.0.2.1:51966" }), code("ERR_PLEXUS_ACCESS_DENIED"));
  const open = await queue.server({ url: "tcp://0.0.0.0:0", allowInsecure: true });
  await open.close();
  await assert.rejects(queue.server({ url: "http://127.0.0.1:1" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  await assert.rejects(queue.client({ url: "tcp://127.0.0.1" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  await assert.rejects(queue.server({ url: "tcp://127.0.0.1:0", slots: 0 }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  await assert.rejects(queue.server({ url: "tls://127.0.0.1:0" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  await assert.rejects(queue.client({ url: "tcp://127.0.0.1:1", identity: "xyz" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  const s = await queue.server({ url: "tcp://127.0.0.1:0" });
  const port = s.port;
  await s.close();
  await assert.rejects(queue.client({ url: `tcp://127.0.0.1:${port}` }), code("ERR_PLEXUS_PEER_DEAD"));
});

test("TLS: certificates verified against the CA; a wrong CA is AccessDeniedError; mutual TLS", async () => {
  const c = testCerts();
  const server = await queue.server({ url: "tls://127.0.0.1:0", tls: { key: c.serverKey, cert: c.serverCert, ca: c.ca, requestCert: true } });
  const client = await queue.client({ url: server.url, tls: { ca: c.ca, key: c.clientKey, cert: c.clientCert } });
  await client.put("secret");
  assert.equal((await server.get()).value, "secret");
  await assert.rejects(queue.client({ url: server.url, tls: { ca: c.otherCa, key: c.clientKey, cert: c.clientCert } }), code("ERR_PLEXUS_ACCESS_DENIED"));
  await closeAll(client, server);
});

test("a put racing the server's close is refused (NACK if it arrives after the queue ended, else the BYE): never acknowledged into a dead queue", async () => {
  const { server, client } = await pair({ linger: 2000 });
  await client.put(1);
  const closing = server.close(); // ends the queue at once (no puts of its own to flush), then says BYE
  const late = assert.rejects(client.put(2), code("ERR_PLEXUS_PEER_DEAD")); // NACKed, or refused by the BYE: never acknowledged
  await closing;
  await late;
  assert.equal((await server.get()).value, 1, "what was acknowledged before is still there");
  await assert.rejects(server.get(), code("ERR_PLEXUS_CLOSED"));
  await client.close();
});

test("a put encodes its value once, however many peers it goes to", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const clients = await Promise.all([1, 2, 3].map(() => queue.client({ url: server.url })));
  let reads = 0;
  const value = {
    get big() {
      reads++;
      return new Uint8Array(32 << 10); // above the small-message path: chunks shared by the peers
    },
    get small() {
      reads++;
      return "x";
    },
  };
  await server.put(value, clients[0].id);
  const once = reads;
  assert.ok(once > 0);
  reads = 0;
  await server.put(value); // broadcast to all three
  assert.equal(reads, once, "the value was walked again for another peer");
  for (const c of clients) {
    const m = await c.get({ timeout: 2000 });
    assert.equal((m.value as { small: string }).small, "x");
    assert.equal((m.value as { big: Uint8Array }).big.byteLength, 32 << 10);
  }
  const again = await clients[0].get({ timeout: 2000 });
  assert.equal((again.value as { small: string }).small, "x");
  await closeAll(...clients, server);
});

test("puts that settle before their default timeout are not retained until it passes (memory stays bounded)", () => {
  const deadlines = new Deadlines();
  for (let i = 0; i < 100_000; i++) new PutOp(1, 30_000, undefined, deadlines).done();
  assert.ok(deadlines.size < 4096, `${deadlines.size} settled puts still held`);
  const live = Array.from({ length: 3000 }, () => new PutOp(1, 30_000, undefined, deadlines));
  for (let i = 0; i < 100_000; i++) new PutOp(1, 30_000, undefined, deadlines).done();
  assert.ok(deadlines.size >= 3000 && deadlines.size < 3000 + 8192, `${deadlines.size} puts held for 3000 live ones`);
  for (const op of live) op.done();
  deadlines.stop();
});

test("maxPending: 0 means no put waits for a slot, not that every put is refused", async () => {
  const { server, client } = await pair({}, { maxPending: 0, slots: 1, mode: "reliable" });
  const first = client.put(1);
  await assert.rejects(client.put(2), code("ERR_PLEXUS_BACKPRESSURE")); // the only slot is taken
  const m = await server.get({ timeout: 2000 });
  assert.equal(m.value, 1);
  m.release();
  await first;
  const third = client.put(3); // the slot is free again
  const m3 = await server.get({ timeout: 2000 });
  assert.equal(m3.value, 3);
  m3.release();
  await third;
  await closeAll(client, server);
});

test("keep-alives: a peer that announced a slower heartbeat than this end's peerTimeout is not taken for dead", async () => {
  const errors: PlexusError[] = [];
  const { server, client } = await pair({ peerTimeout: 300, heartbeat: 100, onPeerError: (e) => errors.push(e) }, { heartbeat: 600 });
  let drops = 0;
  for (let i = 0; i < 15; i++) {
    await sleep(100);
    if (!client.connected) drops++;
  }
  assert.deepEqual(errors.map((e) => e.message), [], "the server dropped a live client");
  assert.equal(drops, 0);
  const p = client.put("still here");
  assert.equal((await server.get({ timeout: 2000 })).value, "still here");
  await p;
  await closeAll(client, server);
});
