/** Traffic statistics: counters in publishers and subscribers, reported by nodes, summed per topic by the GraphServer. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { GraphServer } from "../src/graph/server.js";
import { GraphClient } from "../src/graph/client.js";
import { StatsBook } from "../src/graph/stats.js";
import { connect } from "../src/node/node.js";
import { eventually } from "./helpers/eventually.js";

test("stats: messages, bytes, rates, subscribers and link transports per topic", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using a = await connect({ address, embedded: false });
  await using b = await connect({ address, embedded: false });
  const pub = await a.publisher<{ n: number }>("stats/t");
  const local = await a.subscriber<{ n: number }>("stats/t"); // same node: the value itself
  const remote = await b.subscriber<{ n: number }>("stats/t", { transport: "shm" });
  let received = 0;
  const drain = (s: typeof local): Promise<void> => s.forEach(() => void received++);
  const done = Promise.all([drain(local), drain(remote)]);
  for (let n = 0; n < 200; n++) await pub.publish({ n });
  assert.equal(pub.counters.messages, 200);
  assert.ok(pub.counters.bytes > 200 * 16, "each message encoded once for the ring, header included");
  const t = await eventually("all 200 counted", () => server.stats().topics.find((x) => x.topic === "stats/t" && x.messages === 200 && x.links.length === 2));
  assert.equal(t.publishers, 1);
  assert.equal(t.subscribers, 2);
  assert.equal(t.bytes, pub.counters.bytes);
  assert.deepEqual(t.links.map((l) => l.transport).sort(), ["inproc", "shm"]);
  assert.equal(t.drops, 0);
  // a rate is reported while messages flow, and falls to 0 once they stop
  const flowing = setInterval(() => void pub.publish({ n: 0 }), 2);
  try {
    await eventually("a positive rate", () => server.stats().topics.find((x) => x.topic === "stats/t" && x.rate > 0));
  } finally {
    clearInterval(flowing);
  }
  await eventually("the rate back to 0", () => server.stats().topics.find((x) => x.topic === "stats/t" && x.rate === 0));
  assert.equal(remote.counters.messages, pub.counters.messages);
  assert.ok(remote.counters.bytes > 0 && local.counters.bytes === 0, "bytes count what crossed a transport");
  await local.close();
  await remote.close();
  await done;
  assert.ok(received >= 400);
});

test("stats: drops of a leaky subscriber and waits of a publisher held back", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using node = await connect({ address, embedded: false });
  const pub = await node.publisher<number>("stats/leaky");
  const leaky = await node.subscriber<number>("stats/leaky", { backpressure: "drop-oldest", queue: 2 });
  for (let n = 0; n < 10; n++) await pub.publish(n);
  assert.equal(leaky.counters.drops, 8);
  await eventually("8 drops", () => server.stats().topics.find((x) => x.topic === "stats/leaky" && x.drops === 8));
  await leaky.close();
  const slow = await node.subscriber<number>("stats/leaky", { queue: 1 }); // blocking
  await pub.publish(1);
  const held = pub.publish(2); // waits for room
  assert.equal(pub.counters.waits, 1);
  (await slow.receive())?.release();
  await held;
  await eventually("the wait reported", () => server.stats().topics.find((x) => x.topic === "stats/leaky" && x.waits === 1));
});

test("stats: a malformed report is refused with a typed error and the node keeps its connection", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const client = await GraphClient.connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
  try {
    await assert.rejects(client.request("stats.report", { publishers: "many" }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { publishers: [{ id: "p1", messages: -1 }] }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { subscribers: [{ id: "s1", links: [{ publisher: "p", transport: "carrier-pigeon" }] }] }), {
      code: "ERR_PLEXUS_PROTOCOL",
    });
    // ports of other nodes are ignored, the connection still serves
    await client.request("stats.report", { publishers: [{ id: "not-mine", messages: 5, bytes: 5 }] });
    assert.deepEqual((await client.request<{ topics: unknown[] }>("stats")).topics, []);
  } finally {
    await client.close();
  }
});

test("stats book: rates from successive reports, stale ports count 0", () => {
  const book = new StatsBook();
  const snap = { nodes: [], topics: ["t"], publishers: [{ id: "p", topic: "t", node: "n", endpoints: { host: "h", pid: 1, threadId: 0 } }], subscribers: [], edges: [], segments: [], servers: [], clients: [], services: [], remote: [] };
  book.report({ publishers: [{ id: "p", messages: 100, bytes: 1000, waits: 0 }] }, () => true, 10_000);
  book.report({ publishers: [{ id: "p", messages: 600, bytes: 6000, waits: 2 }] }, () => true, 10_500);
  const now = book.topics(snap, 10_600).topics[0];
  assert.equal(now.rate, 1000);
  assert.equal(now.bandwidth, 10_000);
  assert.equal(now.waitRate, 4);
  assert.equal(now.messages, 600);
  assert.equal(book.topics(snap, 20_000).topics[0].rate, 0);
  book.prune(() => false);
  assert.equal(book.topics(snap, 10_600).topics[0].messages, 0);
});
