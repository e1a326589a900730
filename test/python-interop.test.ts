/**
 * The Python package (python/, importable as `plexus`) against this one, across real processes:
 * its own tests (pytest, and mypy over its type hints) in the virtual environment that
 * scripts/ensure-python.mjs makes; Node publisher -> Python subscriber (shm and tcp, numpy
 * arrays that are views into the ring, checked by content and by address) and the reverse
 * (values and loans), mixed fan-out, topic edges followed; request/response both ways over shm
 * and tcp with the typed errors; acknowledged queues both ways in both modes; TLS; the asyncio
 * forms; Python peers killed with SIGKILL (PeerDeadError on the Node side, reader slots freed,
 * segments unlinked); malformed frames refused both ways.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect as netConnect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { PeerDeadError, queue, RemoteError } from "../src/index.js";
import { child, fixture, remainingLines, type Child } from "./helpers/child.js";
import { testCerts } from "./helpers/tcp-certs.js";
import { graph, readWelcomeFrame, rpcFrame, tcpHello, until } from "./helpers/rpc.js";
import { FrameParser } from "../src/net/frame-parser.js";
import { decode, encode } from "../src/codec/index.js";
import { NetType } from "../src/net/frame.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const python = `${root}.venv/bin/python`;
const peerScript = `${root}python/tests/peer.py`;

if (!existsSync(python)) {
  // npm test makes it first (scripts/ensure-python.mjs); a single file run may come before
  const made = spawnSync(process.execPath, [`${root}scripts/ensure-python.mjs`], { stdio: "inherit" });
  assert.equal(made.status, 0, "scripts/ensure-python.mjs could not make the Python environment");
}

const { node, address, server: graphServer } = await graph();
let n = 0;
const fresh = (base: string): string => `${base}-${++n}`;

/** Starts the Python peer in `role`; resolves once it said "ready" (roles that serve or publish). */
async function peer(role: string, args: Record<string, unknown>, ready = true): Promise<Child> {
  const c = child(`python ${role}`, python, [peerScript, JSON.stringify({ role, ...args })], { env: { PLEXUS_GRAPH: address }, stdin: "pipe" });
  if (ready) assert.equal(JSON.parse(await c.line()), "ready");
  return c;
}

async function json(c: Child): Promise<Record<string, unknown>> {
  return JSON.parse(await c.line()) as Record<string, unknown>;
}

test("the Python package's own tests pass (pytest)", () => {
  const pytest = spawnSync(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], { cwd: `${root}python`, encoding: "utf8" });
  assert.equal(pytest.status, 0, `pytest failed:\n${pytest.stdout}\n${pytest.stderr}`);
  assert.match(pytest.stdout, /\d+ passed/);
  assert.doesNotMatch(pytest.stdout, /skipped|xfail/);
});

test("the Python package's type hints check (mypy --strict)", () => {
  const mypy = spawnSync(python, ["-m", "mypy", "--no-incremental", "--cache-dir=/dev/null"], { cwd: `${root}python`, encoding: "utf8" });
  assert.equal(mypy.status, 0, `mypy failed:\n${mypy.stdout}\n${mypy.stderr}`);
});

for (const transport of ["shm", "tcp"] as const) {
  test(`Node publisher -> Python subscriber over ${transport}: typed arrays arrive as numpy arrays, read-only${transport === "shm" ? " views into the ring" : ""}`, async () => {
    const topic = fresh("py-sub");
    await using pub = await node.publisher<{ i: number; v: Float64Array; u: Uint16Array; b: Uint8Array; d: Date; m: Map<number, string>; big: bigint }>(topic);
    const sub = await peer("subscribe", { topic, count: 3, transport });
    await pub.waitForSubscribers(1, { timeout: 10_000 });
    for (let i = 0; i < 3; i++) {
      await pub.publish({ i, v: Float64Array.of(i, 1.5, -2), u: Uint16Array.of(65535, i), b: Uint8Array.of(9), d: new Date(86_400_000), m: new Map([[1, "one"]]), big: 2n ** 60n });
    }
    for (let i = 0; i < 3; i++) {
      const got = await json(sub);
      assert.equal(got.sequence, i + 1);
      assert.deepEqual(got.links, [{ publisher: pub.id, transport }]);
      const value = got.value as Record<string, unknown>;
      assert.deepEqual(value.v, { dtype: "float64", values: [i, 1.5, -2], writeable: false });
      assert.deepEqual(value.u, { dtype: "uint16", values: [65535, i], writeable: false });
      assert.deepEqual(value.b, { dtype: "uint8", values: [9], writeable: false });
      assert.equal(value.i, i);
      assert.equal(value.big, 2 ** 60);
      assert.equal(value.d, "1970-01-02T00:00:00+00:00", "a Date arrives as an aware datetime (UTC)");
      assert.deepEqual(value.m, { "1": "one" }, "a Map arrives as a dict (keys shown as JSON strings)");
      // the array's memory is inside the publisher's ring on shm: zero-copy, checked by address
      assert.equal(got.inShm, transport === "shm");
    }
    assert.equal(await sub.exited, 0, sub.stderr());
  });
}

