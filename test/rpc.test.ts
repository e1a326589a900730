/**
 * Request/response within one process, over each transport (inproc: the value itself; shm and
 * tcp: the same channels other processes use): correlation, out-of-order answers, the
 * in-flight bound, timeouts, aborts, handler errors, in-place answers, no server.
 */
import { test } from "node:test";
import { promiseHooks } from "node:v8";
import assert from "node:assert/strict";
import {
  AbortError,
  ClosedError,
  connect,
  EncodeError,
  FrameTooLargeError,
  InvalidArgumentError,
  NoServerError,
  PeerDeadError,
  RemoteError,
  TimeoutError,
  type Snapshot,
} from "../src/index.js";
import { deferred, graph, until } from "./helpers/rpc.js";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { GraphClient } from "../src/graph/client.js";
import { self } from "../src/graph/identity.js";
import { RPC_SPEC } from "../src/rpc/handshake.js";
import { readHandshakeFrame } from "../src/net/exchange.js";
import { NetType } from "../src/net/frame.js";
import { encodeWelcome, readHello as readNetHello } from "../src/net/handshake.js";
import { decodeAt, encode } from "../src/codec/index.js";
import { decodeOwned, LITTLE_ENDIAN, readHeader, RPC_HEADER, writeHeader, writeHeaderWords, type RpcType } from "../src/rpc/wire.js";

const { node, address } = await graph();
const TRANSPORTS = ["inproc", "shm", "tcp"] as const;
let n = 0;
const fresh = (base: string): string => `${base}-${++n}`;

