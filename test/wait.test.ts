// The one wait primitive (Deferred, WaitList, AsyncQueue), and the promise every waiting call
// keeps: once it settled — answered, timed out, aborted or closed — no listener of its stays on
// the caller's AbortSignal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { Deferred, WaitList } from "../src/util/wait.js";
import { AsyncQueue } from "../src/util/async-queue.js";
import { connect, TcpSender, connectTcp, queue, type Node } from "../src/index.js";
import { GraphServer } from "../src/graph/server.js";
import { Reader, Writer } from "../src/zerobuffer/index.js";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Abort listeners on `signal` now. */
function listeners(signal: AbortSignal): number {
  return getEventListeners(signal, "abort").length;
}

/** Runs `call` with a fresh signal, lets it settle, and says whether it resolved and what listeners stayed. */
async function settle(call: (signal: AbortSignal) => Promise<unknown>, abortAfter?: number): Promise<{ ok: boolean; error?: unknown; left: number }> {
  const ac = new AbortController();
  const timer = abortAfter === undefined ? undefined : setTimeout(() => ac.abort(new Error("stop")), abortAfter);
  try {
    await call(ac.signal);
    return { ok: true, left: listeners(ac.signal) };
  } catch (error) {
    return { ok: false, error, left: listeners(ac.signal) };
  } finally {
    clearTimeout(timer);
  }
}

class Item {
  released = 0;
  constructor(readonly n: number) {}
  release(): void {
    this.released++;
  }
}

test("wait: a deferred settles once, by its owner, its timeout or its signal, and leaves no listener", async () => {
  const ac = new AbortController();
  let settledCalls = 0;
  const a = new Deferred<number>({ timeout: 10_000, signal: ac.signal, what: "a" }, undefined, () => settledCalls++);
  assert.equal(listeners(ac.signal), 1);
  assert.equal(a.resolve(1), true);
  assert.equal(a.resolve(2), false);
  assert.equal(a.reject(new Error("late")), false);
  assert.equal(await a.promise, 1);
  assert.equal(listeners(ac.signal), 0);
  assert.equal(settledCalls, 1);

  const t = new Deferred<number>({ timeout: 5, signal: ac.signal, what: "the wait" }, undefined);
  await assert.rejects(t.promise, { code: "ERR_PLEXUS_TIMEOUT", message: "the wait timed out after 5 ms" });
  assert.equal(listeners(ac.signal), 0);
  assert.ok(t.rejected);

  const b = new Deferred<number>({ signal: ac.signal, what: "b" }, undefined);
  ac.abort("why");
  await assert.rejects(b.promise, (e: unknown) => e instanceof Error && (e as { code?: string }).code === "ERR_PLEXUS_ABORTED" && e.cause === "why");
  assert.equal(listeners(ac.signal), 0);

  const c = new Deferred<number>({ signal: ac.signal, what: "c" }, undefined);
  assert.ok(c.settled, "an already-aborted signal rejects at once");
  await assert.rejects(c.promise, { code: "ERR_PLEXUS_ABORTED" });

  const custom = new Deferred<void>({ timeout: 1, what: "x", timeoutError: () => new RangeError("mine") }, undefined);
  await assert.rejects(custom.promise, RangeError);
});

test("wait: deadlines share one timer: each wait times out in its own time, never early, however many are pending", async () => {
  // Mixed timeouts in a shuffled order, some settled before their time: every other one must
  // reject with its own message, no earlier than its timeout, and in the order of its deadline.
  const timeouts = [1, 3, 7, 15, 40, 64, 65, 90, 150, 260];
  const started = performance.now();
  const order: number[] = [];
  const waits = [...timeouts].reverse().map((ms) => {
    const d = new Deferred<number>({ timeout: ms, what: `w${ms}` }, undefined);
    const seen = d.promise.then(
      () => ({ ms, at: -1 }),
      (e: unknown) => {
        order.push(ms);
        assert.equal((e as Error).message, `w${ms} timed out after ${ms} ms`);
        return { ms, at: performance.now() - started };
      },
    );
    return { d, ms, seen };
  });
  for (const w of waits) if (w.ms === 65 || w.ms === 7) assert.equal(w.d.resolve(1), true); // settled in time: never expire
  const results = await Promise.all(waits.map((w) => w.seen));
  for (const r of results) {
    if (r.ms === 65 || r.ms === 7) assert.equal(r.at, -1);
    else assert.ok(r.at >= r.ms, `the ${r.ms} ms wait timed out early, after ${r.at.toFixed(2)} ms`);
  }
  assert.deepEqual(order, timeouts.filter((ms) => ms !== 65 && ms !== 7));
  // 10,000 waits settled in time leave nothing pending: the next short one still times out alone
  for (let i = 0; i < 10_000; i++) new Deferred<number>({ timeout: 10_000, what: "x" }, undefined).resolve(i);
  await assert.rejects(new Deferred<number>({ timeout: 2, what: "late" }, undefined).promise, { message: "late timed out after 2 ms" });
});

