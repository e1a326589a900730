/**
 * Queues over gRPC (`grpc://`, `grpcs://`): one bidirectional stream per client connection
 * carrying the queue's frames, with the semantics of TCP — both delivery modes, acks on the
 * wire, limits, typed errors, sessions across reconnection, keep-alives, TLS with certificates
 * — and the server's answer to gRPC peers that send what is not a queue frame. Reconnection
 * and keep-alives over gRPC are tested with TCP's in queue.test.ts, the kill -9 tests across
 * processes in queue-process.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { queue, type PlexusError, type QueueClient, type QueueServer } from "../src/index.js";
import { header, QFrame } from "../src/queue/wire.js";
import { testCerts } from "./helpers/tcp-certs.js";

const code = (c: string) => (e: unknown) => (e as PlexusError).code === c;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves with "pending" if `p` has not settled after `ms`. */
const state = (p: Promise<unknown>, ms = 50) => Promise.race([p.then(() => "resolved", () => "rejected"), sleep(ms).then(() => "pending")]);

async function closeAll(...q: (QueueServer | QueueClient)[]) {
  for (const x of q) await x.close();
}

/** A raw gRPC stream to the queue's method, for sending what a queue client never would. */
function rawStream(port: number): { call: grpc.ClientDuplexStream<Buffer, Buffer>; status: Promise<grpc.StatusObject>; close(): void } {
  const same = (b: Buffer): Buffer => b;
  const Ctor = grpc.makeGenericClientConstructor(
    { connect: { path: "/plexus.queue.v1.Queue/Connect", requestStream: true, responseStream: true, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same, originalName: "connect" } },
    "Queue",
  );
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client as unknown as { connect(): grpc.ClientDuplexStream<Buffer, Buffer> }).connect();
  call.on("error", () => {});
  call.on("data", () => {});
  const status = new Promise<grpc.StatusObject>((r) => call.on("status", r));
  return { call, status, close: () => client.close() };
}

for (const mode of ["fast", "reliable"] as const) {
  test(`grpc (${mode}): put/get both ways, msg.peer, reply, broadcast, many in flight, in order`, async () => {
    const server = await queue.server({ url: "grpc://127.0.0.1:0", mode });
    assert.match(server.url, /^grpc:\/\/127\.0\.0\.1:\d+$/);
    const a = await queue.client({ url: server.url, mode, slots: 8 });
    const b = await queue.client({ url: server.url, mode });
    const p = a.put({ n: 1, floats: new Float64Array([1.5, 2.5]) });
    const m = await server.get<{ n: number; floats: Float64Array }>({ timeout: 5000 });
    assert.equal(m.value.n, 1);
    assert.deepEqual([...m.value.floats], [1.5, 2.5]);
    assert.equal(m.peer, a.id);
    if (mode === "reliable") assert.equal(await state(p), "pending", "reliable: not acknowledged before release");
    m.release();
    await p;
    const reply = server.put("for a", a.id);
    const r = await a.get({ timeout: 5000 });
    assert.equal(r.value, "for a");
    r.release();
    await reply;
    const all = server.put("all");
    for (const c of [a, b]) {
      const x = await c.get({ timeout: 5000 });
      assert.equal(x.value, "all");
      x.release();
    }
    await all;
    const puts = Array.from({ length: 200 }, (_, i) => a.put(i));
    const got: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      const x = await server.get({ timeout: 5000 });
      got.push(x.value);
      x.release();
    }
    await Promise.all(puts);
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
    await closeAll(a, b, server);
  });
}