for (const transport of TRANSPORTS) {
  test(`${transport}: requests are answered and correlated, typed arrays included`, async () => {
    const service = fresh("echo");
    await using server = await node.server<{ i: number; data: Float64Array }, { i: number; sum: number; data: Float64Array }>(
      service,
      (req) => ({ i: req.i, sum: req.data.reduce((a, b) => a + b, 0), data: req.data }),
      { transport },
    );
    await using client = await node.client<{ i: number; data: Float64Array }, { i: number; sum: number; data: Float64Array }>(service, { transport });
    assert.deepEqual(client.servers, [server.id]);
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => client.request({ i, data: new Float64Array([i, 1, 2]) })));
    answers.forEach((a, i) => {
      assert.equal(a.i, i);
      assert.equal(a.sum, i + 3);
      assert.deepEqual([...a.data], [i, 1, 2]);
    });
    // The answer is the caller's: it stays intact while the rings are reused.
    const kept = answers[7].data;
    await Promise.all(Array.from({ length: 200 }, (_, i) => client.request({ i, data: new Float64Array([-1, -1, -1]) })));
    assert.deepEqual([...kept], [7, 1, 2]);
    assert.equal(server.served, 300);
  });

  test(`${transport}: bare byte arrays and Buffers come back as what they were, owned by the caller`, async () => {
    const service = fresh("bytes");
    await using _server = await node.server<Uint8Array, Uint8Array>(service, (b) => b, { transport });
    await using client = await node.client<Uint8Array, Uint8Array>(service, { transport });
    const u8 = await client.request(new Uint8Array([1, 2, 3]));
    assert.ok(!Buffer.isBuffer(u8) && u8 instanceof Uint8Array);
    assert.deepEqual([...u8], [1, 2, 3]);
    const buf = await client.request(Buffer.from("héllo"));
    assert.ok(Buffer.isBuffer(buf));
    assert.equal(buf.toString(), "héllo");
    const empty = await client.request(new Uint8Array(0));
    assert.equal(empty.length, 0);
    if (transport !== "inproc") {
      assert.ok(!(u8.buffer instanceof SharedArrayBuffer), "copied out of the ring");
      assert.ok(!(buf.buffer instanceof SharedArrayBuffer), "copied out of the ring");
    }
  });

  test(`${transport}: a slow request does not hold back the others (answers out of order)`, async () => {
    const service = fresh("order");
    const gate = deferred();
    await using server = await node.server<string, string>(
      service,
      async (req) => {
        if (req === "slow") await gate.promise;
        return req;
      },
      { transport },
    );
    await using client = await node.client<string, string>(service, { transport });
    const order: string[] = [];
    const slow = client.request("slow").then((v) => order.push(v));
    const fast = await Promise.all(["a", "b", "c"].map((v) => client.request(v).then((x) => order.push(x))));
    assert.equal(fast.length, 3);
    assert.deepEqual(order, ["a", "b", "c"]);
    assert.equal(server.inFlight, 1);
    gate.resolve();
    await slow;
    assert.deepEqual(order, ["a", "b", "c", "slow"]);
  });

  test(`${transport}: at most maxInFlight requests in flight; the next waits, bounded by its timeout`, async () => {
    const service = fresh("bound");
    const gate = deferred();
    let peak = 0;
    await using server = await node.server<number, number>(
      service,
      async (req) => {
        peak = Math.max(peak, server.inFlight);
        await gate.promise;
        return req * 2;
      },
      { transport },
    );
    await using client = await node.client<number, number>(service, { transport, maxInFlight: 3 });
    const first = [1, 2, 3, 4, 5].map((i) => client.request(i));
    await until(() => server.inFlight === 3);
    assert.equal(client.inFlight, 3);
    await assert.rejects(client.request(9, { timeout: 50 }), TimeoutError);
    gate.resolve();
    assert.deepEqual(await Promise.all(first), [2, 4, 6, 8, 10]);
    assert.equal(peak, 3);
  });

  test(`${transport}: timeout and abort reject the request; the server keeps serving`, async () => {
    const service = fresh("slow");
    await using server = await node.server<number, number>(
      service,
      async (ms) => {
        await new Promise((r) => setTimeout(r, ms));
        return ms;
      },
      { transport },
    );
    await using client = await node.client<number, number>(service, { transport });
    await assert.rejects(client.request(300, { timeout: 30 }), TimeoutError);
    const ac = new AbortController();
    const aborted = client.request(300, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error("user gave up")), 10);
    await assert.rejects(aborted, (e: unknown) => e instanceof AbortError && (e.cause as Error).message === "user gave up");
    await assert.rejects(client.request(1, { signal: AbortSignal.abort() }), AbortError);
    await assert.rejects(client.request(1, { timeout: -1 }), InvalidArgumentError);
    assert.equal(client.inFlight, 0, "timed-out and aborted requests free their slot");
    assert.equal(await client.request(5), 5);
    await until(() => server.inFlight === 0);
  });

  test(`${transport}: a handler that throws gives a RemoteError with its message and code, and the server serves on`, async () => {
    const service = fresh("throw");
    await using server = await node.server<number, number>(
      service,
      (i) => {
        if (i % 2) throw Object.assign(new RangeError(`odd ${i}`), { code: "E_ODD" });
        return i;
      },
      { transport },
    );
    await using client = await node.client<number, number>(service, { transport });
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) assert.equal(await client.request(i), i);
      else
        await assert.rejects(client.request(i), (e: unknown) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.code, "ERR_PLEXUS_REMOTE");
          assert.equal(e.remoteCode, "E_ODD");
          assert.equal(e.remoteName, "RangeError");
          assert.equal(e.message, `odd ${i}`);
          return true;
        });
    }
    const rejecting = await node.server(fresh("reject"), () => Promise.reject(new Error("no")), { transport });
    const rc = await node.client(rejecting.service, { transport });
    await assert.rejects(rc.request(1), (e: unknown) => e instanceof RemoteError && e.message === "no" && e.remoteCode === "ERR_PLEXUS_HANDLER");
    await rc.close();
    await rejecting.close();
    assert.equal(server.served, 6);
  });

  test(`${transport}: ${transport === "inproc" ? "values pass as they are, functions included (no encoding)" : "values that cannot travel are refused at the caller; answers that cannot are a RemoteError"}`, async () => {
    const service = fresh("encode");
    await using server = await node.server<unknown, unknown>(service, (v) => (v === "fn" ? { f: () => 1 } : v), { transport });
    await using client = await node.client<unknown, unknown>(service, { transport });
    if (transport === "inproc") {
      const value = { f: () => 1 };
      assert.equal(await client.request(value), value, "the value itself, not a copy");
      assert.equal(((await client.request("fn")) as { f: () => number }).f(), 1);
      assert.equal(server.served, 2);
      return;
    }
    await assert.rejects(client.request({ f: () => 1 }), EncodeError);
    await assert.rejects(client.request("fn"), (e: unknown) => e instanceof RemoteError && e.remoteCode === "ERR_PLEXUS_ENCODE");
    assert.equal(await client.request("ok"), "ok");
    assert.equal(server.served, 2);
  });

  test(`${transport}: in place, the handler changes the request's bytes and returns a view of them`, async () => {
    const service = fresh("inplace");
    await using server = await node.server(
      service,
      (bytes) => {
        for (let i = 0; i < bytes.length; i++) bytes[i] += 1;
        return bytes.subarray(2);
      },
      { inPlace: true, transport },
    );
    await using client = await node.client(service, { transport });
    for (let round = 0; round < 50; round++) {
      const req = new Uint8Array(64 * 1024).map((_, i) => (i + round) & 0xff);
      const res = await client.requestInPlace(req);
      assert.equal(res.bytes.length, req.length - 2);
      assert.equal(res.bytes[0], ((2 + round) & 0xff) + 1);
      if (transport === "shm") assert.ok(res.bytes.buffer instanceof SharedArrayBuffer, "the answer is the shared memory itself");
      res.release();
    }
    const copy = (await client.request(new Uint8Array([1, 2, 3, 4]))) as Uint8Array;
    assert.deepEqual([...copy], [4, 5]);
    // No copy in either: the caller writes the request where it will be sent from.
    let seen: Uint8Array | undefined;
    const filled = await client.requestInPlace(1000, (bytes) => {
      seen = bytes;
      bytes.fill(41);
    });
    assert.equal(filled.bytes.length, 998);
    assert.ok(filled.bytes.every((b) => b === 42));
    if (transport === "shm") assert.equal(filled.bytes.buffer, seen?.buffer, "the answer lies in the memory fill wrote");
    filled.release();
    await assert.rejects(
      client.requestInPlace(10, () => {
        throw new RangeError("cannot fill");
      }),
      (e: unknown) => e instanceof RangeError && e.message === "cannot fill",
    );
    await assert.rejects(client.requestInPlace(-1, () => {}), InvalidArgumentError);
    assert.equal(client.inFlight, 0);
    await assert.rejects(client.request({ not: "bytes" }), InvalidArgumentError);
    const bad = await node.server(fresh("badinplace"), () => new Uint8Array(4), { inPlace: true, transport });
    const bc = await node.client(bad.service, { transport });
    await assert.rejects(bc.requestInPlace(new Uint8Array(8)), (e: unknown) => e instanceof RemoteError && e.remoteCode === "ERR_PLEXUS_INVALID_ARGUMENT");
    await bc.close();
    await bad.close();
    // The request whose fill threw still went out over shm/tcp (its answer was dropped); inproc never called the handler.
    await until(() => server.served === (transport === "inproc" ? 52 : 53));
  });
}

