/**
 * The NATS bridge (docs/scale-out.md) against a real nats-server started here: two graphs (two
 * GraphServers) in this process, each with its own bridge; topics and services across them, the
 * subject mapping, loop prevention, chunking, garbage on bridged subjects.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { GraphServer, connect, queue, NoServerError, RemoteError, ProtocolError, SequenceError, TimeoutError, type Node, type Subscriber } from "../src/index.js";
import { Bridge, type BridgeOptions } from "../src/bridge/index.js";
import { natsServer, type NatsServer } from "./helpers/nats.js";
import { EnvelopeArena, envelopes, Kind, sendBatch, type Sender } from "../src/bridge/envelope.js";
import { encodedSize } from "../src/codec/index.js";
import { eventually } from "./helpers/eventually.js";
import { picture, toMermaid } from "../src/cli/graph.js";
import { topTable } from "../src/cli/top.js";

/** One "host": a GraphServer, an application node and a bridge. */
interface Host {
  graph: GraphServer;
  app: Node;
  bridge: Bridge;
  bridges: Bridge[];
  close(): Promise<void>;
}

async function host(name: string, nats: string, opts: Partial<BridgeOptions> = {}, count = 1): Promise<Host> {
  const graph = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${graph.address.port}`;
  const app = await connect({ address, embedded: false, name: `app-${name}` });
  const bridges: Bridge[] = [];
  for (let i = 0; i < count; i++) bridges.push(await Bridge.start({ nats, name, graph: { address, embedded: false }, export: [">"], import: [">"], announceInterval: 200, scanInterval: 50, ...opts }));
  return {
    graph,
    app,
    bridge: bridges[0],
    bridges,
    async close() {
      for (const b of bridges) await b.close();
      await app.close({ linger: 0 });
      await graph.close();
    },
  };
}

/** Receives until `timeout` passes with nothing: every value that came. */
async function drain<T>(sub: Subscriber<T>, timeout = 500): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    try {
      const s = await sub.receive({ timeout });
      if (s === null) return out;
      out.push(s.value);
      s.release();
    } catch (err) {
      if (err instanceof TimeoutError) return out;
      throw err;
    }
  }
}

describe("bridge: two graphs through one nats-server", () => {
  let server: NatsServer;
  let a: Host;
  let b: Host;
  let raw: NatsConnection;

  before(async () => {
    server = await natsServer({ maxPayload: 64 * 1024, jetstream: true });
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

  it("a message that finds the export idle is sent in the call that published it; those that follow in the same turn go as a batch", async () => {
    const pub = await a.app.publisher<number>("lone/t");
    const sub = await b.app.subscriber<number>("lone/t");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    await eventually("the export", () => a.bridge.stats().exports.topics.includes("lone/t"));
    await new Promise((r) => setTimeout(r, 20)); // the export's loop waits for its next message
    const before = a.bridge.stats().topics;
    const first = pub.publish(1);
    assert.equal(a.bridge.stats().topics.sent - before.sent, 1, "on its way to NATS before publish() returned");
    const rest = [pub.publish(2), pub.publish(3)];
    assert.equal(a.bridge.stats().topics.sent - before.sent, 1, "the next ones wait for the export's loop");
    await Promise.all([first, ...rest]);
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await sub.receive({ timeout: 5000 });
      got.push(s?.value as number);
      s?.release();
    }
    assert.deepEqual(got, [1, 2, 3]);
    const after = await eventually("the loop to send the rest", () => (a.bridge.stats().topics.sent - before.sent === 3 ? a.bridge.stats().topics : undefined));
    assert.equal(after.sentChunks - before.sentChunks, 2, "one NATS message alone, then one batch of two");
    await pub.close();
    await sub.close();
  });

  it("lone messages of bytes are each sent in the call that published them and arrive as the same kind of bytes, a Buffer as a Buffer", async () => {
    const pub = await a.app.publisher<Uint8Array>("lone/bytes");
    const sub = await b.app.subscriber<Uint8Array>("lone/bytes");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    await eventually("the export", () => a.bridge.stats().exports.topics.includes("lone/bytes"));
    // The first makes the publisher's sender (the full way); the others take the one-pass way.
    for (const value of [Uint8Array.of(1), Buffer.from([2, 2]), Uint8Array.of(3, 3, 3), Buffer.alloc(0)]) {
      await new Promise((r) => setTimeout(r, 20)); // alone: the export's loop waits for its next message
      const before = a.bridge.stats().topics.sent;
      const done = pub.publish(value);
      assert.equal(a.bridge.stats().topics.sent - before, 1, "on its way to NATS before publish() returned");
      await done;
      const s = await sub.receive({ timeout: 5000 });
      assert.ok(s !== null);
      assert.equal(Object.getPrototypeOf(s.value), Object.getPrototypeOf(value));
      assert.deepEqual([...s.value], [...value]);
      s.release();
    }
    await pub.close();
    await sub.close();
  });

  it("each election moves the roles' version, so that no message takes the short way past a change of roles", async () => {
    // White-box: the TopicBridge publishes on the short way only while the version it saw stays.
    const version = (): number => (b.bridge as unknown as { roles: { version: number } }).roles.version;
    const before = version();
    await eventually("an election (every scanInterval, 50 ms here)", () => version() > before);
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

  it("messages that wait together cross as batches: each arrives once, in order, typed arrays as typed arrays, in fewer NATS messages", async () => {
    // A sender whose bridge holds up to 4096 messages per topic (and holds the publisher back
    // beyond): batches of thousands, more than the receiving bridge's queue (1024), which bounds
    // only what earlier reads left waiting.
    const c = await host("host-c", server.url, { backpressure: "block", queue: 4096 });
    try {
      const pub = await c.app.publisher<{ n: number; data: Float64Array }>("burst/t");
      const sub = await b.app.subscriber<{ n: number; data: Float64Array }>("burst/t", { queue: 8192 });
      await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
      const sentBefore = c.bridge.stats().topics;
      const receivedBefore = b.bridge.stats().topics;
      const count = 6000;
      for (let n = 0; n < count; n++) await pub.publish({ n, data: new Float64Array([n, -n]) });
      for (let n = 0; n < count; n++) {
        const s = await sub.receive({ timeout: 10_000 });
        assert.ok(s);
        assert.equal(s.value.n, n);
        assert.ok(s.value.data instanceof Float64Array);
        assert.deepEqual([...s.value.data], [n, -n]);
        s.release();
      }
      const sent = c.bridge.stats().topics;
      // Counted once its publish resolved (the subscriber may have the value a little before).
      const received = await eventually("every message to be counted", () => (b.bridge.stats().topics.received - receivedBefore.received >= count ? b.bridge.stats().topics : undefined));
      assert.equal(sent.sent - sentBefore.sent, count);
      assert.ok(sent.sentChunks - sentBefore.sentChunks < count / 100, `batched: ${sent.sentChunks - sentBefore.sentChunks} NATS messages for ${count}`);
      assert.equal(received.received - receivedBefore.received, count);
      assert.equal(received.gaps - receivedBefore.gaps, 0);
      assert.equal(received.dropped - receivedBefore.dropped, 0);
      await pub.close();
      await sub.close();
    } finally {
      await c.close();
    }
  });

  it("a malformed batch is dropped whole, counted once and reported; the messages after it arrive", async () => {
    const errors: Error[] = [];
    const onError = (e: Error): void => void errors.push(e);
    b.bridge.on("error", onError);
    const pub = await a.app.publisher<number>("garbage/batch");
    const sub = await b.app.subscriber<number>("garbage/batch");
    await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
    const before = b.bridge.stats().topics;
    const sender: Sender = { origin: new TextEncoder().encode("host-x"), port: new TextEncoder().encode("p9") };
    const batch: Uint8Array[] = [];
    sendBatch(sender, [1, 2], [encodedSize(1), encodedSize(2)], (p) => batch.push(p));
    const bad = (batch[0] as Uint8Array).slice();
    new DataView(bad.buffer).setUint32(40, 1000, true); // the first frame runs past the end
    raw.publish("plexus.t.garbage.batch", bad);
    await raw.flush();
    await pub.publish(7);
    const s = await sub.receive({ timeout: 5000 });
    assert.equal(s?.value, 7);
    s?.release();
    await eventually("the batch to be counted", () => b.bridge.stats().topics.malformed - before.malformed === 1);
    // Counted once its publish resolved (the subscriber may have the value a little before): 7, and nothing of the bad batch.
    await eventually("the good message to be counted", () => b.bridge.stats().topics.received - before.received >= 1);
    assert.equal(b.bridge.stats().topics.received - before.received, 1, "nothing of the bad batch published");
    assert.ok(errors.some((e) => e instanceof ProtocolError && /runs past its end/.test(e.message)));
    b.bridge.off("error", onError);
    await pub.close();
    await sub.close();
  });

  it("batch: false sends one NATS message per message; a burst of more than the receiving bridge's queue is not dropped", async () => {
    const d = await host("host-d", server.url, { batch: false, backpressure: "block", queue: 4096 });
    // A receiver whose queue (50) is far below what one socket read brings (hundreds of small messages).
    const e = await host("host-e", server.url, { queue: 50 });
    try {
      const pub = await d.app.publisher<number>("unbatched/t");
      const sub = await e.app.subscriber<number>("unbatched/t", { queue: 4096 });
      await eventually("the remote publisher to reach the subscriber", () => sub.publishers.length > 0);
      const before = d.bridge.stats().topics;
      const receivedBefore = e.bridge.stats().topics;
      for (let n = 0; n < 3000; n++) await pub.publish(n);
      for (let n = 0; n < 3000; n++) {
        const s = await sub.receive({ timeout: 10_000 });
        assert.equal(s?.value, n);
        s?.release();
      }
      const after = d.bridge.stats().topics;
      assert.equal(after.sent - before.sent, 3000);
      assert.equal(after.sentChunks - before.sentChunks, 3000);
      assert.equal(e.bridge.stats().topics.dropped - receivedBefore.dropped, 0);
      await pub.close();
      await sub.close();
    } finally {
      await d.close();
      await e.close();
    }
  });

  it("queues through a bridge's options: a put on one graph reaches the queue server of the other, and hosts() lists the queue", async () => {
    await using app = await queue.server<{ job: number; data: Float32Array }>({ url: "tcp://127.0.0.1:0" });
    const qa = await Bridge.start({ nats: server.url, name: "q-a", graph: { address: `127.0.0.1:${a.graph.address.port}`, embedded: false }, announceInterval: 200, queues: [{ name: "jobs", direction: "export", url: "tcp://127.0.0.1:0", delivery: "reliable" }] });
    const qb = await Bridge.start({ nats: server.url, name: "q-b", graph: { address: `127.0.0.1:${b.graph.address.port}`, embedded: false }, announceInterval: 200, queues: [{ name: "jobs", direction: "import", url: app.url }] });
    try {
      const exported = qa.stats().queues[0];
      assert.equal(exported.direction, "export");
      await using producer = await queue.client<{ job: number; data: Float32Array }>({ url: exported.url });
      const put = producer.put({ job: 7, data: new Float32Array([1.5]) }, { timeout: 10_000 });
      const msg = await app.get({ timeout: 10_000 });
      assert.equal(msg.value.job, 7);
      assert.ok(msg.value.data instanceof Float32Array);
      msg.release();
      await put; // reliable: resolved once the consuming application released it
      await eventually("q-b to hear of q-a's queue", () => qb.hosts().find((h) => h.origin === "q-a")?.queues.includes("jobs"));
      // ... and to tell its GraphServer: plexus graph draws the queue, plexus top lists the host with it.
      const snap = await eventually("the graph to know q-a's queue", async () => {
        const s = await b.app.snapshot();
        return s.remote.some((r) => r.origin === "q-a" && r.queues.includes("jobs")) ? s : undefined;
      });
      assert.match(toMermaid(picture(snap)), /queue jobs/);
      assert.match(topTable(b.graph.stats(), undefined, snap.remote), /^HOST +MACHINES +TOPICS +SERVICES +QUEUES\n(.*\n)*q-a +\S+ +0 +0 +jobs$/m);
    } finally {
      await qa.close();
      await qb.close();
    }
  });

  it("one bridge that exports and imports the same queue, reliable: the put resolves when the application released the message", async () => {
    await using app = await queue.server<number>({ url: "tcp://127.0.0.1:0" });
    const both = await Bridge.start({
      nats: server.url,
      name: "q-both",
      graph: { address: `127.0.0.1:${a.graph.address.port}`, embedded: false },
      queues: [
        { name: "self", direction: "export", url: "tcp://127.0.0.1:0", delivery: "reliable" },
        { name: "self", direction: "import", url: app.url },
      ],
    });
    try {
      await using producer = await queue.client<number>({ url: both.stats().queues[0].url });
      const put = producer.put(42, { timeout: 10_000 });
      const msg = await app.get({ timeout: 10_000 });
      assert.equal(msg.value, 42);
      msg.release();
      await put;
    } finally {
      await both.close();
    }
  });

  it("each graph sees the other in hosts(), with what it exports", async () => {
    const pub = await a.app.publisher("announced/topic");
    await eventually("host-b to hear of host-a's topic", () => b.bridge.hosts().find((h) => h.origin === "host-a")?.topics.includes("announced/topic"));
    const stand = await eventually("the stand-in publisher in host-b's graph", async () => (await b.app.snapshot()).publishers.find((p) => p.topic === "announced/topic"));
    assert.equal(stand.endpoints.remote, "host-a", "the stand-in publisher is marked with its graph");
    // plexus graph draws it as host-a's; plexus top marks the topic with the host it comes from.
    const snap = await b.app.snapshot();
    assert.match(toMermaid(picture(snap)), /host host-a \(through a bridge\)/);
    assert.deepEqual(b.graph.stats().topics.find((t) => t.topic === "announced/topic")?.remote, ["host-a"]);
    assert.match(topTable(b.graph.stats()), /^announced\/topic <- host-a /m);
    await pub.close();
    await eventually("the topic to leave host-b's graph", async () => !(await b.app.snapshot()).publishers.some((p) => p.topic === "announced/topic"));
  });
});

describe("bridge: two graphs with two bridges each, both publishing the same topic", () => {
  let server: NatsServer;
  let a: Host;
  let b: Host;
  let raw: NatsConnection;

  before(async () => {
    server = await natsServer();
    a = await host("twin-a", server.url, { deny: ["secret/>"], backpressure: "block" }, 2);
    b = await host("twin-b", server.url, { backpressure: "block" }, 2);
    raw = await natsConnect({ servers: server.url });
  });
  after(async () => {
    await raw?.close();
    await a?.close();
    await b?.close();
    await server?.close();
  });

  it("every subscriber gets each message once: nothing echoed back, nothing sent twice by the second bridge", async () => {
    const pubA = await a.app.publisher<string>("dup/x");
    const pubB = await b.app.publisher<string>("dup/x");
    const subA = await a.app.subscriber<string>("dup/x", { queue: 1000 });
    const subB = await b.app.subscriber<string>("dup/x", { queue: 1000 });
    // Each side sees its own publisher and the other graph's, held by each of its two bridges.
    await eventually("both subscribers to link to the other graph", () => subA.publishers.length >= 2 && subB.publishers.length >= 2);
    await new Promise((r) => setTimeout(r, 300)); // both bridges of each graph settled on who sends
    for (let i = 0; i < 50; i++) {
      await pubA.publish(`a${i}`);
      await pubB.publish(`b${i}`);
    }
    const gotA = await drain(subA);
    const gotB = await drain(subB);
    const expected = [...Array.from({ length: 50 }, (_, i) => `a${i}`), ...Array.from({ length: 50 }, (_, i) => `b${i}`)].sort();
    assert.deepEqual([...gotA].sort(), expected);
    assert.deepEqual([...gotB].sort(), expected);
    // Order per publisher is kept.
    assert.deepEqual(gotB.filter((v) => v.startsWith("a")), Array.from({ length: 50 }, (_, i) => `a${i}`));
    const looped = a.bridges.concat(b.bridges).reduce((n, x) => n + x.stats().topics.looped, 0);
    assert.ok(looped > 0, "each graph heard its own messages back from NATS and dropped them");
    for (const p of [pubA, pubB, subA, subB]) await p.close();
  });

  it("a gap in a remote publisher's sequence is counted and reported, not hidden", async () => {
    const errors: Error[] = [];
    for (const x of b.bridges) x.on("error", (e) => void errors.push(e));
    const sub = await b.app.subscriber<number>("ghost/t", { queue: 100 });
    const from: Sender = { origin: new TextEncoder().encode("ghost-host"), port: new TextEncoder().encode("p9") };
    const gapsBefore = b.bridges.reduce((n, x) => n + x.stats().topics.gaps, 0);
    raw.publish("plexus.t.ghost.t", envelopes(Kind.Message, from, 1, 1, 1 << 20, 1 << 20)[0]);
    await raw.flush();
    await eventually("the stand-in publisher to reach the subscriber", () => sub.publishers.length > 0);
    raw.publish("plexus.t.ghost.t", envelopes(Kind.Message, from, 2, 2, 1 << 20, 1 << 20)[0]);
    raw.publish("plexus.t.ghost.t", envelopes(Kind.Message, from, 6, 6, 1 << 20, 1 << 20)[0]);
    raw.publish("plexus.t.ghost.t", envelopes(Kind.Message, from, 6, 6, 1 << 20, 1 << 20)[0]); // a duplicate
    await raw.flush();
    const got = await drain(sub);
    assert.ok(got.includes(2) && got.includes(6));
    assert.equal(got.filter((v) => v === 6).length, 1, "the duplicate is dropped");
    await eventually("the gap to be counted", () => b.bridges.reduce((n, x) => n + x.stats().topics.gaps, 0) - gapsBefore === 3);
    assert.ok(errors.some((e) => e instanceof SequenceError && e.expected === 3 && e.got === 6));
    await sub.close();
  });

  it("a denied topic is never exported, whatever the export list", async () => {
    const pub = await a.app.publisher<number>("secret/key");
    const open = await a.app.publisher<number>("open/key");
    const sub = await b.app.subscriber<number>("secret/key");
    await eventually("host-b to hear of open/key", () => b.bridge.hosts().find((h) => h.origin === "twin-a")?.topics.includes("open/key"));
    assert.ok(!b.bridge.hosts().find((h) => h.origin === "twin-a")?.topics.includes("secret/key"));
    await pub.publish(1);
    assert.deepEqual(await drain(sub, 300), []);
    assert.ok(a.bridges.every((x) => !x.stats().exports.topics.includes("secret/key")));
    for (const p of [pub, open, sub]) await p.close();
  });
});

describe("bridge: overlapping patterns, sibling bridges, failover, leaving, outages", () => {
  let server: NatsServer;
  before(async () => {
    server = await natsServer({ maxPayload: 32 * 1024 });
  });
  after(async () => {
    await server?.close();
  });

  it("overlapping import patterns: each message, chunked or not, arrives once", async () => {
    const a = await host("ov-a", server.url, { capacity: 8 << 20 });
    const b = await host("ov-b", server.url, { import: ["big/>", ">", "big/*"], capacity: 8 << 20 });
    try {
      const pub = await a.app.publisher<Uint8Array>("big/frames", { capacity: 8 << 20 });
      const sub = await b.app.subscriber<Uint8Array>("big/frames", { queue: 100 });
      await eventually("the subscriber to link", () => sub.publishers.length > 0);
      for (let i = 0; i < 5; i++) await pub.publish(new Uint8Array(300_000).fill(i));
      await pub.publish(new Uint8Array([9]));
      const got = await drain(sub);
      assert.deepEqual(got.map((v) => [v.length, v[0]]), [[300_000, 0], [300_000, 1], [300_000, 2], [300_000, 3], [300_000, 4], [1, 9]]);
      assert.equal(b.bridge.stats().topics.malformed, 0);
      assert.equal(b.bridge.stats().topics.duplicates, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("sibling bridges with different import lists: each topic is published by one that imports it", async () => {
    const a = await host("sib-a", server.url);
    const b = await host("sib-b", server.url, { import: ["x/>"] });
    const address = `127.0.0.1:${b.graph.address.port}`;
    const b2 = await Bridge.start({ nats: server.url, name: "sib-b", graph: { address, embedded: false }, import: [">"], announceInterval: 200, scanInterval: 50 });
    try {
      const px = await a.app.publisher<number>("x/t");
      const py = await a.app.publisher<number>("y/t");
      const sx = await b.app.subscriber<number>("x/t", { queue: 100 });
      const sy = await b.app.subscriber<number>("y/t", { queue: 100 });
      await eventually("both subscribers to link", () => sx.publishers.length > 0 && sy.publishers.length > 0);
      await new Promise((r) => setTimeout(r, 300)); // an election with the publishers held
      for (let i = 1; i <= 20; i++) {
        await px.publish(i);
        await py.publish(i);
      }
      const expected = Array.from({ length: 20 }, (_, i) => i + 1);
      assert.deepEqual(await drain(sx), expected);
      assert.deepEqual(await drain(sy), expected);
    } finally {
      await b2.close();
      await a.close();
      await b.close();
    }
  });

  it("a bridge that joins mid-stream duplicates nothing; when the publishing one leaves, what may be lost is counted", async () => {
    const a = await host("fo-a", server.url, { backpressure: "block" });
    const b = await host("fo-b", server.url);
    const address = `127.0.0.1:${b.graph.address.port}`;
    let b2: Bridge | undefined;
    try {
      const pub = await a.app.publisher<number>("fo/n");
      const sub = await b.app.subscriber<number>("fo/n", { queue: 10_000 });
      await eventually("the subscriber to link", () => sub.publishers.length > 0);
      const got: number[] = [];
      const reading = (async () => {
        for (;;) {
          let s;
          try {
            s = await sub.receive({ timeout: 1500 });
          } catch {
            return;
          }
          if (s === null) return;
          got.push(s.value);
          s.release();
        }
      })();
      const total = 1500;
      for (let i = 1; i <= total; i++) {
        await pub.publish(i);
        if (i === 300) b2 = await Bridge.start({ nats: server.url, name: "fo-b", graph: { address, embedded: false }, import: [">"], announceInterval: 200, scanInterval: 50 });
        if (i === 900) void b.bridge.close(); // the bridge that publishes here leaves mid-stream
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      await reading;
      assert.equal(new Set(got).size, got.length, "no message twice");
      assert.deepEqual(got, [...got].sort((x, y) => x - y), "in order");
      assert.equal(got[got.length - 1], total, "the second bridge took over");
      const counted = (b2?.stats().topics.gaps ?? 0) + b.bridge.stats().topics.gaps;
      assert.ok(got.length + counted >= total, `every message arrived or is counted: ${got.length} arrived, ${counted} counted, of ${total}`);
    } finally {
      await b2?.close();
      await a.close();
      await b.close();
    }
  });

  it("a graph that leaves takes its publishers along, even with messages still arriving", async () => {
    const a = await host("lv-a", server.url, { backpressure: "block" });
    const b = await host("lv-b", server.url);
    try {
      const pub = await a.app.publisher<number>("lv/t");
      const sub = await b.app.subscriber<number>("lv/t", { backpressure: "drop-oldest" });
      await eventually("the subscriber to link", () => sub.publishers.length > 0);
      let go = true;
      const publishing = (async () => {
        for (let i = 0; go; i++) {
          await pub.publish(i);
          if (i % 20 === 0) await new Promise((r) => setImmediate(r));
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      await a.bridge.close();
      go = false;
      await publishing;
      await eventually("host-b to forget lv-a", () => b.bridge.hosts().length === 0);
      await eventually("no publisher of lv-a left in host-b's graph", async () => !(await b.app.snapshot()).publishers.some((p) => p.endpoints.remote === "lv-a"));
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(!(await b.app.snapshot()).publishers.some((p) => p.endpoints.remote === "lv-a"), "and none comes back");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("NATS down: a drop-oldest export drops (counted) instead of piling up, and messages flow again when it is back", async () => {
    const own = await natsServer();
    const a = await host("out-a", own.url, { backpressure: "drop-oldest", queue: 8 });
    const b = await host("out-b", own.url);
    try {
      const pub = await a.app.publisher<Uint8Array>("out/t");
      const sub = await b.app.subscriber<Uint8Array>("out/t", { backpressure: "drop-oldest", queue: 1000 });
      await eventually("the subscriber to link", () => sub.publishers.length > 0);
      await own.stop();
      await eventually("bridge A to see NATS gone", () => a.bridge.stats().disconnects > 0);
      const sentBefore = a.bridge.stats().topics.sent;
      for (let i = 0; i < 500; i++) await pub.publish(new Uint8Array(32 * 1024));
      await eventually("the export to drop", () => a.bridge.stats().topics.dropped > 0);
      assert.ok(a.bridge.stats().topics.sent - sentBefore <= 8 + 2, `sent while NATS was down: ${a.bridge.stats().topics.sent - sentBefore}`);
      await own.start();
      await eventually("bridge A to reconnect", () => a.bridge.stats().reconnects > 0, 15_000);
      await eventually("bridge B to reconnect", () => b.bridge.stats().reconnects > 0, 15_000);
      await drain(sub, 300);
      await pub.publish(new Uint8Array([1, 2, 3]));
      const after = await drain(sub, 1000);
      assert.ok(after.some((v) => v.length === 3), "a message published after NATS came back arrives");
    } finally {
      await a.close();
      await b.close();
      await own.close();
    }
  });
});

describe("bridge: the memory of sent envelopes", () => {
  it("is reused only once the server has it: every message arrives intact, and nothing is reused while the client is disconnected", async () => {
    const own = await natsServer();
    const nc = await natsConnect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const rx = await natsConnect({ servers: own.url });
    try {
      let broken = 0;
      let received = 0;
      rx.subscribe("mem.t", {
        callback: (_err, m) => {
          received++;
          const mark = m.data[0];
          if (!m.data.every((b) => b === mark)) broken++;
        },
      });
      await rx.flush();
      const arena = new EnvelopeArena(() => nc.flush());
      let n = 0;
      const send = (size: number): Uint8Array => {
        const b = arena.take(size);
        b.fill(++n & 0xff);
        nc.publish("mem.t", b);
        return b;
      };
      // Batches of mixed sizes, one per event-loop turn, as an export sends them: many slabs
      // fill up, and are used again as their flushes come back.
      const sizes = [64, 40_000, 300_000, 5, 1_000_000, 70_000];
      for (let round = 0; round < 30; round++) {
        for (let k = 0; k < 12; k++) send(sizes[(round + k) % sizes.length]);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await nc.flush();
      await eventually("every message to arrive", () => received === n);
      assert.equal(broken, 0, "a message was overwritten before the server had it");

      const status = nc.status()[Symbol.asyncIterator]();
      const next = async (type: string): Promise<void> => {
        for (let s = await status.next(); !s.done; s = await status.next()) if (s.value.type === type) return;
      };
      await own.stop();
      await next("disconnect");
      const kept = send(200_000);
      const copy = kept.slice();
      for (let i = 0; i < 40; i++) {
        send(100_000);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      assert.deepEqual(kept, copy, "what the client keeps while disconnected is not written again");
      await own.start();
      await next("reconnect");
      await nc.flush();
      assert.deepEqual(kept, copy);
    } finally {
      await nc.close();
      await rx.close();
      await own.close();
    }
  });
});