test("grpc: limits and typed errors — oversized messages, too many waiting puts, a full server, no server, the loopback rule, a port in use", async () => {
  const server = await queue.server({ url: "grpc://127.0.0.1:0", maxMessage: 1024, maxClients: 1 });
  const client = await queue.client({ url: server.url, maxPending: 1, slots: 1, mode: "reliable" });
  await assert.rejects(client.put(new Uint8Array(4096)), code("ERR_PLEXUS_FRAME_TOO_LARGE")); // the server's limit
  const held = [client.put(1), client.put(2)];
  await assert.rejects(client.put(3), code("ERR_PLEXUS_BACKPRESSURE"));
  for (let i = 1; i <= 2; i++) (await server.get({ timeout: 5000 })).release();
  await Promise.all(held);
  await assert.rejects(queue.client({ url: server.url }), code("ERR_PLEXUS_RESOURCE_EXHAUSTED"));
  await assert.rejects(queue.server({ url: server.url }), (e: unknown) => code("ERR_PLEXUS_SYSTEM")(e) && (e as { errnoName: string }).errnoName === "EADDRINUSE");
  await assert.rejects(queue.server({ url: "grpc://0.0.0.0:0" }), code("ERR_PLEXUS_ACCESS_DENIED"));
  await assert.rejects(queue.client({ url: "grpc://192.0.2.1:51966" }), code("ERR_PLEXUS_ACCESS_DENIED"));
  await assert.rejects(queue.client({ url: "grpc://127.0.0.1" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  await assert.rejects(queue.server({ url: "grpcs://127.0.0.1:0" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  const port = server.port;
  await closeAll(client, server);
  await assert.rejects(queue.client({ url: `grpc://127.0.0.1:${port}`, connectTimeout: 2000 }), code("ERR_PLEXUS_PEER_DEAD"));
});

test("grpc: a stream that sends what is not a queue frame is dropped with a typed error (reported to onPeerError); the server serves on", async () => {
  const errors: PlexusError[] = [];
  const server = await queue.server({ url: "grpc://127.0.0.1:0", maxMessage: 1024, onPeerError: (e) => errors.push(e) });
  const bad: [Buffer, RegExp][] = [
    [Buffer.from("not a frame"), /11 bytes is shorter than a frame header/],
    [Buffer.concat([header(10, QFrame.Data, 0, 1), Buffer.alloc(3)]), /frame says 10 bytes, gRPC message carries 3/],
    [header(0, QFrame.Data, 0, 1), /expected HELLO, got frame type 3/], // DATA before any HELLO
    [header(0, 0x4f as QFrame, 0, 0), /unknown queue frame type 79/],
  ];
  for (const [message, reason] of bad) {
    const raw = rawStream(server.port);
    raw.call.write(message);
    const status = await raw.status;
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT, `${message.length} bytes: ${status.details}`);
    assert.match(status.details, reason);
    raw.close();
  }
  // Larger than the server accepts: gRPC refuses it from its length prefix, before reading it.
  const big = rawStream(server.port);
  big.call.write(Buffer.alloc(1 << 20));
  assert.equal((await big.status).code, grpc.status.RESOURCE_EXHAUSTED);
  big.close();
  await sleep(50);
  assert.deepEqual(
    errors.slice(0, 4).map((e) => [e.code, bad.some(([, r]) => r.test(e.message))]),
    Array.from({ length: 4 }, () => ["ERR_PLEXUS_PROTOCOL", true]),
  );
  const client = await queue.client({ url: server.url });
  await client.put("still serving");
  assert.equal((await server.get({ timeout: 5000 })).value, "still serving");
  await closeAll(client, server);
});

test("grpc: a gRPC server that is not a Plexus queue server is a ProtocolError naming it", async () => {
  const other = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => other.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  await assert.rejects(queue.client({ url: `grpc://127.0.0.1:${port}`, connectTimeout: 2000 }), (e: unknown) => {
    assert.equal((e as PlexusError).code, "ERR_PLEXUS_PROTOCOL", String(e));
    assert.match((e as Error).message, /is not a Plexus queue server/);
    return true;
  });
  other.forceShutdown();
});

test("grpcs: certificates verified against the CA; a wrong CA is AccessDeniedError; mutual TLS; the server closing ends its clients' queues", async () => {
  const c = testCerts();
  const server = await queue.server({ url: "grpcs://127.0.0.1:0", tls: { key: c.serverKey, cert: c.serverCert, ca: c.ca, requestCert: true } });
  assert.match(server.url, /^grpcs:\/\/127\.0\.0\.1:\d+$/);
  const client = await queue.client({ url: server.url, tls: { ca: c.ca, key: c.clientKey, cert: c.clientCert } });
  await client.put("secret");
  assert.equal((await server.get({ timeout: 5000 })).value, "secret");
  const byName = await queue.client({ url: server.url.replace("127.0.0.1", "localhost"), tls: { ca: c.ca, key: c.clientKey, cert: c.clientCert } });
  await byName.put("by name");
  assert.equal((await server.get({ timeout: 5000 })).value, "by name");
  await assert.rejects(queue.client({ url: server.url, tls: { ca: c.otherCa, key: c.clientKey, cert: c.clientCert }, connectTimeout: 2000 }), code("ERR_PLEXUS_ACCESS_DENIED"));
  await assert.rejects(queue.client({ url: server.url, tls: { ca: c.ca }, connectTimeout: 2000 }), (e: unknown) => {
    const k = (e as PlexusError).code;
    return k === "ERR_PLEXUS_ACCESS_DENIED" || k === "ERR_PLEXUS_PEER_DEAD"; // no client certificate: the server hangs up in the TLS handshake
  });
  await server.close();
  await assert.rejects(client.get({ timeout: 5000 }), code("ERR_PLEXUS_PEER_DEAD")); // the BYE ended the session
  await closeAll(client, byName);
});