test("no server: NoServerError at once, not a timeout; a server appearing later is found", async () => {
  const service = fresh("later");
  await using client = await node.client<number, number>(service);
  const t0 = performance.now();
  await assert.rejects(client.request(1, { timeout: 10_000 }), NoServerError);
  assert.ok(performance.now() - t0 < 5000, "rejected long before the timeout");
  const server = await node.server<number, number>(service, (x) => x + 1);
  await until(() => client.servers.length === 1);
  assert.equal(await client.request(1), 2);
  await server.close();
  assert.deepEqual(client.servers, [], "the GraphServer told the client the server left");
  await assert.rejects(client.request(1), NoServerError);
});

test("the GraphServer lists servers and clients, and forgets them when they close", async () => {
  const service = fresh("listed");
  const server = await node.server(service, () => 1, { transport: "shm" });
  const client = await node.client(service);
  let snap: Snapshot = await node.snapshot();
  assert.deepEqual(
    snap.servers.filter((s) => s.service === service).map((s) => [s.id, s.inPlace, typeof s.endpoints.shm?.socket]),
    [[server.id, false, "string"]],
  );
  assert.deepEqual(snap.clients.filter((c) => c.service === service).map((c) => c.id), [client.id]);
  await client.close();
  await server.close();
  snap = await node.snapshot();
  assert.equal(snap.servers.filter((s) => s.service === service).length, 0);
  assert.equal(snap.clients.filter((c) => c.service === service).length, 0);
});

test("closed handles: requests on a closed client reject with ClosedError; pending ones too", async () => {
  const service = fresh("closing");
  const gate = deferred();
  const server = await node.server(service, () => gate.promise, { transport: "shm" });
  const client = await node.client(service, { transport: "shm" });
  const pending = client.request(1);
  await until(() => server.inFlight === 1);
  const rejected = assert.rejects(pending, ClosedError);
  await client.close();
  await rejected;
  await assert.rejects(client.request(1), ClosedError);
  gate.resolve();
  await server.close();
});

for (const transport of ["shm", "tcp"] as const) test(`${transport}: a server that closes answers what it was handling, then its clients lose it`, async () => {
  const service = fresh("drain");
  const server = await node.server<number, number>(service, async (ms) => {
    await new Promise((r) => setTimeout(r, ms));
    return ms;
  }, { transport });
  const client = await node.client<number, number>(service, { transport });
  const pending = client.request(100);
  await until(() => server.inFlight === 1);
  await server.close();
  assert.equal(await pending, 100);
  await assert.rejects(client.request(1), NoServerError);
  await client.close();
});

