import { test } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { once } from "node:events";
import { GraphClient } from "../src/graph/client.js";
import { GraphServer } from "../src/graph/server.js";
import { CONTROL_SPEC, encodeControl, MsgType, packBody } from "../src/graph/protocol.js";
import { encodeHello } from "../src/net/handshake.js";
import type { PublisherInfo } from "../src/graph/registry.js";

const ep = { host: "h", pid: 1, threadId: 0 };

test("graph: requests, notifications acknowledged before the change is confirmed, node death", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  const a = await GraphClient.connect({ address, embedded: false });
  const b = await GraphClient.connect({ address, embedded: false });
  const seen: string[][] = [];
  let applied = false;
  b.onNotify = async (_sub, publishers: PublisherInfo[]) => {
    await new Promise((r) => setTimeout(r, 30)); // a slow subscriber
    seen.push(publishers.map((p) => p.topic));
    applied = true;
  };
  const { subscriber, publishers } = await b.request<{ subscriber: string; publishers: PublisherInfo[] }>("subscriber.add", { topic: "out" });
  assert.equal(typeof subscriber, "string");
  assert.deepEqual(publishers, []);
  await a.request("publisher.add", { topic: "in", endpoints: ep });
  await a.request("edge.add", { from: "in", to: "out" });
  assert.ok(applied, "edge.add is confirmed only after the subscriber applied the change");
  assert.deepEqual(seen, [["in"]]);
  await assert.rejects(a.request("edge.add", { from: "out", to: "in" }), { code: "ERR_PLEXUS_CYCLE" });
  await assert.rejects(a.request("no.such.op"), { code: "ERR_PLEXUS_PROTOCOL" });
  // a's death removes its publisher and its edge; b hears about it
  const gone = new Promise<PublisherInfo[]>((resolve) => (b.onNotify = (_s, p) => resolve(p)));
  await a.close();
  assert.deepEqual(await gone, []);
  const snap = server.snapshot();
  assert.equal(snap.nodes.length, 1);
  assert.equal(snap.edges.length, 0);
  await b.close();
});

test("graph: malformed or unauthenticated control frames get a typed answer and change nothing", async () => {
  await using server = await GraphServer.start({ port: 0, token: "secret-token" });
  const port = server.address.port;
  /** The WELCOME status the server refuses `bytes` with, and its reason (it then hangs up). */
  const answer = async (bytes: Buffer): Promise<string> => {
    const s = netConnect({ host: "127.0.0.1", port });
    await once(s, "connect");
    s.write(bytes);
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    await once(s, "close");
    const b = Buffer.concat(chunks);
    assert.equal(b[4], MsgType.Welcome, "a WELCOME");
    return `${b.readUInt32LE(8)} ${b.toString("utf8", 32)}`;
  };
  const hello = (body: Record<string, unknown>, version = CONTROL_SPEC.version): Buffer => encodeHello({ ...CONTROL_SPEC, version, minVersion: version }, 0, packBody(body));
  assert.match(await answer(Buffer.from([0xff, 0xff, 0xff, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), /^2 malformed HELLO/);
  assert.match(await answer(encodeControl(MsgType.Request, 1, { op: "snapshot" })), /^2 the first frame must be HELLO/);
  assert.match(await answer(hello({ host: "h", pid: 1, threadId: 0, token: "wrong" })), /^16 wrong or missing access token/);
  assert.match(await answer(hello({ host: "h", pid: 1, threadId: 0 }, 9)), /^1 this the GraphServer control protocol server speaks versions 2\.\.2/);
  assert.match(await answer(encodeHello(CONTROL_SPEC, 0, Buffer.alloc(12, 0xc1))), /^2 the HELLO body is not a MessagePack map/);
  assert.match(await answer(hello({ host: "h", token: "secret-token" })), /^2 hello needs host/);
  // version 1's first frame (its own 12-byte header) fails the frame checks: refused as malformed
  assert.match(await answer(Buffer.from([20, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1])), /^2 /);
  assert.equal(server.snapshot().nodes.length, 0);
  await assert.rejects(GraphClient.connect({ address: `127.0.0.1:${port}`, embedded: false }), { code: "ERR_PLEXUS_ACCESS_DENIED" });
  const ok = await GraphClient.connect({ address: `127.0.0.1:${port}`, token: "secret-token", embedded: false });
  assert.equal(server.snapshot().nodes.length, 1);
  await ok.close();
});

test("graph: a non-loopback bind needs TLS and a token", async () => {
  await assert.rejects(GraphServer.start({ host: "0.0.0.0", port: 0 }), { code: "ERR_PLEXUS_ACCESS_DENIED" });
});

test("graph: connect() with nobody listening starts an embedded server; the next client finds it", async () => {
  const probe = await GraphServer.start({ port: 0 });
  const port = probe.address.port;
  await probe.close(); // a free port nobody listens on
  const first = await GraphClient.connect({ address: `127.0.0.1:${port}` });
  assert.ok(first.embedded, "the first client started a server");
  const second = await GraphClient.connect({ address: `127.0.0.1:${port}` });
  assert.equal(second.embedded, undefined, "the second one found it");
  assert.equal(first.embedded?.snapshot().nodes.length, 2);
  await second.close();
  await first.close();
  await assert.rejects(GraphClient.connect({ address: `127.0.0.1:${port}`, embedded: false }), { code: "ERR_PLEXUS_SYSTEM" });
});

test("graph: a TLS control connection with a token; a client without the right CA is refused", async () => {
  const { testCerts } = await import("./helpers/tcp-certs.js");
  const certs = testCerts();
  await using server = await GraphServer.start({ port: 0, tls: { key: certs.serverKey, cert: certs.serverCert }, token: "a-long-token" });
  const address = `127.0.0.1:${server.address.port}`;
  const client = await GraphClient.connect({ address, embedded: false, token: "a-long-token", tls: { ca: certs.ca, servername: "localhost" } });
  await client.request("edge.add", { from: "a", to: "b" });
  assert.equal(server.snapshot().edges.length, 1);
  await client.close();
  await assert.rejects(GraphClient.connect({ address, embedded: false, token: "a-long-token", tls: {} }), (e: { code?: string }) => typeof e.code === "string");
  // the URL form: tls:// with the CA given; tls:// alone uses the system's CAs (refused: the test CA is not one)
  const byUrl = await GraphClient.connect({ address: `tls://${address}`, embedded: false, token: "a-long-token", tls: { ca: certs.ca, servername: "localhost" } });
  await byUrl.close();
  await assert.rejects(GraphClient.connect({ address: `tls://${address}`, embedded: false, token: "a-long-token" }), (e: { code?: string }) => typeof e.code === "string");
  // a tls:// address on loopback with nothing listening does not start a (plain) embedded server
  await assert.rejects(GraphClient.connect({ address: "tls://127.0.0.1:1", token: "a-long-token" }), { code: "ERR_PLEXUS_SYSTEM" });
  assert.equal(server.snapshot().nodes.length, 0);
});
