/**
 * `close()` and `linger`: a handle that waits on close for what it already accepted — a
 * publisher's TCP subscribers, an rpc server's requests being handled, a queue's pending puts —
 * waits at most its `linger` (default 2 s; `close({ linger: 0 })`: not at all), then drops the
 * rest and says so with a `PLEXUS_LINGER` process warning. The TCP case across real processes:
 * the subscriber process is stopped with SIGSTOP, so nothing it was sent is ever taken.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { ClosedError, connect, GraphServer, queue, TcpSender, type Node } from "../src/index.js";
import { message } from "./conformance/suite.js";
import { fixture, type Child } from "./helpers/child.js";
import { eventually } from "./helpers/eventually.js";

const graph = await GraphServer.start({ port: 0 });
const address = `127.0.0.1:${graph.address.port}`;
after(() => graph.close());

/** The process warnings emitted while `run` runs. */
async function warningsDuring(run: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const onWarning = (w: Error): void => void seen.push(w);
  process.on("warning", onWarning);
  try {
    await run();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  } finally {
    process.off("warning", onWarning);
  }
  return seen;
}

const lingerWarnings = (ws: Error[]): Error[] => ws.filter((w) => (w as { code?: string }).code === "PLEXUS_LINGER");

/** Open TCP connections of this process. */
const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

/**
 * A subscriber process on `topic` over TCP, linked to a publisher of `node` (made with `opts`),
 * then stopped (SIGSTOP) after that publisher sent it a few messages it will never take.
 */
async function stoppedSubscriber(node: Node, topic: string, linger?: number): Promise<{ child: Child; pub: Awaited<ReturnType<Node["publisher"]>>; before: number }> {
  const child = fixture("pubsub-peer", { role: "sub", address, topic, count: 1e9, transport: "tcp" });
  assert.equal(await child.line(), "ready");
  const before = sockets();
  const pub = await node.publisher(topic, { transport: "tcp", linger });
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  child.proc.kill("SIGSTOP");
  for (let seq = 1; seq <= 20; seq++) await pub.publish({ seq, from: "p", data: new Float64Array(8).fill(seq) }, { timeout: 5000 });
  after(() => child.proc.kill("SIGKILL"));
  return { child, pub, before };
}

test("a tcp sender whose receiver process takes everything: close() resolves once it took the end of the stream (its connection is gone), without a warning", async () => {
  const before = sockets(); // (the first test: no other test's connection is closing meanwhile)
  const sender = await TcpSender.create();
  const reader = fixture("stream-reader", { address: sender.address, sizes: [64] });
  assert.equal(await reader.line(), "joined");
  while (sender.receivers < 1) await new Promise((r) => setTimeout(r, 5));
  for (let seq = 1; seq <= 20; seq++) await sender.send(message(seq, 64));
  const warnings = await warningsDuring(() => sender.close());
  assert.deepEqual(lingerWarnings(warnings), []);
  // Not in the background: the receiver has taken everything and hung up when close() resolves.
  assert.equal(sockets(), before);
  assert.deepEqual(JSON.parse(await reader.line()), { count: 20, errors: [] });
  assert.equal(await reader.exited, 0);
});

test("a TCP publisher whose subscriber process is stopped: close() waits at most its linger, cuts the subscriber off and warns what it dropped", async () => {
  const node = await connect({ address, embedded: false });
  try {
    const { child, pub, before } = await stoppedSubscriber(node, "linger-default", 500);
    let took = 0;
    const warnings = await warningsDuring(async () => {
      const t0 = performance.now();
      await pub.close();
      took = performance.now() - t0;
    });
    assert.ok(took < 500 + 2000, `close() took ${Math.round(took)} ms; the linger is 500 ms`);
    const [w, ...more] = lingerWarnings(warnings);
    assert.ok(w, `a PLEXUS_LINGER warning; got ${warnings.map(String).join("; ")}`);
    assert.deepEqual(more, []);
    assert.match(w.message, /^plexus: the publisher on "linger-default" closed: 1 receiver had not taken the end of the stream within the linger of 500 ms and was cut off; \d+ bytes sent to it were not acknowledged and may be lost$/);
    // Cut off: the connection is gone (it no longer keeps the process alive; before, for 10 s).
    await eventually(`the subscriber's connection closed (${sockets()} sockets, ${before} before)`, () => sockets() === before, 1000);
    child.proc.kill("SIGKILL");
  } finally {
    await node.close();
  }
});