test("several servers of one service share the load", async () => {
  const service = fresh("lb");
  const servers = await Promise.all(
    [0, 1, 2].map(async (k) =>
      node.server<number, number>(service, async () => {
        await new Promise((r) => setTimeout(r, 2));
        return k;
      }, { transport: k === 0 ? "shm" : k === 1 ? "tcp" : "inproc" }),
    ),
  );
  await using client = await node.client<number, number>(service);
  await until(() => client.servers.length === 3);
  const got = await Promise.all(Array.from({ length: 90 }, () => client.request(0)));
  const counts = [0, 1, 2].map((k) => got.filter((g) => g === k).length);
  for (const c of counts) assert.ok(c >= 10, `every server took a share: ${counts.join("/")}`);
  for (const s of servers) await s.close();
});

test("a request larger than the request ring is refused with FrameTooLargeError; the client serves on", async () => {
  const service = fresh("large");
  await using server = await node.server<Uint8Array, number>(service, (b) => b.length, { transport: "shm" });
  await using client = await node.client<Uint8Array, number>(service, { transport: "shm", capacity: 64 * 1024 });
  await assert.rejects(client.request(new Uint8Array(40 * 1024)), FrameTooLargeError);
  assert.equal(client.inFlight, 0);
  assert.equal(await client.request(new Uint8Array(20 * 1024)), 20 * 1024);
  // An answer larger than the response ring is the handler's failure, reported to the client.
  const big = await node.server(fresh("bigreply"), () => new Uint8Array(1 << 20), { transport: "shm", capacity: 64 * 1024 });
  const bc = await node.client(big.service, { transport: "shm" });
  await assert.rejects(bc.request(1), (e: unknown) => e instanceof RemoteError && e.remoteCode === "ERR_PLEXUS_FRAME_TOO_LARGE");
  await bc.close();
  await big.close();
  assert.equal(server.served, 1);
});

test("a server in a worker thread of this process is reached over shm", async () => {
  const { Worker } = await import("node:worker_threads");
  const service = fresh("thread");
  const worker = new Worker(new URL("./fixtures/rpc-thread-server.js", import.meta.url), { workerData: { address, service } });
  try {
    assert.equal(await new Promise((r) => worker.once("message", r)), "ready");
    await using client = await node.client<{ n: number }, { n: number; threadId: number }>(service);
    await until(() => client.servers.length === 1);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, n) => client.request({ n })));
    answers.forEach((a, n) => {
      assert.equal(a.n, 2 * n);
      assert.equal(a.threadId, worker.threadId);
    });
    worker.postMessage("close");
    assert.equal(await new Promise((r) => worker.once("message", r)), "closed");
    await until(() => client.servers.length === 0);
  } finally {
    await worker.terminate();
  }
});

test("tcp with TLS: a client that trusts the server's CA is served; one that does not is refused", async () => {
  const { testCerts } = await import("./helpers/tcp-certs.js");
  const certs = testCerts();
  const service = fresh("tls");
  await using server = await node.server<string, string>(service, (s) => s.toUpperCase(), {
    transport: "tcp",
    tcp: { tls: { key: certs.serverKey, cert: certs.serverCert } },
  });
  assert.equal((await node.snapshot()).servers.find((s) => s.id === server.id)?.endpoints.tcp?.tls, true);
  await using client = await node.client<string, string>(service, { transport: "tcp", tls: { ca: certs.ca } });
  assert.equal(await client.request("secret"), "SECRET");
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on("warning", onWarning);
  try {
    await using stranger = await node.client<string, string>(service, { transport: "tcp", tls: { ca: certs.otherCa } });
    await assert.rejects(stranger.request("secret"), NoServerError);
  } finally {
    process.off("warning", onWarning);
  }
  assert.ok(warnings.some((w) => /TLS with the server failed/.test(w)), warnings.join("; "));
});

test("bad options are refused with InvalidArgumentError", async () => {
  await assert.rejects(node.client("x", { maxInFlight: 0 }), InvalidArgumentError);
  await assert.rejects(node.client("has space"), InvalidArgumentError);
  await assert.rejects(node.server("x", undefined as unknown as () => void), InvalidArgumentError);
  await assert.rejects(node.server("x", () => 1, { tcp: { host: "0.0.0.0" }, transport: "tcp" }), (e: unknown) => (e as Error).name === "AccessDeniedError");
  assert.ok(PeerDeadError);
});