test("mixed fan-out: a Node subscriber and a Python subscriber read the same ring of a Node publisher", async () => {
  const topic = fresh("py-fan");
  await using pub = await node.publisher<{ i: number; v: Float64Array }>(topic);
  await using local = await node.subscriber<{ i: number; v: Float64Array }>(topic, { transport: "shm" });
  const python = await peer("subscribe", { topic, count: 2 });
  await pub.waitForSubscribers(2, { timeout: 10_000 });
  for (let i = 0; i < 2; i++) await pub.publish({ i, v: Float64Array.of(i, -i) });
  for (let i = 0; i < 2; i++) {
    const got = await json(python);
    assert.deepEqual((got.value as { v: unknown }).v, { dtype: "float64", values: [i, -i], writeable: false });
    assert.equal(got.inShm, true);
    const s = await local.receive({ timeout: 5000 });
    assert.ok(s !== null);
    assert.deepEqual([...s.value.v], [i, -i]);
    s.release();
  }
  assert.deepEqual(local.transports, [{ publisher: pub.id, transport: "shm" }]);
  assert.equal(await python.exited, 0, python.stderr());
});

for (const transport of ["shm", "tcp"] as const) {
  test(`Python publisher -> Node subscriber over ${transport}: numpy arrays arrive as the matching typed arrays`, async () => {
    const topic = fresh("py-pub");
    await using sub = await node.subscriber<{ i: number; v: Float64Array; n: Int32Array; b: Uint8Array; big: bigint; text: string }>(topic);
    const pub = await peer("publish", { topic, count: 3, transport });
    const seen = [];
    for await (const s of sub) {
      assert.deepEqual(sub.transports, [{ publisher: s.publisher, transport }]);
      // over shm the array is a view into the Python publisher's ring (a SharedArrayBuffer), no copy
      assert.equal(s.value.v.buffer instanceof SharedArrayBuffer, transport === "shm");
      seen.push({ sequence: s.sequence, i: s.value.i, v: s.value.v, n: s.value.n, b: s.value.b, big: s.value.big, text: s.value.text });
      if (seen.length === 3) break;
    }
    // the Python node reports its ports' counters (stats.report) like a Node one
  await until(() => graphServer.stats().topics.some((t) => t.topic === topic && t.messages === 3 && t.bytes > 0), 5000);
  for (const [i, s] of seen.entries()) {
      assert.equal(s.sequence, i + 1);
      assert.equal(s.i, i);
      assert.ok(s.v instanceof Float64Array);
      assert.deepEqual([...s.v], [0.5, i + 0.5, 2 * i + 0.5, 3 * i + 0.5]);
      assert.ok(s.n instanceof Int32Array);
      assert.deepEqual([...s.n], [0, 1, 2].map((k) => k - i));
      assert.deepEqual([...s.b], [i, 255]);
      assert.equal(s.big, 2n ** 40n + BigInt(i));
      assert.equal(s.text, "héllo");
    }
    pub.proc.stdin?.end();
    assert.equal(await pub.exited, 0, pub.stderr());
  });

  test(`a malformed message from a Python publisher over ${transport} is skipped by the Node subscriber, which serves on`, async () => {
    const topic = fresh("py-bad");
    await using sub = await node.subscriber<{ i: number }>(topic);
    const pub = await peer("publish", { topic, count: 1, malformed: true, transport });
    for await (const s of sub) {
      assert.equal(s.value.i, 0);
      assert.equal(s.sequence, 2, "message 1 was the malformed one");
      break;
    }
    pub.proc.stdin?.end();
    assert.equal(await pub.exited, 0, pub.stderr());
  });
}

for (const transport of ["shm", "tcp"] as const) {
  test(`Node client -> Python server over ${transport}: answers with arrays, the handler's exception as RemoteError with its code and class`, async () => {
    const service = fresh("py-svc");
    const server = await peer("serve", { service });
    await using client = await node.client<Record<string, unknown>, Record<string, unknown>>(service, { transport });
    await until(() => client.servers.length === 1);
    assert.deepEqual(client.transports.map((t) => t.transport), [transport]);
    const answers = await Promise.all(Array.from({ length: 16 }, (_, k) => client.request({ v: Float64Array.of(k, 2, 3) })));
    for (const [k, a] of answers.entries()) {
      assert.equal(a.sum, k + 5);
      assert.equal(a.dtype, "float64");
      assert.ok(a.twice instanceof Float64Array);
      assert.deepEqual([...a.twice], [2 * k, 4, 6]);
    }
    await assert.rejects(client.request({ fail: true }), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteCode, "E_PY_APP");
      assert.equal(err.remoteName, "AppError");
      assert.equal(err.message, "the Python handler refused");
      return true;
    });
    server.proc.stdin?.end();
    assert.equal(await server.exited, 0, server.stderr());
  });
}

