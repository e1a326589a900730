/**
 * Request/response between real processes over shm and tcp: answers, load balancing over two
 * server processes, in-place answers in shared memory, a server killed with SIGKILL mid-request
 * (pending requests reject with PeerDeadError at once), and the fault test: the server is
 * killed at random points again and again, and every request resolves or rejects with a typed
 * error — none hangs.
 */
import { readdirSync } from "node:fs";
import { hostname } from "node:os";
import { test } from "node:test";
import assert from "node:assert/strict";
import { NoServerError, PeerDeadError, PlexusError, RemoteError, TimeoutError } from "../src/index.js";
import { fixture, type Child } from "./helpers/child.js";
import { graph, until } from "./helpers/rpc.js";

const { node, address } = await graph();
let n = 0;
const fresh = (base: string): string => `${base}-${++n}`;

interface Answer {
  pid: number;
  name: string;
  seq?: number;
  data?: unknown;
}

async function serverProcess(service: string, transport: "shm" | "tcp", extra: Record<string, unknown> = {}): Promise<Child> {
  const child = fixture("rpc-server", { address, service, transport, ...extra });
  assert.equal(await child.line(), "ready");
  return child;
}

for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: a client and a server in two processes`, async () => {
    const service = fresh("echo");
    const child = await serverProcess(service, transport);
    await using client = await node.client<{ op: string; seq: number; data: unknown }, Answer>(service, { transport });
    await until(() => client.servers.length === 1);
    const data = { text: "héllo", list: [1, 2, 3], f64: new Float64Array([1.5, -2]), bytes: new Uint8Array(100_000).fill(7) };
    const answers = await Promise.all(Array.from({ length: 64 }, (_, seq) => client.request({ op: "echo", seq, data })));
    answers.forEach((a, seq) => {
      assert.equal(a.pid, child.proc.pid);
      assert.equal(a.seq, seq);
      assert.deepEqual(a.data, data);
    });
    await assert.rejects(client.request({ op: "throw", seq: 5, data: null }), (e: unknown) => e instanceof RemoteError && e.remoteCode === "E_REFUSED" && e.message === "refused 5");
    assert.equal((await client.request({ op: "echo", seq: 6, data: null })).seq, 6, "the server serves on after a handler threw");
    child.proc.kill("SIGKILL");
    await child.exited;
  });

  test(`${transport}: requests spread over two server processes`, async () => {
    const service = fresh("lb");
    const a = await serverProcess(service, transport, { name: "a" });
    const b = await serverProcess(service, transport, { name: "b" });
    await using client = await node.client<{ op: string; ms: number }, Answer>(service, { transport });
    await until(() => client.servers.length === 2);
    const answers = await Promise.all(Array.from({ length: 64 }, () => client.request({ op: "sleep", ms: 5 })));
    const byA = answers.filter((x) => x.name === "a").length;
    const byB = answers.filter((x) => x.name === "b").length;
    assert.equal(byA + byB, 64);
    assert.ok(byA >= 16 && byB >= 16, `both servers answered a share: a ${byA}, b ${byB}`);
    assert.deepEqual(new Set(answers.map((x) => x.pid)), new Set([a.proc.pid, b.proc.pid]));
    a.proc.kill("SIGKILL");
    await a.exited;
    // The survivor takes everything once the dead one is gone.
    await until(() => client.servers.length === 1);
    const after = await Promise.all(Array.from({ length: 16 }, () => client.request({ op: "echo", ms: 0 })));
    assert.ok(after.every((x) => x.name === "b"));
    b.proc.kill("SIGKILL");
    await b.exited;
  });

  test(`${transport}: a server killed with SIGKILL mid-request: its pending requests reject with PeerDeadError at once`, async () => {
    const service = fresh("kill");
    const child = await serverProcess(service, transport);
    await using client = await node.client<{ op: string; ms: number }, Answer>(service, { transport, timeout: 60_000 });
    await until(() => client.servers.length === 1);
    const pending = Array.from({ length: 10 }, () => client.request({ op: "sleep", ms: 60_000 }).then(() => "answered", (e: unknown) => e));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.inFlight, 10);
    const t0 = performance.now();
    child.proc.kill("SIGKILL");
    const outcomes = await Promise.all(pending);
    for (const o of outcomes) {
      assert.ok(o instanceof PeerDeadError, `rejected with PeerDeadError, got ${String(o)}`);
      // In the user's terms: the service and the server's process and host, not a segment or a socket.
      assert.equal(o.message, `the server of ${JSON.stringify(service)} (pid ${child.proc.pid} on ${hostname()}) died or lost its connection`);
      assert.ok(o.cause instanceof PeerDeadError, "the transport's error is the cause");
    }
    // Far below the 60 s request timeout: the death was noticed, not waited out.
    assert.ok(performance.now() - t0 < 10_000);
    await until(() => client.servers.length === 0);
    await assert.rejects(client.request({ op: "echo", ms: 0 }), NoServerError);
    // The GraphServer removed the dead node's server too (new clients do not find it).
    for (let i = 0; (await node.snapshot()).servers.some((s) => s.service === service); i++) {
      assert.ok(i < 500, "the GraphServer still lists the dead server");
      await new Promise((r) => setTimeout(r, 10));
    }
    await using late = await node.client(service, { transport });
    assert.deepEqual(late.servers, []);
  });
}

for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: a client killed with SIGKILL mid-request: the server drops its connection and serves the others`, async () => {
    const service = fresh("clientkill");
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    await using server = await node.server<number, number>(service, async (i) => {
      if (i >= 0) await gate;
      return i;
    }, { transport });
    const child = fixture("rpc-client", { address, service, transport, count: 8 });
    assert.equal(await child.line(), "sent");
    await until(() => server.inFlight === 8 && server.connections === 1);
    child.proc.kill("SIGKILL");
    await child.exited;
    await until(() => server.connections === 0);
    // The dead client's request ring does not outlive it.
    await until(() => !readdirSync("/dev/shm").some((f) => f.startsWith(`plexus-${child.proc.pid}-`)));
    release(); // the answers have nowhere to go: dropped, no crash
    await until(() => server.inFlight === 0);
    await using client = await node.client<number, number>(service, { transport });
    await until(() => client.servers.length === 1);
    assert.equal(await client.request(-5), -5);
  });
}

