/**
 * The NATS bridge (docs/scale-out.md) against a real nats-server started here: two graphs (two
 * GraphServers) in this process, each with its own bridge; topics and services across them, the
 * subject mapping, loop prevention, chunking, garbage on bridged subjects.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { GraphServer, connect, NoServerError, RemoteError, ProtocolError, type Node } from "../src/index.js";
import { Bridge, type BridgeOptions } from "../src/bridge/index.js";
import { natsServer, type NatsServer } from "./helpers/nats.js";
import { eventually } from "./helpers/eventually.js";

/** One "host": a GraphServer, an application node and a bridge. */
interface Host {
  graph: GraphServer;
  app: Node;
  bridge: Bridge;
  close(): Promise<void>;
}

async function host(name: string, nats: string, opts: Partial<BridgeOptions> = {}): Promise<Host> {
  const graph = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${graph.address.port}`;
  const app = await connect({ address, embedded: false, name: `app-${name}` });
  const bridge = await Bridge.start({ nats, name, graph: { address, embedded: false }, export: [">"], import: [">"], announceInterval: 200, scanInterval: 50, ...opts });
  return {
    graph,
    app,
    bridge,
    async close() {
      await bridge.close();
      await app.close({ linger: 0 });
      await graph.close();
    },
  };
}

describe("bridge: two graphs through one nats-server", () => {
  let server: NatsServer;
  let a: Host;
  let b: Host;
  let raw: NatsConnection;

  before(async () => {
    server = await natsServer({ maxPayload: 64 * 1024 });
    a = await host("host-a", server.url, { capacity: 40 << 20 });
    b = await host("host-b", server.url, { capacity: 40 << 20 });
    raw = await natsConnect({ servers: server.url });
  });
  after(async () => {
    await raw?.close();
    await a?.close();
    await b?.close();
    await server?.close();
  });

  it("a subscriber on one graph receives what a publisher on the other publishes, typed arrays as typed arrays", async () => {
    const pub = await a.app.publisher<{ n: number; data: Float32Array }>("sensors/imu");
    const sub = await b.app.subscriber<{ n: number; data: Float32Array }>("sensors/imu");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    for (let n = 1; n <= 5; n++) await pub.publish({ n, data: new Float32Array([n, n + 0.5]) });
    for (let n = 1; n <= 5; n++) {
      const s = await sub.receive({ timeout: 5000 });
      assert.ok(s);
      assert.equal(s.value.n, n);
      assert.ok(s.value.data instanceof Float32Array);
      assert.deepEqual([...s.value.data], [n, n + 0.5]);
      s.release();
    }
    await pub.close();
    await sub.close();
  });

  it("a 16 MiB message crosses in chunks of the server's max_payload and arrives whole", async () => {
    const pub = await a.app.publisher<Uint8Array>("video/raw", { capacity: 64 << 20 });
    const sub = await b.app.subscriber<Uint8Array>("video/raw");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    const frame = new Uint8Array(16 << 20);
    for (let i = 0; i < frame.length; i += 4096) frame[i] = (i >>> 12) & 0xff;
    const chunksBefore = a.bridge.stats().topics.sentChunks;
    await pub.publish(frame);
    const s = await sub.receive({ timeout: 20_000 });
    assert.ok(s);
    assert.equal(s.value.length, frame.length);
    assert.ok(Buffer.from(s.value).equals(Buffer.from(frame)));
    s.release();
    assert.ok(a.bridge.stats().topics.sentChunks - chunksBefore >= (16 << 20) / (64 * 1024), "cut into chunks of at most max_payload");
    await pub.close();
    await sub.close();
  });

  it("a client on one graph calls a service of the other; the handler's error is a RemoteError; no responder is NoServerError", async () => {
    const server = await a.app.server<{ x: number }, number>("math/double", (req) => {
      if (req.x < 0) throw new RangeError("negative");
      return req.x * 2;
    });
    const client = await b.app.client<{ x: number }, number>("math/double");
    await eventually("the remote service to reach the client", () => client.servers.length > 0);
    assert.equal(await client.request({ x: 21 }, { timeout: 5000 }), 42);
    await assert.rejects(client.request({ x: -1 }, { timeout: 5000 }), (err: unknown) => err instanceof RemoteError && err.remoteName === "RangeError" && err.message === "negative");
    // The service leaves host A while host B still holds its stand-in: NATS has no responder.
    await server.close();
    await assert.rejects(client.request({ x: 1 }, { timeout: 5000 }), NoServerError);
    await client.close();
  });

  it("garbage on a bridged subject is counted, reported as a typed error, and nothing else is lost", async () => {
    const errors: Error[] = [];
    const onError = (e: Error): void => void errors.push(e);
    b.bridge.on("error", onError);
    const pub = await a.app.publisher<number>("garbage/t");
    const sub = await b.app.subscriber<number>("garbage/t");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    const before = b.bridge.stats().topics.malformed;
    raw.publish("plexus.t.garbage.t", new TextEncoder().encode("not a plexus frame"));
    const head = new Uint8Array(48);
    new DataView(head.buffer).setUint32(0, 0x314e5850, true); // the magic, then nonsense: a chunk count above the length
    head[4] = 1;
    head[5] = 1;
    head[6] = 1;
    head[32] = 0x41;
    new DataView(head.buffer).setUint32(20, 1_000_000, true);
    new DataView(head.buffer).setUint32(24, 15, true);
    raw.publish("plexus.t.garbage.t", head);
    await raw.flush();
    await pub.publish(7);
    const s = await sub.receive({ timeout: 5000 });
    assert.equal(s?.value, 7);
    s?.release();
    await eventually("both to be counted", () => b.bridge.stats().topics.malformed - before >= 2);
    assert.ok(errors.some((e) => e instanceof ProtocolError));
    b.bridge.off("error", onError);
    await pub.close();
    await sub.close();
  });

  it("each graph sees the other in hosts(), with what it exports", async () => {
    const pub = await a.app.publisher("announced/topic");
    await eventually("host-b to hear of host-a's topic", () => b.bridge.hosts().find((h) => h.origin === "host-a")?.topics.includes("announced/topic"));
    const snap = await b.app.snapshot();
    const stand = snap.publishers.find((p) => p.topic === "announced/topic");
    assert.equal(stand?.endpoints.remote, "host-a", "the stand-in publisher is marked with its graph");
    await pub.close();
    await eventually("the topic to leave host-b's graph", async () => !(await b.app.snapshot()).publishers.some((p) => p.topic === "announced/topic"));
  });
});
