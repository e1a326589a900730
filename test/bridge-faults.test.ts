/**
 * The bridge's faults and security against real nats-servers started here: a three-node
 * cluster losing the node a bridge uses mid-stream; TLS (a wrong authority, mutual TLS), user
 * and password, token and nkey credentials, each refused as `AccessDeniedError` when wrong; the
 * missing NATS package.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createUser } from "@nats-io/nkeys";
import { AccessDeniedError, BackpressureError, GraphServer, InvalidArgumentError, TimeoutError, connect, type Node, type Subscriber } from "../src/index.js";
import { Bridge, type BridgeOptions } from "../src/bridge/index.js";
import { natsCluster, natsServer, type NatsOptions } from "./helpers/nats.js";
import { testCerts } from "./helpers/tcp-certs.js";
import { eventually } from "./helpers/eventually.js";

/** A graph with an application node, and how to start bridges on it. */
async function graph(name: string): Promise<{ app: Node; bridge(opts: Omit<BridgeOptions, "name" | "graph">): Promise<Bridge>; close(): Promise<void> }> {
  const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  const app = await connect({ address, embedded: false });
  const bridges: Bridge[] = [];
  return {
    app,
    async bridge(opts) {
      const b = await Bridge.start({ name, graph: { address, embedded: false }, announceInterval: 200, scanInterval: 50, ...opts });
      bridges.push(b);
      return b;
    },
    async close() {
      for (const b of bridges) await b.close();
      await app.close({ linger: 0 });
      await server.close();
    },
  };
}

async function received(sub: Subscriber<number>, into: number[]): Promise<void> {
  for (;;) {
    let s;
    try {
      s = await sub.receive({ timeout: 3000 });
    } catch (err) {
      if (err instanceof TimeoutError) return;
      throw err;
    }
    if (s === null) return;
    into.push(s.value);
    s.release();
  }
}