test("shm in place: the handler answers in the request's own shared memory, across processes", async () => {
  const service = fresh("inplace");
  const child = await serverProcess(service, "shm", { inPlace: true });
  await using client = await node.client(service, { transport: "shm", capacity: 1 << 20 });
  await until(() => client.servers.length === 1);
  // 200 x 100 KiB through a 1 MiB ring: only works if every answer's memory is given back.
  for (let round = 0; round < 200; round++) {
    const req = new Uint8Array(100 * 1024).fill(round & 0xff);
    using res = await client.requestInPlace(req);
    assert.ok(res.bytes.buffer instanceof SharedArrayBuffer);
    assert.equal(res.bytes.length, req.length - 1);
    assert.equal(res.bytes[0], ~round & 0xff);
    assert.equal(res.bytes[res.bytes.length - 1], ~round & 0xff);
    assert.equal(req[0], round & 0xff, "the caller's own array is untouched");
  }
  // No copy at all: the request is written straight into the ring, the answer read from it.
  for (let round = 0; round < 50; round++) {
    using res = await client.requestInPlace(64 * 1024, (bytes) => bytes.fill(round));
    assert.ok(res.bytes.buffer instanceof SharedArrayBuffer);
    assert.equal(res.bytes.length, 64 * 1024 - 1);
    assert.equal(res.bytes[100], ~round & 0xff);
  }
  // Many in flight at once, answers held while others are sent.
  const held = await Promise.all(Array.from({ length: 8 }, (_, i) => client.requestInPlace(new Uint8Array(1000).fill(i))));
  held.forEach((r, i) => assert.equal(r.bytes[5], ~i & 0xff));
  for (const r of held) r.release();
  child.proc.kill("SIGKILL");
  await child.exited;
});