test("a server that answers with a malformed frame: its pending requests reject PeerDeadError (not ClosedError), the client serves on", async () => {
  const service = fresh("broken-server");
  const sockets = new Set<Socket>();
  const fake = createNetServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    void readHandshakeFrame(s, { type: NetType.Hello, what: "a client", timeout: 2000 }).then((f) => {
      const v = readNetHello(RPC_SPEC, f.payload);
      assert.ok(v.ok);
      s.write(encodeWelcome(RPC_SPEC, v.hello, 1000));
      s.once("data", () => {
        s.write(Buffer.alloc(RPC_HEADER)); // a frame of 16 zero bytes: type 0, not a message
      });
      s.resume();
    }, () => s.destroy());
  });
  await new Promise<void>((r) => fake.listen({ host: "127.0.0.1", port: 0 }, r));
  const port = (fake.address() as AddressInfo).port;
  const registrar = await GraphClient.connect({ address, embedded: false });
  await registrar.request("server.add", { service, endpoints: { ...self(), pid: 1, tcp: { host: "127.0.0.1", port } }, inPlace: false });
  await using client = await node.client(service, { transport: "tcp" });
  await until(() => client.servers.length === 1);
  const err = await client.request("hi", { timeout: 3000 }).then(
    () => assert.fail("answered"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PeerDeadError, `expected PeerDeadError, got ${String(err)}`);
  assert.ok(!(err instanceof ClosedError));
  await assert.rejects(client.request("again"), NoServerError); // the broken server is dropped; the client is not closed
  await registrar.close();
  for (const s of sockets) s.destroy();
  fake.close();
});

test("bad transport, port, spin and in-place options are refused with InvalidArgumentError, before anything listens", async () => {
  const bad = { transport: "udp" } as unknown as { transport: "tcp" };
  await assert.rejects(node.server(fresh("opt"), () => 1, bad), InvalidArgumentError);
  await assert.rejects(node.client(fresh("opt"), bad), InvalidArgumentError);
  await assert.rejects(node.server(fresh("opt"), () => 1, { tcp: { port: 99999 } }), InvalidArgumentError);
  await assert.rejects(node.server(fresh("opt"), () => 1, { tcp: { port: 1.5 } }), InvalidArgumentError);
  await assert.rejects(node.server(fresh("opt"), () => 1, { spinMicros: -1 }), InvalidArgumentError);
  await assert.rejects(node.client(fresh("opt"), { spinMicros: Number.NaN }), InvalidArgumentError);
  await assert.rejects(node.server(fresh("opt"), () => 1, { inPlace: "yes" } as unknown as { inPlace: false }), InvalidArgumentError);
  assert.equal((await node.snapshot()).servers.filter((s) => s.service.startsWith("opt-")).length, 0);
});

test("default maxInFlight is 16: the 17th request waits for a slot and is answered once one frees", async () => {
  const service = fresh("seventeen");
  const gate = deferred();
  await using server = await node.server<number, number>(service, async (req) => {
    await gate.promise;
    return req + 100;
  }, { transport: "shm" });
  await using client = await node.client<number, number>(service, { transport: "shm" });
  await until(() => client.servers.length === 1);
  const all = Array.from({ length: 17 }, (_, i) => client.request(i, { timeout: 10000 }));
  await until(() => server.inFlight === 16);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(server.inFlight, 16, "the 17th request reached the server");
  assert.equal(client.inFlight, 16);
  gate.resolve();
  assert.deepEqual(await Promise.all(all), Array.from({ length: 17 }, (_, i) => i + 100));
});

test("plain TCP off loopback: refused without allowInsecure, served with it", async () => {
  const service = fresh("insecure");
  await assert.rejects(node.server(service, () => 1, { tcp: { host: "0.0.0.0" }, transport: "tcp" }), (e: unknown) => (e as Error).name === "AccessDeniedError");
  await using server = await node.server<number, number>(service, (x) => x * 3, { tcp: { host: "0.0.0.0", allowInsecure: true }, transport: "tcp" });
  await using client = await node.client<number, number>(service, { transport: "tcp" });
  await until(() => client.servers.length === 1);
  assert.equal(await client.request(7), 21);
  assert.equal(server.served, 1);
});

