/** Request/response statistics: counters in servers and clients, reported by nodes, summed per service by the GraphServer. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { GraphServer } from "../src/graph/server.js";
import { GraphClient } from "../src/graph/client.js";
import { StatsBook } from "../src/graph/stats.js";
import { connect } from "../src/node/node.js";
import { eventually } from "./helpers/eventually.js";

test("rpc stats: requests, errors, bytes, latency and link transports per service", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using a = await connect({ address, embedded: false });
  await using b = await connect({ address, embedded: false });
  const srv = await a.server<{ n: number }, number>("stats/double", ({ n }) => {
    if (n < 0) throw new Error("negative");
    return n * 2;
  });
  const local = await a.client<{ n: number }, number>("stats/double"); // same thread: inproc
  const remote = await b.client<{ n: number }, number>("stats/double", { transport: "shm" });
  for (let n = 0; n < 40; n++) assert.equal(await remote.request({ n }), n * 2);
  for (let n = 0; n < 10; n++) assert.equal(await local.request({ n }), n * 2);
  for (let n = 1; n <= 3; n++) await assert.rejects(remote.request({ n: -n }), { code: "ERR_PLEXUS_REMOTE" });
  await assert.rejects(local.request({ n: -1 }), { code: "ERR_PLEXUS_REMOTE" });
  assert.equal(srv.counters.requests, 54);
  assert.equal(srv.counters.errors, 4);
  assert.equal(remote.counters.requests, 43);
  assert.equal(remote.counters.errors, 3);
  assert.ok(remote.counters.bytes > 43 * 16, "each request encoded once for the ring, header included");
  assert.equal(local.counters.bytes, 0, "same-thread requests encode nothing");
  assert.ok(srv.counters.bytes >= remote.counters.bytes, "the server counts the bytes that reached it");
  assert.ok(remote.counters.latency > 0);
  // Timed: the first answered request at least, one a millisecond at most (40 answered).
  assert.ok(remote.counters.timed >= 1 && remote.counters.timed <= 40, `${remote.counters.timed} timed`);
  const s = await eventually("all 54 counted", () => server.stats().services.find((x) => x.service === "stats/double" && x.requests === 54 && x.errors === 4 && x.links.length === 2));
  assert.equal(s.servers, 1);
  assert.equal(s.clients, 2);
  assert.deepEqual(s.links.map((l) => l.transport).sort(), ["inproc", "shm"]);
  assert.ok(s.links.every((l) => l.server === srv.id));
  assert.deepEqual(s.links.map((l) => l.client).sort(), [local.id, remote.id].sort());
  assert.equal(s.inFlight, 0);
  // while requests flow: a request rate, a call rate and a round-trip latency
  let flowing = true;
  const loop = (async () => {
    while (flowing) await remote.request({ n: 1 });
  })();
  try {
    const busy = await eventually("positive rates", () => server.stats().services.find((x) => x.service === "stats/double" && x.rate > 0 && x.callRate > 0 && x.latency !== null));
    assert.ok((busy.latency as number) > 0);
    assert.ok(busy.bandwidth > 0);
  } finally {
    flowing = false;
    await loop;
  }
  await eventually("the rate back to 0", () => server.stats().services.find((x) => x.service === "stats/double" && x.rate === 0 && x.latency === null));
  // A burst: one timed request a millisecond at most (the burst's first is one), whatever the rate.
  const before = { ...remote.counters };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 400 }, (_, n) => remote.request({ n })));
  const elapsed = performance.now() - t0;
  const timed = remote.counters.timed - before.timed;
  assert.ok(timed >= 1 && timed <= Math.floor(elapsed) + 1, `${timed} of 400 timed in ${elapsed.toFixed(1)} ms`);
  assert.ok(remote.counters.latency - before.latency > 0);
  // the snapshot lists the service's ports; a closed client is forgotten by both
  const snap = server.snapshot();
  assert.deepEqual(snap.services, ["stats/double"]);
  assert.deepEqual(snap.servers.map((x) => x.id), [srv.id]);
  assert.deepEqual(snap.clients.map((x) => x.id).sort(), [local.id, remote.id].sort());
  await remote.close();
  await eventually("one client left", () => server.stats().services.find((x) => x.service === "stats/double" && x.clients === 1 && x.links.length === 1));
});

test("rpc stats: a service with no server counts the failed requests of its clients", async () => {
  await using server = await GraphServer.start({ port: 0 });
  await using node = await connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
  const client = await node.client("stats/nobody");
  for (let i = 0; i < 3; i++) await assert.rejects(client.request(1), { code: "ERR_PLEXUS_NO_SERVER" });
  const s = await eventually("3 errors", () => server.stats().services.find((x) => x.service === "stats/nobody" && x.errors === 3));
  assert.equal(s.servers, 0);
  assert.equal(s.clients, 1);
  assert.equal(s.requests, 0);
});

test("rpc stats: a malformed report is refused with a typed error and the node keeps its connection", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const client = await GraphClient.connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
  try {
    await assert.rejects(client.request("stats.report", { servers: "many" }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { clients: [{ requests: 1 }] }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { servers: [{ id: "r1", requests: Infinity }] }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { clients: [{ id: "c1", links: [{ server: "r1", transport: "smoke-signal" }] }] }), { code: "ERR_PLEXUS_PROTOCOL" });
    await assert.rejects(client.request("stats.report", { clients: [{ id: "c1", links: [{ transport: "shm" }] }] }), { code: "ERR_PLEXUS_PROTOCOL" });
    // ports of other nodes are ignored, the connection still serves
    await client.request("stats.report", { servers: [{ id: "not-mine", requests: 5, errors: 0, bytes: 5, inFlight: 0 }] });
    assert.deepEqual((await client.request<{ services: unknown[] }>("stats")).services, []);
  } finally {
    await client.close();
  }
});

test("rpc stats book: rates, error rate and mean latency from successive reports; stale ports count 0", () => {
  const book = new StatsBook();
  const endpoints = { host: "h", pid: 1, threadId: 0 };
  const snap = {
    nodes: [],
    topics: [],
    publishers: [],
    subscribers: [],
    edges: [],
    segments: [],
    servers: [{ id: "r", service: "svc", node: "n", endpoints, inPlace: false }],
    clients: [{ id: "c", service: "svc", node: "m" }],
    services: ["svc"],
    remote: [],
  };
  book.report({ servers: [{ id: "r", requests: 100, errors: 0, bytes: 0, inFlight: 0 }], clients: [{ id: "c", requests: 100, errors: 10, bytes: 1000, latency: 90, inFlight: 1, links: [{ server: "r", transport: "tcp" }] }] }, () => true, 10_000);
  book.report({ servers: [{ id: "r", requests: 300, errors: 0, bytes: 0, inFlight: 2 }], clients: [{ id: "c", requests: 300, errors: 20, bytes: 3000, latency: 470, inFlight: 3, links: [{ server: "r", transport: "tcp" }] }] }, () => true, 10_500);
  const s = book.topics(snap, 10_600).services[0];
  assert.equal(s.service, "svc");
  assert.equal(s.rate, 400);
  assert.equal(s.callRate, 400);
  assert.equal(s.errorRate, 20);
  assert.equal(s.bandwidth, 4000);
  assert.equal(s.latency, 2); // (470 - 90) ms over 190 answered requests
  // With `timed`, the mean is over the timed requests only.
  book.report({ clients: [{ id: "c", requests: 500, errors: 20, bytes: 5000, latency: 470, timed: 10, inFlight: 0, links: [{ server: "r", transport: "tcp" }] }] }, () => true, 11_000);
  book.report({ clients: [{ id: "c", requests: 700, errors: 20, bytes: 7000, latency: 490, timed: 15, inFlight: 0, links: [{ server: "r", transport: "tcp" }] }] }, () => true, 11_500);
  assert.equal(book.topics(snap, 11_600).services[0].latency, 4); // (490 - 470) ms over 5 timed of 200 answered
  assert.equal(s.requests, 300);
  assert.equal(s.errors, 20);
  assert.equal(s.inFlight, 3);
  assert.deepEqual(s.links, [{ client: "c", server: "r", transport: "tcp" }]);
  // a report with a malformed rpc part records nothing, not even its well-formed part
  const half = { ...snap, topics: ["t"], publishers: [{ id: "p", topic: "t", node: "n", endpoints }] };
  assert.throws(() => book.report({ publishers: [{ id: "p", messages: 5, bytes: 5 }], clients: [{ id: "c", requests: -1 }] }, () => true, 10_550), { code: "ERR_PLEXUS_PROTOCOL" });
  assert.equal(book.topics(half, 10_600).topics[0].messages, 0);
  assert.equal(book.topics(snap, 10_600).services[0].requests, 300);
  const stale = book.topics(snap, 20_000).services[0];
  assert.equal(stale.rate, 0);
  assert.equal(stale.latency, null);
  book.prune(() => false);
  assert.equal(book.topics(snap, 10_600).services[0].requests, 0);
});