for (const spinMicros of [undefined, 200]) {
  test(`shm, across processes${spinMicros ? `, spinMicros ${spinMicros}` : ""}: lone requests stay answered after requests that fail as they are written`, async () => {
    const service = fresh("lone");
    const child = await serverProcess(service, "shm", { inPlace: true });
    await using client = await node.client(service, { transport: "shm", timeout: 3000, ...(spinMicros ? { spinMicros } : {}) });
    await until(() => client.servers.length === 1);
    const lone = async (round: number): Promise<void> => {
      using res = await client.requestInPlace(new Uint8Array(16).fill(round & 0xff));
      assert.equal(res.bytes.length, 15);
      assert.equal(res.bytes[0], ~round & 0xff);
    };
    // One at a time, as fast as they come: the client polls for each answer itself.
    for (let round = 0; round < 300; round++) await lone(round);
    // Requests that go out and fail at once (a throwing fill, an abort from inside it): their
    // answers still come, to be read and dropped by whoever reads the ring, not in the next
    // request's way.
    for (let k = 0; k < 3; k++) {
      await assert.rejects(client.requestInPlace(8, () => { throw new Error("no fill"); }), /no fill/);
      for (let round = 0; round < 20; round++) await lone(round);
      const ac = new AbortController();
      await assert.rejects(client.requestInPlace(8, (b) => { b.fill(1); ac.abort(); }, { signal: ac.signal }), { name: "AbortError" });
      for (let round = 0; round < 20; round++) await lone(round);
    }
    assert.equal(client.inFlight, 0);
    child.proc.kill("SIGKILL");
    await child.exited;
  });
}

test("fault test: the server is killed at random points 8 times; every request resolves or rejects with a typed error", async () => {
  const service = fresh("fault");
  const settled = { answered: 0, failed: 0 };
  for (let round = 0; round < 8; round++) {
    const transport = round % 2 ? "tcp" : "shm";
    const child = await serverProcess(service, transport);
    const client = await node.client<{ op: string; ms: number }, Answer>(service, { transport, timeout: 30_000 });
    await until(() => client.servers.length === 1);
    let stop = false;
    const outcomes: Promise<string>[] = [];
    const pump = (async () => {
      while (!stop) {
        const p = client.request({ op: "sleep", ms: Math.floor(Math.random() * 3) }).then(
          () => "ok",
          (e: unknown) => (e instanceof PlexusError ? e.name : `untyped: ${String(e)}`),
        );
        outcomes.push(p);
        if (client.inFlight >= 16) await Promise.race([p, new Promise((r) => setTimeout(r, 2))]);
        else await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
    child.proc.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await pump;
    // None hangs: all settle well within their 30 s timeout.
    let guard: ReturnType<typeof setTimeout> | undefined;
    const all = await Promise.race([
      Promise.all(outcomes),
      new Promise<never>((_, reject) => (guard = setTimeout(() => reject(new Error("a request hangs")), 15_000))),
    ]).finally(() => clearTimeout(guard));
    for (const o of all) {
      assert.ok(["ok", "PeerDeadError", "NoServerError"].includes(o), `round ${round}: ${o}`);
      if (o === "ok") settled.answered++;
      else settled.failed++;
    }
    assert.ok(all.includes("PeerDeadError") || all.includes("NoServerError"), "the kill was noticed");
    await client.close();
    await child.exited;
  }
  assert.ok(settled.answered > 0, `requests were answered between the kills (${settled.answered} answered, ${settled.failed} failed)`);
});

test("a request to a server that stopped answering times out with TimeoutError", async () => {
  const service = fresh("stopped");
  const child = await serverProcess(service, "shm");
  await using client = await node.client<{ op: string; ms: number }, Answer>(service, { transport: "shm" });
  await until(() => client.servers.length === 1);
  child.proc.kill("SIGSTOP");
  try {
    await assert.rejects(client.request({ op: "echo", ms: 0 }, { timeout: 200 }), (e: unknown) => {
      assert.ok(e instanceof TimeoutError);
      assert.equal(e.message, `service ${JSON.stringify(service)} did not answer within 200 ms`);
      return true;
    });
  } finally {
    child.proc.kill("SIGKILL");
  }
  await child.exited;
});