for (const transport of TRANSPORTS) {
  test(`${transport}: a request whose own writing aborts its signal or closes its client rejects at once (AbortError, ClosedError)`, async () => {
    const service = fresh("selfstop");
    await using server = await node.server(service, (b: Uint8Array) => b, { inPlace: true, transport });
    const client = await node.client(service, { transport, timeout: 10_000 });
    const ac = new AbortController();
    await assert.rejects(
      client.requestInPlace(8, (b) => {
        b.fill(1);
        ac.abort(new Error("enough"));
      }, { signal: ac.signal }),
      AbortError,
    );
    // A value whose encoding runs user code (a getter) that aborts.
    const values = await node.server(fresh("selfstop-values"), (v: unknown) => v, { transport });
    const vc = await node.client(values.service, { transport, timeout: 10_000 });
    const ac2 = new AbortController();
    const tricky = {
      get x(): number {
        ac2.abort();
        return 1;
      },
    };
    // (Within one thread the value itself is handed over: nothing is encoded, the getter never runs.)
    if (transport === "inproc") assert.equal(((await vc.request(tricky, { signal: ac2.signal })) as { x: number }).x, 1);
    else await assert.rejects(vc.request(tricky, { signal: ac2.signal }), AbortError);
    assert.equal(vc.inFlight, 0);
    await assert.rejects(client.requestInPlace(8, () => void client.close()), ClosedError); // not TimeoutError 10 s later
    assert.equal(client.inFlight, 0);
    await vc.close();
    await values.close();
    void server;
  });
}

test("shm in-place: answers held until the request ring is full — releasing them lets the queued requests through", async () => {
  // The client's writer keeps its held answers (pinned) whatever the server released.
  const service = fresh("held");
  await using server = await node.server(service, (b: Uint8Array) => b.subarray(0, 8), { inPlace: true, transport: "shm" });
  // An 8 KiB request ring: frames of 16 + 16 + body bytes, at most 4 KiB each.
  await using client = await node.client(service, { transport: "shm", capacity: 8192, timeout: 3000 });
  // Room left beside the held answers, but not enough for c.
  const [a, b] = await Promise.all([client.requestInPlace(new Uint8Array(3000).fill(1)), client.requestInPlace(new Uint8Array(3000).fill(2))]);
  const c = client.requestInPlace(new Uint8Array(3000).fill(3)); // waits for room
  a.release();
  const rc = await c; // a release that did not wake c's wait for room would make this a TimeoutError
  assert.ok(rc.bytes.every((x) => x === 3));
  b.release();
  rc.release();
  assert.equal(client.inFlight, 0);
  // No room at all: on a fresh ring two held answers fill it to the last byte.
  await using full = await node.client(service, { transport: "shm", capacity: 8192, timeout: 3000 });
  const size = 4096 - 32;
  const [d, e] = await Promise.all([full.requestInPlace(new Uint8Array(size).fill(4)), full.requestInPlace(new Uint8Array(size).fill(5))]);
  const f = full.requestInPlace(new Uint8Array(size).fill(6));
  d.release();
  const rf = await f;
  assert.ok(rf.bytes.every((x) => x === 6));
  e.release();
  rf.release();
  // And the channel serves on.
  const g = await full.requestInPlace(new Uint8Array(16).fill(7));
  assert.ok(g.bytes.every((x) => x === 7));
  g.release();
  assert.equal(full.inFlight, 0);
  void server;
});

test("shm in-place: a request that timed out stays the server's while it works on it, and its memory is then free", async () => {
  const service = fresh("timedout");
  const gate = deferred();
  const seen: string[] = [];
  await using server = await node.server(service, async (b: Uint8Array) => {
    if (b[0] !== 7) return b;
    await gate.promise;
    // Meanwhile the client wrote as much as its ring takes: none of it over these bytes.
    seen.push(b.every((x) => x === 7) ? "intact" : "overwritten");
    b.fill(8);
    return b;
  }, { inPlace: true, transport: "shm" });
  await using client = await node.client(service, { transport: "shm", capacity: 8192, timeout: 5000 });
  await assert.rejects(client.requestInPlace(new Uint8Array(3000).fill(7), { timeout: 50 }), TimeoutError);
  // More than the rest of the ring: those that do not fit wait for the server to let the first go.
  // (request(): answers copied out, nothing held by the client.)
  const more = Array.from({ length: 5 }, (_, i) => client.request(new Uint8Array(2000).fill(10 + i)) as Promise<Uint8Array>);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seen.length, 0);
  gate.resolve();
  for (const [i, m] of (await Promise.all(more)).entries()) assert.ok(m.every((x) => x === 10 + i));
  assert.deepEqual(seen, ["intact"]);
  // Once answered, its memory is free again: two requests of almost half the ring each fit.
  await until(() => server.inFlight === 0);
  const size = 4096 - 32;
  const [d, e] = await Promise.all([client.requestInPlace(new Uint8Array(size).fill(4), { timeout: 2000 }), client.requestInPlace(new Uint8Array(size).fill(5), { timeout: 2000 })]);
  assert.ok(d.bytes.every((x) => x === 4) && e.bytes.every((x) => x === 5));
  d.release();
  e.release();
});