test("Python client -> Node server: answers, RemoteError, and NoServerError for a service without servers", async () => {
  const service = fresh("node-svc");
  await using server = await node.server(service, (v: { v?: Float64Array; fail?: boolean }) => {
    if (v.fail) throw Object.assign(new Error("the Node handler refused"), { code: "E_NODE_APP" });
    return { sum: v.v?.reduce((a, b) => a + b, 0), back: v.v };
  });
  const c = await peer("call", { service, requests: [{ v: [1, 2, 3.5] }, { fail: true }] }, false);
  assert.deepEqual(await json(c), { links: ["shm"] }, "the Python client reaches a server of its host over shared memory");
  assert.deepEqual(await json(c), { ok: { sum: 6.5, back: { dtype: "float64", values: [1, 2, 3.5], writeable: false } } });
  assert.deepEqual(await json(c), { error: "RemoteError", code: "ERR_PLEXUS_REMOTE", remoteCode: "E_NODE_APP", remoteName: "Error", message: "the Node handler refused" });
  assert.equal(await c.exited, 0, c.stderr());
  const none = await peer("call", { service: fresh("nobody"), requests: [{ a: 1 }], wait: false }, false);
  assert.deepEqual(await json(none), { error: "NoServerError", code: "ERR_PLEXUS_NO_SERVER", message: `no server for 'nobody-${n}'` });
  assert.equal(await none.exited, 0, none.stderr());
  void server;
});

for (const transport of ["shm", "tcp"] as const) {
  test(`Python client -> Node server over ${transport}: eight threads with requests in flight at once, each gets its own answers`, async () => {
    const service = fresh("node-threads");
    await using server = await node.server(service, async (v: { k: number; i: number }) => {
      await new Promise((r) => setTimeout(r, v.i % 3)); // answers out of order
      return { got: v };
    });
    const c = await peer("call-threads", { service, transport, threads: 8, each: 50 }, false);
    assert.deepEqual(await json(c), { links: [transport], wrong: 0, requests: 400 });
    assert.equal(await c.exited, 0, c.stderr());
    void server;
  });
}