/** Runs a module body in a child process; resolves with its exit code and output, or rejects after `limitMs`. */
function child(body: string, limitMs: number): Promise<{ code: number | null; out: string }> {
  const wait = fileURLToPath(new URL("../src/util/wait.js", import.meta.url));
  const src = `import { Deferred } from ${JSON.stringify(wait)};\n${body}`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`the child was still running after ${limitMs} ms (output: ${JSON.stringify(out)})`));
    }, limitMs);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test("wait: a pending timeout keeps the process alive until it fires; a settled one does not keep it alive", async () => {
  // pending: nothing else keeps the child alive, yet it must see its wait time out
  const pending = await child(`new Deferred({ timeout: 300, what: "w" }, undefined).promise.catch((e) => console.log(e.message));`, 20_000);
  assert.deepEqual(pending, { code: 0, out: "w timed out after 300 ms\n" });
  // settled: the 60 s deadline must not hold the child (it would outlive the 20 s limit)
  const settled = await child(`const d = new Deferred({ timeout: 60000, what: "w" }, undefined); d.resolve(1); console.log(await d.promise);`, 20_000);
  assert.deepEqual(settled, { code: 0, out: "1\n" });
});

test("wait: a wait list wakes in FIFO order; waits that give up leave it", async () => {
  const ac = new AbortController();
  const left: string[] = [];
  const list = new WaitList<number, string>((d) => left.push(d.data));
  const a = list.wait({ what: "a", signal: ac.signal }, "a");
  const b = list.wait({ what: "b", timeout: 5 }, "b");
  const c = list.wait({ what: "c", signal: ac.signal }, "c");
  assert.equal(list.size, 3);
  assert.equal(list.first()?.data, "a");
  await assert.rejects(b, { code: "ERR_PLEXUS_TIMEOUT" });
  assert.equal(list.size, 2);
  assert.equal(list.wakeOne(1), true);
  assert.equal(await a, 1);
  assert.equal(list.first()?.data, "c");
  list.failAll(new Error("end"));
  await assert.rejects(c, /end/);
  assert.equal(list.size, 0);
  assert.equal(list.wakeOne(2), false);
  assert.deepEqual(left, ["b", "a", "c"]);
  assert.equal(listeners(ac.signal), 0);
});

test("wait: many waits on one signal share one listener, gone with the last; abort reaches them all", async () => {
  const ac = new AbortController();
  const list = new WaitList<number>();
  const waits = Array.from({ length: 50 }, () => list.wait({ what: "w", signal: ac.signal }));
  assert.equal(listeners(ac.signal), 1, "one listener for 50 waits");
  for (let i = 0; i < 25; i++) list.wakeOne(i);
  assert.equal(listeners(ac.signal), 1);
  ac.abort("shutdown");
  const results = await Promise.allSettled(waits);
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 25);
  assert.equal(results.filter((r) => r.status === "rejected" && (r.reason as { code?: string }).code === "ERR_PLEXUS_ABORTED").length, 25);
  assert.equal(listeners(ac.signal), 0);

  const shared = new AbortController();
  const more = Array.from({ length: 20 }, () => list.wait({ what: "w", signal: shared.signal }));
  list.wakeAll(7);
  assert.deepEqual(await Promise.all(more), new Array(20).fill(7));
  assert.equal(listeners(shared.signal), 0, "the listener leaves with the last wait");
  const again = list.wait({ what: "w", signal: shared.signal });
  assert.equal(listeners(shared.signal), 1, "and comes back for the next");
  list.wakeOne(1);
  await again;
  assert.equal(listeners(shared.signal), 0);
});