describe("bridge faults", () => {
  it("a cluster node dies mid-stream: the bridges reconnect to another, and every message is either delivered or counted as a gap", async () => {
    const cluster = await natsCluster(3);
    const a = await graph("cl-a");
    const b = await graph("cl-b");
    try {
      const ba = await a.bridge({ nats: cluster.urls, export: [">"], backpressure: "block" });
      const bb = await b.bridge({ nats: cluster.urls, import: [">"] });
      const pub = await a.app.publisher<number>("stream/n");
      const sub = await b.app.subscriber<number>("stream/n", { queue: 100_000 });
      await eventually("the stand-in publisher to reach the subscriber", () => sub.publishers.length > 0);
      const got: number[] = [];
      const reading = received(sub, got);
      let reconnected = false;
      ba.on("reconnect", () => (reconnected = true));
      const total = 3000;
      for (let i = 1; i <= total; i++) {
        await pub.publish(i);
        if (i === 1000) {
          // The node A's bridge talks to dies, mid-stream.
          const victim = cluster.servers.find((s) => s.url.endsWith(`:${new URL(ba.stats().server.includes("://") ? ba.stats().server : `nats://${ba.stats().server}`).port}`));
          assert.ok(victim, `the server ${ba.stats().server} is one of the cluster's`);
          await victim.stop();
        }
        if (i % 100 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      await eventually("bridge A to reconnect", () => reconnected);
      await reading;
      const gaps = bb.stats().topics.gaps;
      // Nothing lost without a count: what arrived plus the gaps is everything from the first to the last.
      assert.ok(got.length > 0);
      assert.deepEqual(got, [...got].sort((x, y) => x - y), "in order");
      assert.equal(new Set(got).size, got.length, "no duplicates");
      assert.equal(got.length + gaps, got[got.length - 1] - got[0] + 1);
      assert.equal(got[got.length - 1], total, "the stream goes on to its end after the failure");
    } finally {
      await a.close();
      await b.close();
      await cluster.close();
    }
  });
});

describe("bridge backpressure", () => {
  it("each receiving subscriber keeps its own policy: a leaky one drops, a reading one gets everything in order", async () => {
    const server = await natsServer();
    const a = await graph("bp-a");
    const b = await graph("bp-b");
    try {
      await a.bridge({ nats: server.url, export: [">"], backpressure: "block" });
      await b.bridge({ nats: server.url, import: [">"] });
      const pub = await a.app.publisher<number>("bp/n");
      const leaky = await b.app.subscriber<number>("bp/n", { backpressure: "drop-oldest", queue: 4 });
      const reader = await b.app.subscriber<number>("bp/n", { queue: 1000 });
      await eventually("both subscribers to link", () => leaky.publishers.length > 0 && reader.publishers.length > 0);
      for (let i = 1; i <= 200; i++) await pub.publish(i);
      const got: number[] = [];
      await received(reader, got);
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i + 1), "the reading subscriber gets everything, in order");
      assert.ok(leaky.counters.drops >= 190, `the leaky subscriber that never reads dropped its oldest (${leaky.counters.drops})`);
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });

  it("a topic whose subscribers hold it back drops what NATS brings beyond the bridge's queue, reported; other topics go on", async () => {
    const server = await natsServer();
    const a = await graph("hol-a");
    const b = await graph("hol-b");
    try {
      await a.bridge({ nats: server.url, export: [">"], backpressure: "block" });
      const bb = await b.bridge({ nats: server.url, import: [">"], queue: 20 });
      const errors: Error[] = [];
      bb.on("error", (e) => void errors.push(e));
      const stuckPub = await a.app.publisher<number>("hol/stuck");
      const freePub = await a.app.publisher<number>("hol/free");
      const stuck = await b.app.subscriber<number>("hol/stuck", { queue: 1 }); // blocks, never reads
      const free = await b.app.subscriber<number>("hol/free", { queue: 1000 });
      await eventually("the subscribers to link", () => stuck.publishers.length > 0 && free.publishers.length > 0);
      for (let i = 1; i <= 100; i++) {
        await stuckPub.publish(i);
        await new Promise((r) => setTimeout(r, 1)); // each its own NATS message (not a batch): the bound counts NATS messages
      }
      for (let i = 1; i <= 50; i++) {
        await freePub.publish(i);
        await new Promise((r) => setTimeout(r, 2)); // never 20 at once: what is measured is the other topic holding it back
      }
      const got: number[] = [];
      await received(free, got);
      assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i + 1), "the other topic is not held back");
      await eventually("the held-back topic's drops to be reported", () => errors.some((e) => e instanceof BackpressureError));
      assert.ok(bb.stats().topics.dropped >= 100 - 20 - 2, `dropped ${bb.stats().topics.dropped}`);
      await stuck.close();
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });
});

describe("bridge security", () => {
  const certs = testCerts();

  async function tryBridge(server: NatsOptions, nats: BridgeOptions["nats"] | ((url: string) => BridgeOptions["nats"])): Promise<Bridge> {
    const s = await natsServer(server);
    const g = await graph("sec");
    try {
      const b = await g.bridge({ nats: typeof nats === "function" ? nats(s.url) : nats, export: [">"], timeout: 2000 });
      return b;
    } finally {
      await g.close();
      await s.close();
    }
  }

  it("TLS: the right authority connects; another authority is AccessDeniedError; mutual TLS needs the client's certificate", async () => {
    const tls = { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca };
    await tryBridge({ tls }, (url) => ({ servers: url, tls: { ca: certs.ca } }));
    await assert.rejects(tryBridge({ tls }, (url) => ({ servers: url, tls: { ca: certs.otherCa } })), AccessDeniedError);
    const mutual = { ...tls, verify: true };
    await tryBridge({ tls: mutual }, (url) => ({ servers: url, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } }));
    // Without the client's certificate the server drops the connection during the handshake and
    // says nothing more: the attempt ends with the bridge's timeout.
    await assert.rejects(tryBridge({ tls: mutual }, (url) => ({ servers: url, tls: { ca: certs.ca } })), (err: unknown) => err instanceof AccessDeniedError || err instanceof TimeoutError);
  });

  it("user and password, token, nkey: right ones connect, wrong ones are AccessDeniedError", async () => {
    await tryBridge({ auth: { user: "u", pass: "p" } }, (url) => ({ servers: url, user: "u", pass: "p" }));
    await assert.rejects(tryBridge({ auth: { user: "u", pass: "p" } }, (url) => ({ servers: url, user: "u", pass: "wrong" })), AccessDeniedError);
    await tryBridge({ auth: { token: "s3cret" } }, (url) => ({ servers: url, token: "s3cret" }));
    await assert.rejects(tryBridge({ auth: { token: "s3cret" } }, (url) => ({ servers: url, token: "nope" })), AccessDeniedError);
    const user = createUser();
    const other = createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    await tryBridge({ auth: { nkey: user.getPublicKey() } }, (url) => ({ servers: url, nkeySeed: seed }));
    await assert.rejects(tryBridge({ auth: { nkey: user.getPublicKey() } }, (url) => ({ servers: url, nkeySeed: new TextDecoder().decode(other.getSeed()) })), AccessDeniedError);
  });

  it("bad options are InvalidArgumentError before anything connects", async () => {
    await assert.rejects(Bridge.start({ nats: "http://x" }), InvalidArgumentError);
    await assert.rejects(Bridge.start({ nats: "nats://127.0.0.1:1", export: ["a/>/b"] }), InvalidArgumentError);
    await assert.rejects(Bridge.start({ nats: "nats://127.0.0.1:1", prefix: "a b" }), InvalidArgumentError);
    await assert.rejects(Bridge.start({ nats: "nats://127.0.0.1:1", name: "my graph" }), InvalidArgumentError, "a graph name is one subject token: no whitespace");
    await assert.rejects(Bridge.start({ nats: { servers: undefined as unknown as string } }), InvalidArgumentError);
    await assert.rejects(Bridge.start({ nats: "nats://127.0.0.1:1", backpressure: "sometimes" as "block" }), InvalidArgumentError);
  });
});