test("a Python server killed with SIGKILL mid-request: the Node client gets PeerDeadError, the graph drops its server", async () => {
  const service = fresh("py-kill");
  const server = await peer("serve", { service });
  await using client = await node.client<Record<string, unknown>, unknown>(service);
  await until(() => client.servers.length === 1);
  const pending = client.request({ sleep: 30 }, { timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 200));
  server.proc.kill("SIGKILL");
  // PeerDeadError, not the request's TimeoutError (20 s): the death is seen, not waited out
  await assert.rejects(pending, PeerDeadError);
  const gone = async (): Promise<boolean> => {
    const snap = await node.snapshot();
    return !snap.servers.some((s) => s.service === service);
  };
  for (let i = 0; i < 200 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(await gone(), "the GraphServer removed the dead node's server");
  assert.equal(await server.exited, "SIGKILL");
});

test("a Python publisher killed with SIGKILL: its ring segment is unlinked when the GraphServer sees its node die", async () => {
  const topic = fresh("py-killed-pub");
  await using sub = await node.subscriber<{ i: number }>(topic);
  const pub = await peer("publish", { topic, count: 1, transport: "shm" });
  for await (const s of sub) {
    assert.equal(s.value.i, 0);
    break;
  }
  const snap = await node.snapshot();
  const segment = snap.segments.find((s) => s.name.startsWith(`/plexus-${pub.proc.pid}-`));
  assert.ok(segment !== undefined, "the Python publisher registered its segment");
  assert.ok(existsSync(`/dev/shm${segment.name}`));
  pub.proc.kill("SIGKILL");
  assert.equal(await pub.exited, "SIGKILL");
  await until(() => !existsSync(`/dev/shm${segment.name}`));
  await until(() => sub.publishers.length === 0);
});

test("the asyncio forms across processes: async for, await publish, a coroutine handler", async () => {
  const topic = fresh("py-aio");
  const service = fresh("py-aio-svc");
  await using ping = await node.publisher<{ i: number; v: Float64Array }>(`${topic}/ping`);
  await using pong = await node.subscriber<{ echo: number; v: Float64Array }>(`${topic}/pong`);
  const p = await peer("async-echo", { topic, service, count: 3 });
  await ping.waitForSubscribers(1, { timeout: 10_000 });
  await until(() => pong.publishers.length === 1);
  for (let i = 0; i < 3; i++) {
    await ping.publish({ i, v: Float64Array.of(i, 0.5) });
    const s = await pong.receive({ timeout: 5000 });
    assert.ok(s !== null);
    assert.equal(s.value.echo, i);
    assert.deepEqual([...s.value.v], [2 * i, 1]);
    s.release();
  }
  await using client = await node.client<{ n: number }, { async: boolean; n: number }>(service);
  await until(() => client.servers.length === 1);
  assert.deepEqual(await Promise.all([1, 2, 3].map((n) => client.request({ n }))), [1, 2, 3].map((n) => ({ async: true, n: n + 1 })));
  p.proc.stdin?.end();
  assert.equal(await p.exited, 0, p.stderr());
});

for (const transport of ["shm", "tcp"] as const) {
  test(`a Python publisher's loans over ${transport}: bytes written in place arrive as Uint8Arrays of the committed length`, async () => {
    const topic = fresh("py-loan");
    await using sub = await node.subscriber<Uint8Array>(topic);
    const pub = await peer("publish", { topic, count: 3, loan: true, transport });
    for (let i = 0; i < 3; i++) {
      const s = await sub.receive({ timeout: 10_000 });
      assert.ok(s !== null && s.value instanceof Uint8Array);
      assert.equal(s.sequence, i + 1);
      assert.deepEqual([...s.value], new Array<number>(16 + i).fill(i));
      assert.equal(s.value.buffer instanceof SharedArrayBuffer, transport === "shm", "over shm, a view of the ring the Python process wrote");
      s.release();
    }
    pub.proc.stdin?.end();
    assert.equal(await pub.exited, 0, pub.stderr());
  });
}

test("a Python subscriber follows upstream changes: a topic edge added links it to the publisher, removed unlinks it", async () => {
  const from = fresh("py-edge-a");
  const to = fresh("py-edge-b");
  await using pub = await node.publisher<{ n: number }>(from);
  const sub = await peer("subscribe", { topic: to, count: 1 });
  await node.connect(from, to); // the GraphServer notifies the Python node before it answers
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  await pub.publish({ n: 7 });
  const got = await json(sub);
  assert.deepEqual(got.value, { n: 7 });
  assert.deepEqual(got.links, [{ publisher: pub.id, transport: "shm" }]);
  assert.equal(await sub.exited, 0, sub.stderr());
  await node.disconnect(from, to);
});

test("a Python subscriber killed with SIGKILL while it holds messages: its reader slot is freed and a block publisher goes on", async () => {
  const topic = fresh("py-killed-sub");
  await using pub = await node.publisher<{ n: number; pad: Uint8Array }>(topic, { capacity: 64 * 1024 });
  const sub = await peer("subscribe", { topic, count: 1_000_000, hold: true });
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  await pub.publish({ n: 0, pad: new Uint8Array(1000) });
  await json(sub); // it holds that message (and never releases)
  sub.proc.kill("SIGKILL");
  assert.equal(await sub.exited, "SIGKILL");
  // a full ring would block this publisher for good if the dead reader's slot stayed
  for (let n = 1; n <= 200; n++) await pub.publish({ n, pad: new Uint8Array(1000) }, { timeout: 5000 });
  await until(() => pub.subscribers === 0);
});

/** A raw tcp request/response connection to `port` that collects the answers (frames). */
async function rawRpc(port: number): Promise<{ socket: Socket; answers: { type: number; id: number; body: Buffer }[]; closed: Promise<void> }> {
  const socket = netConnect({ host: "127.0.0.1", port });
  await new Promise<void>((r) => socket.once("connect", () => r()));
  socket.write(tcpHello());
  const welcome = await readWelcomeFrame(socket);
  assert.equal(welcome.header.a, 0, "joined");
  const answers: { type: number; id: number; body: Buffer }[] = [];
  const parser = new FrameParser({ maxMessage: 1 << 20, check: () => "ok" }, (h, f) => {
    if (h.type !== NetType.Ping) answers.push({ type: h.type, id: h.a, body: Buffer.from(f.subarray(16)) });
  });
  if (welcome.rest.length > 0) parser.push(welcome.rest);
  socket.on("data", (d: Buffer) => parser.push(d));
  socket.resume();
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  return { socket, answers, closed };
}

test("malformed frames to a Python server: an undecodable request gets ERR_PLEXUS_PROTOCOL and the server serves on; a bad header ends the connection", async () => {
  const service = fresh("py-malformed");
  const server = await peer("serve", { service });
  const snap = await node.snapshot();
  const port = snap.servers.find((s) => s.service === service)?.endpoints.tcp?.port;
  assert.ok(port !== undefined, "the Python server registered a tcp endpoint");
  const conn = await rawRpc(port);
  conn.socket.write(rpcFrame(1, 7, Buffer.from("PLXF\x01\x02\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00", "latin1")));
  conn.socket.write(rpcFrame(1, 8, encode({ a: 1 })));
  await until(() => conn.answers.length === 2);
  const byId = new Map(conn.answers.map((a) => [a.id, a]));
  assert.equal(byId.get(7)?.type, 3, "an error answer");
  assert.equal((decode(byId.get(7)!.body) as { code: string }).code, "ERR_PLEXUS_PROTOCOL");
  assert.equal(byId.get(8)?.type, 2);
  assert.deepEqual(decode(byId.get(8)!.body), { echo: { a: 1 } });
  conn.socket.write(rpcFrame(9, 9)); // a type no request/response peer sends
  await conn.closed;
  server.proc.stdin?.end();
  assert.equal(await server.exited, 0, server.stderr());
});

test("malformed frames from Python to a Node server: the undecodable request gets ERR_PLEXUS_PROTOCOL, the next is answered", async () => {
  const service = fresh("node-malformed");
  await using server = await node.server(service, (v: unknown) => ({ got: v }));
  const c = await peer("malformed-call", { service }, false);
  const answers = [await json(c), await json(c)].sort((x, y) => (x.id as number) - (y.id as number));
  assert.deepEqual(answers, [
    { id: 7, type: 3, remoteCode: "ERR_PLEXUS_PROTOCOL", value: null },
    { id: 8, type: 2, remoteCode: null, value: { got: { after: true } } },
  ]);
  assert.equal(await c.exited, 0, c.stderr());
  void server;
});

for (const mode of ["fast", "reliable"] as const) {
  test(`queue, ${mode}: a Python client puts to a Node server, which answers that client`, async () => {
    await using server = await queue.server<{ job: number; v: Float64Array }, { n: number }>({ url: "tcp://127.0.0.1:0", mode });
    const c = await peer("queue-client", { url: server.url, mode, puts: 2, gets: 2 }, false);
    const { id } = await json(c);
    for (let i = 0; i < 2; i++) {
      const msg = await server.get({ timeout: 10_000 });
      assert.equal(msg.value.job, i);
      assert.ok(msg.value.v instanceof Float64Array);
      assert.deepEqual([...msg.value.v], [i, i + 1, i + 2]);
      assert.equal(msg.peer, id, "the Python client's identity is the peer");
      if (mode === "reliable") {
        // the Python put returns only once the message was released here
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(c.buffered(), 0, "the put has not returned before the release");
      }
      msg.release();
      assert.deepEqual(await json(c), { put: i });
    }
    for (let i = 0; i < 2; i++) await server.put({ n: i }, id as string);
    assert.deepEqual(await json(c), { got: { n: 0 }, peer: "server" });
    assert.deepEqual(await json(c), { got: { n: 1 }, peer: "server" });
    assert.equal(await c.exited, 0, c.stderr());
  });

  test(`queue, ${mode}: a Node client puts to a Python server, which answers it with a numpy array`, async () => {
    const s = await peer("queue-server", { mode, gets: 2 }, false);
    const { url } = await json(s);
    await using client = await queue.client<{ n: number; pad: Uint8Array }, { reply: number; a: Int16Array }>({ url: url as string, mode });
    // (reliable: the second put goes once the server released the first, one slot)
    const puts = [client.put({ n: 1, pad: new Uint8Array(3).fill(9) }), client.put({ n: 2, pad: new Uint8Array(0) })];
    for (const n of [1, 2]) {
      const got = await json(s);
      assert.equal((got.got as { n: number }).n, n);
      assert.equal(got.peer, client.id);
      using reply = await client.get({ timeout: 10_000 });
      assert.equal(reply.value.reply, 2 * n);
      assert.ok(reply.value.a instanceof Int16Array);
      assert.deepEqual([...reply.value.a], [n]);
    }
    await Promise.all(puts);
    s.proc.stdin?.end();
    assert.equal(await s.exited, 0, s.stderr());
  });
}

/** The test certificates as PEM files the Python peer can read (removed after the file). */
function pemFiles(): { cafile: string; certfile: string; keyfile: string } {
  const dir = mkdtempSync(join(tmpdir(), "plexus-py-tls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = testCerts();
  const files = { cafile: join(dir, "ca.pem"), certfile: join(dir, "server.pem"), keyfile: join(dir, "server.key") };
  writeFileSync(files.cafile, certs.ca);
  writeFileSync(files.certfile, certs.serverCert);
  writeFileSync(files.keyfile, certs.serverKey);
  return files;
}

test("TLS: a Python client of a Node queue server at tls://, a Node client of a Python one, a Python subscriber of a TLS publisher", async () => {
  const files = pemFiles();
  const certs = testCerts();
  // Python client -> Node server
  await using qs = await queue.server<{ job: number }, unknown>({ url: "tls://127.0.0.1:0", tls: { key: certs.serverKey, cert: certs.serverCert } });
  const c = await peer("queue-client", { url: qs.url, mode: "fast", puts: 1, gets: 0, cafile: files.cafile }, false);
  await json(c); // its id
  const m = await qs.get({ timeout: 10_000 });
  assert.equal(m.value.job, 0);
  m.release();
  assert.deepEqual(await json(c), { put: 0 });
  assert.equal(await c.exited, 0, c.stderr());
  // a Python client that does not trust the server's authority is refused
  const untrusted = await peer("queue-client", { url: qs.url, mode: "fast", puts: 1, gets: 0 }, false);
  assert.notEqual(await untrusted.exited, 0);
  assert.match(untrusted.stderr(), /AccessDeniedError: the TLS handshake with the queue server/);
  // Node client -> Python server
  const s = await peer("queue-server", { mode: "fast", gets: 1, ...files }, false);
  const { url } = await json(s);
  assert.match(url as string, /^tls:\/\//);
  await using client = await queue.client<{ n: number }, { reply: number }>({ url: url as string, tls: { ca: certs.ca } });
  await client.put({ n: 4 });
  assert.equal(((await json(s)).got as { n: number }).n, 4);
  using reply = await client.get({ timeout: 10_000 });
  assert.equal(reply.value.reply, 8);
  s.proc.stdin?.end();
  assert.equal(await s.exited, 0, s.stderr());
  // Python subscriber -> a Node publisher that serves TLS
  const topic = fresh("py-tls");
  await using pub = await node.publisher<{ n: number }>(topic, { transport: "tcp", tcp: { host: "127.0.0.1", tls: { key: certs.serverKey, cert: certs.serverCert } } });
  const sub = await peer("subscribe", { topic, count: 1, cafile: files.cafile });
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  await pub.publish({ n: 1 });
  const got = await json(sub);
  assert.deepEqual(got.value, { n: 1 });
  assert.deepEqual(got.links, [{ publisher: pub.id, transport: "tcp" }]);
  assert.equal(await sub.exited, 0, sub.stderr());
});

/** The next PLEXUS_LINK process warning (a port that could not reach a publisher or server). */
function linkWarning(): Promise<Error> {
  return new Promise((resolve) => {
    const on = (w: Error & { code?: string }): void => {
      if (w.code !== "PLEXUS_LINK") return;
      process.off("warning", on);
      resolve(w);
    };
    process.on("warning", on);
  });
}

test("TLS on Python-hosted endpoints: a Node subscriber of a Python publisher and a Node client of a Python server; another authority is AccessDeniedError on both sides", async () => {
  const files = pemFiles();
  const certs = testCerts();
  // Python publisher serving TLS -> Node subscribers: one trusting the authority, one not
  const topic = fresh("py-tls-pub");
  const pub = await peer("publish", { topic, count: 2, transport: "tcp", certfile: files.certfile, keyfile: files.keyfile });
  const refused = linkWarning();
  await using wrong = await node.subscriber(topic, { transport: "tcp", tls: { ca: certs.otherCa } });
  assert.match((await refused).message, /cannot reach publisher .*AccessDeniedError/);
  assert.equal(wrong.publishers.length, 0);
  await using sub = await node.subscriber<{ i: number; v: Float64Array }>(topic, { transport: "tcp", tls: { ca: certs.ca } });
  const got: number[] = [];
  for await (const s of sub) {
    assert.ok(s.value.v instanceof Float64Array);
    got.push(s.value.i);
    if (got.length === 2) break;
  }
  assert.deepEqual(got, [0, 1]);
  assert.equal(JSON.parse(await pub.line()), "published");
  pub.proc.stdin?.end();
  assert.equal(await pub.exited, 0, pub.stderr());
  // Python request/response server serving TLS -> Node clients
  const service = fresh("py-tls-svc");
  const server = await peer("serve", { service, certfile: files.certfile, keyfile: files.keyfile });
  const refusedClient = linkWarning();
  await using wrongClient = await node.client(service, { transport: "tcp", tls: { ca: certs.otherCa } });
  assert.match((await refusedClient).message, /AccessDeniedError/);
  await assert.rejects(wrongClient.request({ a: 1 }), { code: "ERR_PLEXUS_NO_SERVER" });
  await using client = await node.client<Record<string, unknown>, Record<string, unknown>>(service, { transport: "tcp", tls: { ca: certs.ca } });
  await until(() => client.servers.length === 1);
  const answer = await client.request({ v: Float64Array.of(1, 2) });
  assert.equal(answer.sum, 3);
  assert.deepEqual([...(answer.twice as Float64Array)], [2, 4]);
  server.proc.stdin?.end();
  assert.equal(await server.exited, 0, server.stderr());
  // a Python client of a Node TLS server: with the authority it is answered, with another it
  // gets AccessDeniedError (the server is not linked, so the request finds no server)
  const nodeService = fresh("node-tls-svc");
  await using nodeServer = await node.server(nodeService, (v: { n: number }) => ({ n: v.n + 1 }), { transport: "tcp", tcp: { host: "127.0.0.1", tls: { key: certs.serverKey, cert: certs.serverCert } } });
  const ok = await peer("call", { service: nodeService, transport: "tcp", cafile: files.cafile, requests: [{ n: 1 }] }, false);
  assert.deepEqual(await json(ok), { links: ["tcp"] });
  assert.deepEqual(await json(ok), { ok: { n: 2 } });
  assert.equal(await ok.exited, 0, ok.stderr());
  const other = join(dirname(files.cafile), "other-ca.pem");
  writeFileSync(other, certs.otherCa);
  const no = await peer("call", { service: nodeService, transport: "tcp", cafile: other, requests: [{ n: 1 }] }, false);
  const linkError = await json(no);
  assert.equal(linkError.linkError, "AccessDeniedError");
  assert.equal(linkError.code, "ERR_PLEXUS_ACCESS_DENIED");
  assert.match(linkError.message as string, /TLS handshake with the request\/response server/);
  assert.equal((await json(no)).error, "NoServerError");
  assert.equal(await no.exited, 0, no.stderr());
  void nodeServer;
});

test("TLS with client certificates: a Python server that requires one answers a Node client that has it; a Node server that requires one refuses a Python client without it (AccessDeniedError) and answers one with it", async () => {
  const files = pemFiles();
  const certs = testCerts();
  const dir = dirname(files.cafile);
  const client = { clientcert: join(dir, "client.pem"), clientkey: join(dir, "client.key") };
  writeFileSync(client.clientcert, certs.clientCert);
  writeFileSync(client.clientkey, certs.clientKey);
  // a Python server requiring a certificate from the test's authority
  const service = fresh("py-mtls-svc");
  const server = await peer("serve", { service, certfile: files.certfile, keyfile: files.keyfile, clientca: files.cafile });
  await using withCert = await node.client<Record<string, unknown>, Record<string, unknown>>(service, { transport: "tcp", tls: { ca: certs.ca, key: certs.clientKey, cert: certs.clientCert } });
  await until(() => withCert.servers.length === 1);
  assert.deepEqual(await withCert.request({ a: 1 }), { echo: { a: 1 } });
  server.proc.stdin?.end();
  assert.equal(await server.exited, 0, server.stderr());
  // a Node server requiring one (requestCert + ca)
  const nodeService = fresh("node-mtls-svc");
  await using nodeServer = await node.server(nodeService, (v: { n: number }) => ({ n: v.n + 1 }), {
    transport: "tcp",
    tcp: { host: "127.0.0.1", tls: { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, requestCert: true } },
  });
  const without = await peer("call", { service: nodeService, transport: "tcp", cafile: files.cafile, requests: [{ n: 1 }] }, false);
  const refused = await json(without);
  assert.equal(refused.linkError, "AccessDeniedError", JSON.stringify(refused));
  assert.equal((await json(without)).error, "NoServerError");
  assert.equal(await without.exited, 0, without.stderr());
  const ok = await peer("call", { service: nodeService, transport: "tcp", cafile: files.cafile, ...client, requests: [{ n: 1 }] }, false);
  assert.deepEqual(await json(ok), { links: ["tcp"] });
  assert.deepEqual(await json(ok), { ok: { n: 2 } });
  assert.equal(await ok.exited, 0, ok.stderr());
  void nodeServer;
});

for (const mode of ["fast", "reliable"] as const) {
  test(`queue, ${mode}: a Python client across a Node queue server killed with SIGKILL and restarted: every put settles, none is delivered twice`, async () => {
    // The first server takes 30 messages and holds the 30th (never released: in reliable mode
    // its put is in flight), with room for 4 more in its queue (fast: later arrivals stay
    // unacknowledged, in flight). It is killed there; a new server takes the same port.
    const first = fixture("queue-peer", { role: "server", mode, holdAfter: 30, maxQueue: 4 });
    const url = await first.line();
    const c = await peer("queue-putter", { url, mode, puts: 100, threads: 4 });
    const got: number[] = [];
    while (got.length < 30) {
      const l = await first.line(10_000);
      if (l.startsWith("got ")) got.push(Number(l.slice(4)));
    }
    first.proc.kill("SIGKILL");
    await first.exited;
    for (const l of await remainingLines(first, 200)) if (l.startsWith("got ")) got.push(Number(l.slice(4)));
    const second = fixture("queue-peer", { role: "server", mode, url });
    assert.equal(await second.line(), url, "the new server listens on the same port");
    const outcomes = new Map<number, Record<string, unknown>>();
    let last: Record<string, unknown> | undefined;
    while (last === undefined) {
      const o = await json(c);
      if ("events" in o) last = o;
      else outcomes.set((o.put ?? o.failed) as number, o);
    }
    for (;;) {
      const l = await second.line(10_000);
      if (!l.startsWith("got ")) continue;
      const id = Number(l.slice(4));
      if (id === -1) break; // the last put of the client's new session: everything before it was taken
      got.push(id);
    }
    // every put settled: acknowledged, or a typed error
    assert.deepEqual([...outcomes.keys()].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
    const failed = [...outcomes.values()].filter((o) => "failed" in o);
    for (const f of failed) assert.deepEqual([f.error, f.code], ["PeerDeadError", "ERR_PLEXUS_PEER_DEAD"]);
    // none delivered twice, across the two servers
    assert.equal(new Set(got).size, got.length, `a message was delivered twice: ${got.join(",")}`);
    if (mode === "reliable") {
      // an acknowledged reliable put was released by the server's application: it is in a log
      for (const [id, o] of outcomes) if ("put" in o) assert.ok(got.includes(id), `put ${id} resolved but no server took it`);
      assert.ok(failed.some((f) => f.failed === got[29]), "the held message's put was in flight when the server died: it failed");
    }
    const kinds = (last.events as [string, unknown][]).map(([e]) => e);
    assert.equal(kinds[0], "disconnect");
    assert.ok(kinds.includes("session-lost"), `events: ${JSON.stringify(last.events)}`);
    assert.deepEqual((last.events as [string, unknown][]).find(([e]) => e === "reconnect"), ["reconnect", { resumed: false }]);
    assert.equal(last.state, "connected");
    assert.equal(await c.exited, 0, c.stderr());
    second.proc.kill("SIGKILL");
  });
}

for (const transport of ["shm", "tcp"] as const) {
  test(`Python client -> Node in-place server over ${transport}: request_in_place answers ${transport === "shm" ? "in the request ring, a held answer pins its memory" : "with copies"}, threads at once`, async () => {
    const service = fresh("node-inplace");
    await using server = await node.server(
      service,
      (bytes: Uint8Array) => {
        for (let i = 0; i < bytes.length; i++) bytes[i] = ~bytes[i] & 0xff;
        return bytes.length >= 2 ? bytes.subarray(1, bytes.length - 1) : bytes;
      },
      { inPlace: true },
    );
    const c = await peer("call-in-place", { service, transport }, false);
    const first = await json(c);
    assert.deepEqual(first.links, [transport]);
    assert.equal(first.ok, true, `answer ${JSON.stringify(first.answer)}`);
    assert.equal(first.inRing, transport === "shm", "over shm the answer is a view of the request's own bytes in the client's ring");
    assert.equal(first.writeable, true);
    assert.deepEqual(await json(c), { fill: Array(6).fill(0xfe) });
    const held = await json(c);
    assert.equal(held.copies, true, "request() to an in-place service answers a copy");
    if (transport === "shm") {
      assert.equal(held.blocked, "TimeoutError", "a request that would write over a held answer waits for room");
      assert.equal(held.heldIntact, true, "the held answer's bytes were not written over");
    }
    assert.equal(held.after, (300 << 10) - 2, "released, the ring has room again");
    assert.deepEqual(await json(c), { refused: "ERR_PLEXUS_INVALID_ARGUMENT" });
    assert.deepEqual(await json(c), { wrong: 0, pins: 0, async: [0xef] }, "and the asyncio form");
    assert.equal(await c.exited, 0, c.stderr());
    void server;
  });
}

for (const transport of ["shm", "tcp"] as const) {
  test(`Node client -> Python in-place server over ${transport}: requestInPlace answers with the request's own bytes changed in place; an answer from elsewhere is refused`, async () => {
    const service = fresh("py-inplace");
    const server = await peer("serve-in-place", { service });
    await using client = await node.client(service, { transport });
    await until(() => client.servers.length === 1);
    const req = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    for (let round = 0; round < 3; round++) {
      using answer = await client.requestInPlace(req);
      assert.deepEqual([...answer.bytes], [...req.subarray(1, -1)].map((b) => ~b & 0xff));
    }
    using filled = await client.requestInPlace(4, (ring) => ring.set([1, 2, 3, 4]));
    assert.deepEqual([...filled.bytes], [0xfd, 0xfc]);
    const copy = (await client.request(Uint8Array.of(0, 0x0f, 0xf0, 0))) as Uint8Array;
    assert.deepEqual([...copy], [0xf0, 0x0f], "request() answers a copy");
    await assert.rejects(client.requestInPlace(Uint8Array.of(0xff, 1)), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteCode, "ERR_PLEXUS_INVALID_ARGUMENT");
      return true;
    });
    using after = await client.requestInPlace(Uint8Array.of(9, 9, 9));
    assert.deepEqual([...after.bytes], [0xf6], "the server serves on");
    server.proc.stdin?.end();
    assert.equal(await server.exited, 0, server.stderr());
  });
}