test("wait: the async queue applies block, drop-oldest and fail", async () => {
  const drop = new AsyncQueue<Item>(2, "drop-oldest");
  const items = [1, 2, 3, 4].map((n) => new Item(n));
  for (const i of items) drop.push(i);
  assert.equal(drop.length, 2);
  assert.equal(drop.missed, 2);
  assert.deepEqual(items.map((i) => i.released), [1, 1, 0, 0], "dropped items are released");
  assert.equal(drop.tryShift()?.n, 3);

  const fail = new AsyncQueue<Item>(1, "fail");
  fail.push(new Item(1));
  const refused = new Item(2);
  assert.throws(() => fail.push(refused), { code: "ERR_PLEXUS_BACKPRESSURE" });
  assert.equal(refused.released, 1);

  const block = new AsyncQueue<Item>(1, "block");
  block.push(new Item(1));
  const ac = new AbortController();
  const waiting = block.push(new Item(2), { signal: ac.signal });
  assert.ok(waiting instanceof Promise);
  assert.equal(listeners(ac.signal), 1);
  assert.equal((await block.shift())?.n, 1);
  await waiting;
  assert.equal(listeners(ac.signal), 0);
  assert.equal((await block.shift({ signal: ac.signal }))?.n, 2);
  const timedOut = new Item(3);
  block.push(new Item(4));
  await assert.rejects(block.push(timedOut, { timeout: 5 }) as Promise<void>, { code: "ERR_PLEXUS_TIMEOUT" });
  assert.equal(timedOut.released, 1, "an item that found no room is released");

  const empty = new AsyncQueue<Item>(1, "block");
  const reader = empty.shift({ signal: ac.signal });
  empty.end(new Error("gone"));
  await assert.rejects(reader, /gone/);
  assert.equal(listeners(ac.signal), 0);
});

test("wait: an async queue's taker takes what finds the queue empty while a reader waits, in the push; everything else keeps its order", async () => {
  const q = new AsyncQueue<Item>(4, "block");
  const taken: number[] = [];
  let accept = true;
  q.taker = (i) => {
    if (!accept) return false;
    taken.push(i.n);
    return true;
  };
  q.push(new Item(1));
  assert.deepEqual(taken, [], "no reader waits: queued");
  assert.equal(q.tryShift()?.n, 1);
  const reader = q.shift();
  q.push(new Item(2));
  assert.deepEqual(taken, [2], "taken in the push, the reader still waiting");
  accept = false;
  q.push(new Item(3));
  accept = true;
  q.push(new Item(4));
  assert.deepEqual(taken, [2], "3 went to the reader, which does not wait any more: 4 is queued behind it");
  assert.equal((await reader)?.n, 3);
  assert.equal(q.tryShift()?.n, 4);
  q.push(new Item(5));
  const late = q.shift();
  assert.equal((await late)?.n, 5, "what was queued is read before anything is offered to the taker");
  const next = q.shift();
  q.push(new Item(6));
  assert.deepEqual(taken, [2, 6]);
  assert.equal(q.taken, 2);
  assert.equal(q.accepted, 6);
  q.taker = undefined;
  q.push(new Item(7));
  assert.equal((await next)?.n, 7);
  q.taker = () => true;
  q.end();
  const ended = new Item(8);
  q.push(ended);
  assert.equal(ended.released, 1, "an ended queue releases what comes, taker or not");
});