test("node.close({ linger: 0 }): a TCP publisher with a stopped subscriber closes at once, and warns what it dropped", async () => {
  const node = await connect({ address, embedded: false });
  const { child, before } = await stoppedSubscriber(node, "linger-force");
  let took = 0;
  const warnings = await warningsDuring(async () => {
    const t0 = performance.now();
    await node.close({ linger: 0 });
    took = performance.now() - t0;
  });
  // The publisher's own linger (2 s by default) is not waited.
  assert.ok(took < 1500, `close({ linger: 0 }) took ${Math.round(took)} ms`);
  const [w] = lingerWarnings(warnings);
  assert.ok(w, `a PLEXUS_LINGER warning; got ${warnings.map(String).join("; ")}`);
  assert.match(w.message, /the publisher on "linger-force" closed: 1 receiver had not taken the end of the stream within the linger of 0 ms and was cut off; \d+ bytes/);
  // The subscriber's connection is gone, and the node's graph connection (both of its ends).
  await eventually(`the connections closed (${sockets()} sockets, ${before} before)`, () => sockets() <= before - 2, 1000);
  child.proc.kill("SIGKILL");
});

test("an rpc server whose handler never answers: close() waits at most its linger, then drops the answer and warns", async () => {
  const node = await connect({ address, embedded: false });
  try {
    const server = await node.server("linger-rpc", () => new Promise(() => {}), { linger: 200 });
    const client = await node.client("linger-rpc", { transport: "shm" });
    const pending = client.request(1, { timeout: 30_000 }).catch((e: unknown) => e);
    while (server.inFlight < 1) await new Promise((r) => setTimeout(r, 5));
    let took = 0;
    const warnings = await warningsDuring(async () => {
      const t0 = performance.now();
      await server.close();
      took = performance.now() - t0;
    });
    assert.ok(took < 200 + 2000, `close() took ${Math.round(took)} ms; the linger is 200 ms`);
    const [w] = lingerWarnings(warnings);
    assert.ok(w, `a PLEXUS_LINGER warning; got ${warnings.map(String).join("; ")}`);
    assert.equal(w.message, 'plexus: the server of "linger-rpc" closed with 1 request still being handled after the linger of 200 ms; its answer is dropped');
    assert.ok((await pending) instanceof Error, "the request did not get an answer");
    await client.close();
  } finally {
    await node.close();
  }
});

test("a queue client with a put the server never acknowledges: close({ linger }) waits that long, rejects the put and warns", async () => {
  await using server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable" });
  const client = await queue.client({ url: server.url, mode: "reliable" });
  const put = client.put({ n: 1 }).catch((e: unknown) => e);
  await server.get({ timeout: 5000 }); // taken, never released: never acknowledged
  let took = 0;
  const warnings = await warningsDuring(async () => {
    const t0 = performance.now();
    await client.close({ linger: 200 });
    took = performance.now() - t0;
  });
  assert.ok(took < 200 + 2000, `close({ linger: 200 }) took ${Math.round(took)} ms (the default linger is 2000 ms)`);
  assert.ok((await put) instanceof ClosedError);
  const [w] = lingerWarnings(warnings);
  assert.ok(w, `a PLEXUS_LINGER warning; got ${warnings.map(String).join("; ")}`);
  assert.match(w.message, /^plexus: the queue client of 127\.0\.0\.1:\d+ closed with 1 put not acknowledged within the linger of 200 ms; it rejects with ClosedError$/);
});

test("linger is checked: a negative or non-numeric linger is an InvalidArgumentError", async () => {
  const node = await connect({ address, embedded: false });
  try {
    await assert.rejects(node.publisher("linger-bad", { linger: -1 }), /^InvalidArgumentError: node\.publisher: option "linger" must be a number in 0\.\.2147483647, got -1$/);
    await assert.rejects(node.server("linger-bad", () => 1, { linger: Number.NaN }), /node\.server: option "linger" must be a number in 0\.\.2147483647, got NaN/);
    await assert.rejects(queue.server({ url: "tcp://127.0.0.1:0", linger: "soon" as unknown as number }), /queue\.server: option "linger" must be a number in 0\.\.2147483647, got "soon"/);
    const pub = await node.publisher("linger-ok", { transport: "tcp" });
    await assert.rejects(pub.close({ linger: -5 }), /close: option "linger" must be a number in 0\.\.2147483647, got -5/);
    await pub.close({ linger: 0 });
  } finally {
    await node.close();
  }
});