test("shm in-place: a request that timed out while waiting for ring room is written later without holding memory", async () => {
  const service = fresh("latewrite");
  await using _server = await node.server(service, (b: Uint8Array) => b, { inPlace: true, transport: "shm" });
  await using client = await node.client(service, { transport: "shm", capacity: 8192, timeout: 5000 });
  const size = 4096 - 32;
  const [a, b] = await Promise.all([client.requestInPlace(new Uint8Array(size).fill(1)), client.requestInPlace(new Uint8Array(size).fill(2))]);
  // No room: it waits in the channel's queue and times out there.
  await assert.rejects(client.requestInPlace(new Uint8Array(size).fill(3), { timeout: 50 }), TimeoutError);
  a.release(); // now it is written, and answered: nobody reads that answer
  b.release();
  // Nothing left held: two more of the same size fit at once, again and again.
  for (let i = 0; i < 3; i++) {
    const [c, d] = await Promise.all([client.requestInPlace(new Uint8Array(size).fill(4), { timeout: 2000 }), client.requestInPlace(new Uint8Array(size).fill(5), { timeout: 2000 })]);
    assert.ok(c.bytes.every((x) => x === 4) && d.bytes.every((x) => x === 5));
    c.release();
    d.release();
  }
});

for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: lone requests (answered while the client polls), slow ones (answered to its reader) and bursts, in any mix`, async () => {
    const service = fresh("mix");
    await using _server = await node.server<{ ms: number; i: number }, number>(service, async ({ ms, i }) => {
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      return i;
    }, { transport });
    await using client = await node.client<{ ms: number; i: number }, number>(service, { transport, timeout: 5000 });
    await until(() => client.servers.length === 1);
    let i = 0;
    for (let round = 0; round < 4; round++) {
      for (let k = 0; k < 50; k++) assert.equal(await client.request({ ms: 0, i: ++i }), i); // lone and fast
      for (const ms of [2, 0, 15, 0]) assert.equal(await client.request({ ms, i: ++i }), i); // lone, some slower than any poll
      const burst = Array.from({ length: 40 }, (_, k) => ({ ms: k % 7 === 0 ? 5 : 0, i: ++i }));
      assert.deepEqual(await Promise.all(burst.map((r) => client.request(r))), burst.map((r) => r.i));
      // A lone request while another, slow, is in flight; then lone again.
      const slow = client.request({ ms: 20, i: ++i });
      const slowI = i;
      assert.equal(await client.request({ ms: 0, i: ++i }), i);
      assert.equal(await slow, slowI);
    }
    assert.equal(client.inFlight, 0);
  });
}

test("a request aborted just as it gets its in-flight slot rejects AbortError and is not sent", async () => {
  const service = fresh("abort-race");
  const seen: number[] = [];
  await using server = await node.server<number, number>(service, (x) => {
    seen.push(x);
    return x;
  }, { transport: "shm" });
  await using client = await node.client<number, number>(service, { transport: "shm", maxInFlight: 1 });
  await until(() => client.servers.length === 1);
  const ac = new AbortController();
  const first = client.request(1);
  const second = client.request(2, { signal: ac.signal, timeout: 2000 }); // waits for the slot
  void first.then(() => ac.abort()); // runs after the slot was handed to `second`, before it is sent
  assert.equal(await first, 1);
  await assert.rejects(second, AbortError);
  assert.equal(await client.request(3), 3); // the slot was given back
  assert.deepEqual(seen, [1, 3]);
  assert.equal(server.served, 2);
});

for (const transport of ["inproc", "shm"] as const) {
  test(`${transport}: a request made by a promise hook while another request's promise is being made: both answered`, async () => {
    const service = fresh("hooked");
    await using _server = await node.server<string, string>(service, (s) => s, { transport });
    await using client = await node.client<string, string>(service, { transport });
    await until(() => client.servers.length === 1);
    let armed = false;
    let inner: Promise<string> | undefined;
    const stop = promiseHooks.onInit(() => {
      if (!armed) return;
      armed = false;
      inner = client.request("inner");
    });
    armed = true;
    const outer = client.request("outer");
    stop();
    assert.ok(inner !== undefined, "the hook made its request");
    assert.equal(await outer, "outer");
    assert.equal(await inner, "inner");
    assert.equal(client.inFlight, 0);
  });
}