test("wait: no listener stays on the caller's signal after any waiting call settled", async (t) => {
  await using server = await GraphServer.start({ port: 0 });
  await using node: Node = await connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
  const check = async (name: string, call: (signal: AbortSignal) => Promise<unknown>, expect: "ok" | string, abortAfter?: number): Promise<void> => {
    const r = await settle(call, abortAfter);
    const got = r.ok ? "ok" : ((r.error as { code?: string }).code ?? String(r.error));
    assert.equal(got, expect, `${name}: ${r.ok ? "resolved" : String(r.error)}`);
    assert.equal(r.left, 0, `${name}: ${r.left} abort listener(s) left on the caller's signal`);
  };

  await t.test("graph, pub/sub and request/response", async () => {
    await check("connect", async (signal) => (await connect({ address: `127.0.0.1:${server.address.port}`, embedded: false, signal })).close(), "ok");
    await using pub = await node.publisher<number>("wait/t");
    await using sub = await node.subscriber<number>("wait/t");
    await check("receive, timed out", (signal) => sub.receive({ timeout: 5, signal }), "ERR_PLEXUS_TIMEOUT");
    await check("receive, aborted", (signal) => sub.receive({ signal }), "ERR_PLEXUS_ABORTED", 5);
    await check("publish", (signal) => pub.publish(1, { signal }), "ok");
    await check("receive, answered", (signal) => sub.receive({ timeout: 5000, signal }).then((s) => s?.release()), "ok");
    for (const transport of ["shm", "tcp"] as const) {
      await using srv = await node.server<number, number>(`wait/${transport}`, async (n) => {
        if (n < 0) await new Promise((r) => setTimeout(r, 200));
        return n + 1;
      }, { transport });
      await using client = await node.client<number, number>(`wait/${transport}`, { transport, maxInFlight: 1 });
      await check(`request over ${transport}, answered`, (signal) => client.request(1, { signal, timeout: 5000 }), "ok");
      await check(`request over ${transport}, timed out`, (signal) => client.request(-1, { signal, timeout: 20 }), "ERR_PLEXUS_TIMEOUT");
      const busy = client.request(-1, { timeout: 5000 });
      await check(`request over ${transport} waiting for a slot, aborted`, (signal) => client.request(1, { signal }), "ERR_PLEXUS_ABORTED", 5);
      await check(`request over ${transport} waiting for a slot, answered`, (signal) => client.request(1, { signal, timeout: 5000 }), "ok");
      await busy;
      // many requests in flight on one signal: one listener, no MaxListenersExceededWarning
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(w.name);
      process.on("warning", onWarning);
      try {
        await using wide = await node.client<number, number>(`wait/${transport}`, { transport });
        const ac = new AbortController();
        const many = Array.from({ length: 40 }, (_, i) => wide.request(-i - 1, { signal: ac.signal, timeout: 5000 }));
        assert.equal(listeners(ac.signal), 1, `over ${transport}: one listener for 40 requests in flight`);
        await Promise.all(many);
        assert.equal(listeners(ac.signal), 0);
        await new Promise((r) => setImmediate(r));
        assert.ok(!warnings.includes("MaxListenersExceededWarning"), warnings.join(", "));
      } finally {
        process.off("warning", onWarning);
      }
      assert.ok(srv.counters.requests >= 40, `the server answered them all (${srv.counters.requests})`);
    }
  });

  await t.test("transports", async () => {
    await using sender = await TcpSender.create({ capacity: 1 << 16 });
    await check("tcp connect", async (signal) => (await connectTcp(sender.address, { signal })).close(), "ok");
    await using rx = await connectTcp(sender.address, { backpressure: "block" });
    await check("tcp receive, timed out", (signal) => rx.receive({ timeout: 5, signal }), "ERR_PLEXUS_TIMEOUT");
    await check("tcp send", (signal) => sender.send(new Uint8Array(100), { signal }), "ok");
    await check("tcp receive, answered", (signal) => rx.receive({ timeout: 5000, signal }).then((f) => f?.release()), "ok");
    // fill the receiver's window: the next send waits for room, then gives up
    const big = new Uint8Array(1 << 14);
    while (sender.trySend(big)) {
      /* until the window is full */
    }
    await check("tcp send waiting for room, timed out", (signal) => sender.send(big, { timeout: 20, signal }), "ERR_PLEXUS_TIMEOUT");
    await check("tcp send waiting for room, aborted", (signal) => sender.send(big, { signal }), "ERR_PLEXUS_ABORTED", 5);
  });

  await t.test("queues", async () => {
    await using qs = await queue.server({ url: "tcp://127.0.0.1:0" });
    await check("queue connect", async (signal) => (await queue.client({ url: qs.url, signal })).close(), "ok");
    await using qc = await queue.client({ url: qs.url });
    await check("queue get, timed out", (signal) => qs.get({ timeout: 5, signal }), "ERR_PLEXUS_TIMEOUT");
    await check("queue get, aborted", (signal) => qs.get({ signal }), "ERR_PLEXUS_ABORTED", 5);
    const got = qs.get({ timeout: 5000 }).then((m) => m?.release());
    await check("queue put, acknowledged", (signal) => qc.put(1, { signal, timeout: 5000 }), "ok");
    await got;
  });

  await t.test("zerobuffer", async () => {
    const name = `plexus-wait-${randomBytes(4).toString("hex")}`;
    await using reader = await Reader.create(name, { payloadSize: 1 << 16 });
    await using writer = await Writer.connect(name);
    await check("zb read, timed out", (signal) => reader.read({ timeout: 5, signal }), "ERR_PLEXUS_TIMEOUT");
    await check("zb read, aborted", (signal) => reader.read({ signal }), "ERR_PLEXUS_ABORTED", 5);
    await check("zb write", (signal) => writer.write(new Uint8Array(64), { signal }), "ok");
    await check("zb read, answered", async (signal) => (await reader.read({ timeout: 5000, signal })).release(), "ok");
  });
});

test("wait: a zerobuffer sleep on an already-aborted signal rejects with AbortError (it threw a ReferenceError)", async () => {
  const { sleep } = await import("../src/zerobuffer/waits.js");
  const ac = new AbortController();
  ac.abort("gone");
  await assert.rejects(sleep(10_000, ac.signal), (e: unknown) => (e as { code?: string }).code === "ERR_PLEXUS_ABORTED" && (e as Error).cause === "gone");
  const live = new AbortController();
  const pending = sleep(10_000, live.signal);
  live.abort("later");
  await assert.rejects(pending, { code: "ERR_PLEXUS_ABORTED" });
  assert.equal(listeners(live.signal), 0);
  await sleep(1);
});