test("wire: a header written as four words (little-endian hosts, the rings' fast path) is the byte-wise header", () => {
  assert.equal(LITTLE_ENDIAN, new Uint8Array(Uint16Array.of(1).buffer)[0] === 1);
  if (!LITTLE_ENDIAN) return; // (big-endian hosts write byte by byte only)
  for (const [type, flags, id, aux] of [[1, 0, 1, 0], [2, 1, 0xffffffff, 0x80000000], [4, 0, 0x12345678, 4095], [3, 1, 7, 0xfffffff0]]) {
    const bytes = new Uint8Array(32).fill(0xee);
    writeHeader(bytes, 16, type as RpcType, flags, id, aux);
    const words = new Int32Array(8).fill(-1);
    writeHeaderWords(words, 4, type as RpcType, flags, id, aux);
    const asBytes = new Uint8Array(words.buffer);
    assert.deepEqual(asBytes.subarray(16), bytes.subarray(16));
    assert.deepEqual(readHeader(asBytes, 16, 32), { type, flags, id, aux });
  }
});

test("wire: bodies are read in place at an offset (views) or copied out (owned), and bad ones are ProtocolErrors", () => {
  for (const value of [new Uint8Array([1, 2, 3]), Buffer.from("buf"), { a: [1, "x"], f: Float32Array.of(0.5) }, null]) {
    const frame = encode(value);
    // The message sits between other bytes, as in a ring or a socket chunk: read at [at, end).
    const memory = new Uint8Array(8 + RPC_HEADER + frame.byteLength + 5).fill(0xee);
    const at = 8 + RPC_HEADER;
    const end = at + frame.byteLength;
    memory.set(frame, at);
    const view = decodeAt(memory, at, end);
    const owned = decodeOwned(memory, at, end);
    assert.deepStrictEqual(view, value);
    assert.deepStrictEqual(owned, value);
    if (value instanceof Uint8Array) {
      assert.equal(Buffer.isBuffer(view), Buffer.isBuffer(value));
      assert.equal(Buffer.isBuffer(owned), Buffer.isBuffer(value));
      assert.equal((view as Uint8Array).buffer, memory.buffer, "decodeAt gives a view of the message");
      assert.notEqual((owned as Uint8Array).buffer, memory.buffer, "decodeOwned gives a copy");
      memory[end - 1] ^= 0xff;
      assert.equal((view as Uint8Array).at(-1), memory[end - 1]);
      assert.notEqual((owned as Uint8Array).at(-1), memory[end - 1]);
    }
  }
  // A raw frame whose length field disagrees with its size, a bad magic, a truncated header.
  const bad = encode(new Uint8Array(8));
  const message = new Uint8Array(RPC_HEADER + bad.byteLength + 4);
  message.set(bad, RPC_HEADER);
  assert.throws(() => decodeAt(message, RPC_HEADER, message.length), { code: "ERR_PLEXUS_PROTOCOL" });
  assert.throws(() => decodeOwned(message, RPC_HEADER, message.length), { code: "ERR_PLEXUS_PROTOCOL" });
  assert.throws(() => decodeAt(message, RPC_HEADER, message.length - 5), { code: "ERR_PLEXUS_PROTOCOL" }, "cut short");
  assert.throws(() => decodeAt(new Uint8Array(RPC_HEADER + 20), RPC_HEADER, RPC_HEADER + 20), { code: "ERR_PLEXUS_PROTOCOL" });
  assert.throws(() => decodeOwned(new Uint8Array(RPC_HEADER + 3), RPC_HEADER, RPC_HEADER + 3), { code: "ERR_PLEXUS_PROTOCOL" });
});

test("a client and a server made by two nodes of one thread link directly (inproc), whichever is made first", async () => {
  const { node, address } = await graph();
  await using other = await connect({ address, embedded: false });
  // The client first, then the server on another node; then a second client after it.
  await using early = await node.client<number, number>("same-thread/svc");
  await using server = await other.server<number, number>("same-thread/svc", (n) => n + 1);
  await until(() => early.servers.length > 0);
  await using late = await node.client<number, number>("same-thread/svc");
  assert.equal(await early.request(1), 2);
  assert.equal(await late.request(2), 3);
  assert.deepEqual(early.transports, [{ server: server.id, transport: "inproc" }]);
  assert.deepEqual(late.transports, [{ server: server.id, transport: "inproc" }]);
});
