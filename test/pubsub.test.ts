import { test } from "node:test";
import assert from "node:assert/strict";
import { AbortError, ClosedError, connect, EncodeError, GraphServer, InvalidArgumentError, TimeoutError, type Snapshot } from "../src/index.js";
import { fixture } from "./helpers/child.js";

async function server(): Promise<{ server: GraphServer; address: string }> {
  const s = await GraphServer.start({ port: 0 });
  return { server: s, address: `127.0.0.1:${s.address.port}` };
}

interface Msg {
  seq: number;
  from: string;
  data: Float64Array;
}

test("pubsub: in the same thread the subscriber gets the value itself", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<{ n: number }>("local/t");
  await using sub = await node.subscriber<{ n: number }>("local/t");
  const value = { n: 1 };
  await pub.publish(value);
  const sample = await sub.receive({ timeout: 2000 });
  assert.ok(sample);
  assert.equal(sample.value, value, "no encoding, no copy");
  assert.equal(sample.sequence, 1);
  assert.equal(sample.topic, "local/t");
  assert.equal(sample.publisher, pub.id);
});

test("pubsub: a subscriber made before a publisher of its own thread still gets the value itself (same node, another node)", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using other = await connect({ address, embedded: false });
  await using first = await node.subscriber<{ n: number }>("order/t");
  await using second = await other.subscriber<{ n: number }>("order/t");
  await using pub = await node.publisher<{ n: number }>("order/t");
  // the publisher is reached once its creation returned (the GraphServer waits for the subscribers to link)
  assert.deepEqual(first.transports, [{ publisher: pub.id, transport: "inproc" }], "same node");
  assert.deepEqual(second.transports, [{ publisher: pub.id, transport: "inproc" }], "another node of the same thread");
  const value = { n: 1 };
  await pub.publish(value);
  assert.equal((await first.receive({ timeout: 2000 }))?.value, value, "no encoding, no copy");
  assert.equal((await second.receive({ timeout: 2000 }))?.value, value, "no encoding, no copy");
  // and a publisher made first is found from another node of the thread too
  await using later = await other.subscriber<{ n: number }>("order/t");
  assert.deepEqual(later.transports, [{ publisher: pub.id, transport: "inproc" }]);
});

test("pubsub: a topic edge makes a subscriber of b receive what is published on a", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using sub = await node.subscriber<string>("dag/b");
  await using pub = await node.publisher<string>("dag/a");
  await pub.publish("before the edge");
  assert.equal(sub.tryReceive(), null);
  await node.connect("dag/a", "dag/b");
  await pub.publish("after the edge");
  const got = await sub.receive({ timeout: 2000 });
  assert.equal(got?.value, "after the edge");
  await assert.rejects(node.connect("dag/b", "dag/a"), { code: "ERR_PLEXUS_CYCLE" });
  await node.disconnect("dag/a", "dag/b");
  await pub.publish("after removal");
  assert.equal(sub.tryReceive(), null);
});

test("pubsub: across processes over shared memory, typed arrays arrive as views (fan-out to 3)", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  const count = 500;
  const subs = [0, 1, 2].map(() => fixture("pubsub-peer", { role: "sub", address, topic: "fan/out", count }));
  for (const c of subs) assert.equal(await c.line(), "ready");
  const pub = fixture("pubsub-peer", { role: "pub", address, topic: "fan/out", count, subscribers: 3 });
  for (const c of subs) assert.deepEqual(JSON.parse(await c.line(30000)), { count, errors: [], zeroCopy: true });
  assert.equal(await pub.line(30000), "ready");
  assert.equal(await pub.line(30000), "done");
  assert.equal(await pub.exited, 0);
});

test("pubsub: fan-in from 3 publisher processes through a DAG relay", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  for (const p of ["p1", "p2", "p3"]) await node.connect(`in/${p}`, "in/all");
  const count = 200;
  await using sub = await node.subscriber<Msg>("in/all", { queue: 64 });
  const pubs = ["p1", "p2", "p3"].map((p) => fixture("pubsub-peer", { role: "pub", address, topic: `in/${p}`, count, from: p }));
  const last = new Map<string, number>();
  for (let i = 0; i < 3 * count; i++) {
    const smp = await sub.receive({ timeout: 30000 });
    assert.ok(smp);
    const m = smp.value;
    assert.equal(m.seq, (last.get(m.from) ?? 0) + 1, `order of ${m.from}`);
    last.set(m.from, m.seq);
    assert.deepEqual([...m.data], new Array(8).fill(m.seq));
    smp.release();
  }
  assert.deepEqual([...last.entries()].sort(), [["p1", count], ["p2", count], ["p3", count]]);
  for (const p of pubs) assert.equal(await p.exited, 0);
});

test("pubsub: kill -9 of a publisher process: the subscriber is told and keeps receiving from others", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using sub = await node.subscriber<Msg>("kill/t", { queue: 64 });
  await using local = await node.publisher<Msg>("kill/t");
  const victim = fixture("pubsub-peer", { role: "pub", address, topic: "kill/t", count: 0, hang: true, from: "victim" });
  const first = await sub.receive({ timeout: 20000 });
  assert.equal(first?.value.from, "victim");
  first?.release();
  victim.proc.kill("SIGKILL");
  await victim.exited;
  for (let i = 0; i < 200 && sub.publishers.length > 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(sub.publishers, [local.id], "the dead publisher was unlinked");
  for (let x = sub.tryReceive(); x !== null; x = sub.tryReceive()) x.release();
  await local.publish({ seq: 1, from: "local", data: new Float64Array(8).fill(1) });
  let got;
  do {
    got = await sub.receive({ timeout: 5000 });
    got?.release();
  } while (got && got.value.from !== "local");
  assert.equal(got?.value.from, "local");
  assert.equal(s.snapshot().publishers.length, 1);
});

test("pubsub: kill -9 of a subscriber process never blocks the publisher", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Msg>("slow/t", { capacity: 1 << 16, timeout: 20000 });
  const victim = fixture("pubsub-peer", { role: "sub", address, topic: "slow/t", count: 1e9 });
  assert.equal(await victim.line(), "ready");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  victim.proc.kill("SIGSTOP"); // it stops reading: the ring fills up
  let seq = 1;
  const sending = (async () => {
    for (; seq <= 5000; seq++) await pub.publish({ seq, from: "p", data: new Float64Array(8) });
  })();
  await new Promise((r) => setTimeout(r, 100));
  victim.proc.kill("SIGKILL");
  await sending;
  assert.equal(seq, 5001);
  assert.equal(pub.subscribers, 0);
});

test("pubsub: values that cannot be encoded fail at publish, closed handles refuse work", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  const node = await connect({ address, embedded: false });
  const pub = await node.publisher<unknown>("enc/t");
  const child = fixture("pubsub-peer", { role: "sub", address, topic: "enc/t", count: 1 });
  assert.equal(await child.line(), "ready");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  await assert.rejects(pub.publish({ f: () => 1 }), (e: { code?: string }) => typeof e.code === "string" && e.code.startsWith("ERR_PLEXUS"));
  await pub.publish({ seq: 1, from: "p", data: new Float64Array(8).fill(1) });
  assert.deepEqual(JSON.parse(await child.line()), { count: 1, errors: [], zeroCopy: true });
  await node.close();
  await assert.rejects(pub.publish({}), { code: "ERR_PLEXUS_CLOSED" });
  await assert.rejects(node.publisher("x"), { code: "ERR_PLEXUS_CLOSED" });
});

test("pubsub: a value that cannot be encoded is refused at publish whoever subscribes: nobody, this thread, another process", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<unknown>("refuse/t");
  const bad: [unknown, string][] = [
    [() => 1, "cannot encode value: a function"],
    [Symbol("s"), "cannot encode value: a symbol"],
    [{ a: [1, { f() {} }] }, "cannot encode value.a[1].f: a function"],
  ];
  const refused = async (stage: string): Promise<void> => {
    for (const [value, message] of bad) {
      await assert.rejects(pub.publish(value), (e: unknown) => {
        assert.ok(e instanceof EncodeError, `${stage}: ${String(e)}`);
        assert.equal(e.message, message, stage);
        return true;
      });
    }
  };
  // (a) nobody subscribes
  assert.equal(pub.subscribers, 0);
  await refused("no subscriber");
  // (b) a subscriber in this thread: it receives none of them; a good value arrives itself
  {
    await using local = await node.subscriber<unknown>("refuse/t");
    assert.equal(pub.subscribers, 1);
    await refused("same thread");
    assert.equal(local.tryReceive(), null, "nothing was handed over");
    const value = { n: 1, list: Array.from({ length: 1000 }, (_, i) => ({ i })) };
    await pub.publish(value);
    const got = await local.receive({ timeout: 2000 });
    assert.equal(got?.value, value, "the value itself, no copy");
    assert.equal(got?.sequence, 1, "refused values take no sequence number");
  }
  // (c) a subscriber in another process
  const child = fixture("pubsub-peer", { role: "sub", address, topic: "refuse/t", count: 1 });
  assert.equal(await child.line(), "ready");
  while (pub.subscribers === 0) await new Promise((r) => setTimeout(r, 2));
  await refused("another process");
  await pub.publish({ seq: 1, from: "p", data: new Float64Array(8).fill(1) });
  assert.deepEqual(JSON.parse(await child.line()), { count: 1, errors: [], zeroCopy: true });
});

test("pubsub: kill -9 of the process hosting the embedded GraphServer: data keeps flowing, graph calls fail typed", async () => {
  const probe = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${probe.address.port}`;
  await probe.close();
  const host = fixture("pubsub-peer", { role: "host", address, topic: "-", count: 0 });
  assert.equal(await host.line(), "ready");
  await using node = await connect({ address, embedded: false });
  assert.equal(node.hostsGraph, false);
  await using sub = await node.subscriber<Msg>("host/t", { queue: 64 });
  const pub = fixture("pubsub-peer", { role: "pub", address, topic: "host/t", count: 0, hang: true });
  const first = await sub.receive({ timeout: 20000 });
  assert.equal(first?.value.seq, 1);
  first?.release();
  host.proc.kill("SIGKILL");
  await host.exited;
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 100; i++) {
        await node.snapshot();
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    { code: "ERR_PLEXUS_PEER_DEAD" },
  );
  // The shared-memory link does not need the GraphServer.
  let last = 1;
  for (let i = 0; i < 50; i++) {
    const s = await sub.receive({ timeout: 10000 });
    assert.ok(s);
    assert.equal(s.value.seq, last + 1);
    last = s.value.seq;
    s.release();
  }
  pub.proc.kill("SIGKILL");
  await pub.exited;
});

test("pubsub: the callback form, queue limits and leaky subscribers that count what they missed", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<number>("cb/t");
  const sub = await node.subscriber<number>("cb/t");
  const seen: number[] = [];
  const done = sub.forEach(async (smp) => {
    seen.push(smp.value);
    if (seen.length === 3) await sub.close();
  });
  assert.throws(() => sub[Symbol.asyncIterator](), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  for (let i = 1; i <= 3; i++) await pub.publish(i);
  await done;
  assert.deepEqual(seen, [1, 2, 3]);

  await using leaky = await node.subscriber<number>("cb/t", { backpressure: "drop-oldest", queue: 4 });
  for (let i = 1; i <= 10; i++) await pub.publish(i);
  const got: number[] = [];
  for (let x = leaky.tryReceive(); x !== null; x = leaky.tryReceive()) got.push(x.value);
  assert.deepEqual(got, [7, 8, 9, 10]);
  assert.equal(leaky.takeMissed(), 6);

  await using strict = await node.subscriber<number>("cb/t", { backpressure: "fail", queue: 2 });
  await pub.publish(1);
  await pub.publish(2);
  await assert.rejects(pub.publish(3), { code: "ERR_PLEXUS_BACKPRESSURE" });
  await strict.close();

  await using slow = await node.subscriber<number>("cb/t", { queue: 1 });
  await pub.publish(1);
  await assert.rejects(pub.publish(2, { timeout: 20 }), { code: "ERR_PLEXUS_TIMEOUT" });
  const ac = new AbortController();
  const blocked = pub.publish(3, { signal: ac.signal });
  ac.abort("stop");
  await assert.rejects(blocked, { code: "ERR_PLEXUS_ABORTED" });
  assert.equal((await slow.receive({ timeout: 100 }))?.value, 1);
  await assert.rejects(slow.receive({ timeout: 10 }), { code: "ERR_PLEXUS_TIMEOUT" });
});

test("pubsub: a loan is written in place in shared memory and arrives as bytes in another process", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Uint8Array>("loan/t");
  const child = fixture("pubsub-loan-reader", { address, topic: "loan/t" });
  assert.equal(await child.line(), "ready");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  const loan = await pub.loan(1 << 20);
  assert.ok(loan.bytes.buffer instanceof SharedArrayBuffer, "the loan is the ring itself");
  for (let i = 0; i < loan.bytes.length; i++) loan.bytes[i] = (i * 7) & 0xff;
  loan.commit(1000);
  const aborted = await pub.loan(10);
  aborted.abort();
  const second = await pub.loan(3);
  second.bytes.set([1, 2, 3]);
  second.commit();
  assert.deepEqual(JSON.parse(await child.line()), [
    { seq: 1, length: 1000, ok: true },
    { seq: 2, length: 3, ok: false },
  ]);
});

test("pubsub: over TCP (forced), the subscriber process gets every message with its typed arrays", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Msg>("tcp/t");
  const count = 300;
  const child = fixture("pubsub-peer", { role: "sub", address, topic: "tcp/t", count, transport: "tcp" });
  assert.equal(await child.line(), "ready");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  for (let seq = 1; seq <= count; seq++) await pub.publish({ seq, from: "p", data: new Float64Array(8).fill(seq) });
  assert.deepEqual(JSON.parse(await child.line(30000)), { count, errors: [], zeroCopy: false });
});

test("pubsub: a publisher whose /dev/shm is full falls back to TCP with a warning", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using sub = await node.subscriber<Msg>("nospace/t", { queue: 64 });
  // The publisher runs in its own mount namespace with a 1 MiB /dev/shm: its 4 MiB ring cannot exist.
  const script = new URL("./fixtures/pubsub-peer.js", import.meta.url).pathname;
  const args = JSON.stringify({ role: "pub", address, topic: "nospace/t", count: 50, subscribers: 1, capacity: 4 << 20 });
  const child = fixture("pubsub-peer", null, {
    command: "unshare",
    args: ["-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" "$1" "$2"', process.execPath, script, args],
  });
  for (let seq = 1; seq <= 50; seq++) {
    const smp = await sub.receive({ timeout: 30000 });
    assert.ok(smp, child.stderr());
    assert.equal(smp.value.seq, seq);
    assert.deepEqual([...smp.value.data], new Array(8).fill(seq));
    smp.release();
  }
  assert.equal(await child.exited, 0);
  assert.match(child.stderr(), /PLEXUS_NO_SHM|fall back to TCP/);
  const pubs = s.snapshot().publishers;
  assert.equal(pubs.length, 0, "the publisher left");
});

test("pubsub: when the GraphServer's host dies, a node starts a new one and everybody re-registers", async () => {
  const probe = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${probe.address.port}`;
  await probe.close();
  const host = fixture("pubsub-peer", { role: "host", address, topic: "-", count: 0 });
  assert.equal(await host.line(), "ready");
  await using node = await connect({ address, embedded: true }); // may take over the server
  await using sub = await node.subscriber<Msg>("recover/t", { queue: 64 });
  const pub = fixture("pubsub-peer", { role: "pub", address, topic: "recover/t", count: 0, hang: true });
  (await sub.receive({ timeout: 20000 }))?.release();
  host.proc.kill("SIGKILL");
  await host.exited;
  // Eventually (the loss is noticed, a server is started, the others find it) the graph is back.
  let snap: Snapshot | undefined;
  for (let i = 0; i < 400 && (snap === undefined || snap.publishers.length === 0); i++) {
    await new Promise((r) => setTimeout(r, 25));
    await node.ready();
    snap = await node.snapshot().catch((e: { code?: string }) => {
      if (e.code !== "ERR_PLEXUS_PEER_DEAD") throw e;
      return undefined;
    });
  }
  assert.ok(snap, "the graph came back");
  assert.ok(node.hostsGraph, "this node now hosts the GraphServer");
  assert.equal(snap.publishers.length, 1, "the publisher process re-registered");
  assert.equal(snap.subscribers.length, 1);
  await using late = await node.subscriber<Msg>("recover/t", { queue: 64 });
  const got = await late.receive({ timeout: 10000 });
  assert.ok(got && got.value.seq > 1, "a subscriber made after the recovery receives");
  got.release();
  pub.proc.kill("SIGKILL");
  await pub.exited;
});

test("pubsub: a fail subscriber on a shared-memory link fails the publisher when full, and keeps its link", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Uint8Array>("failshm/t", { capacity: 1 << 16 });
  await using sub = await node.subscriber<Uint8Array>("failshm/t", { transport: "shm", backpressure: "fail", queue: 2 });
  let sent = 0;
  await assert.rejects(
    (async () => {
      for (; sent < 1000; sent++) {
        await pub.publish(new Uint8Array(4000).fill(sent & 0xff));
        await new Promise((r) => setImmediate(r)); // let the link move frames into the queue
      }
    })(),
    { code: "ERR_PLEXUS_BACKPRESSURE" },
  );
  assert.ok(sent > 2 && sent < 1000, `${sent} messages before the ring was full`);
  for (let i = 0; i < sent; i++) {
    const smp = await sub.receive({ timeout: 2000 });
    assert.ok(smp);
    assert.equal(smp.value[0], i & 0xff);
    smp.release();
  }
  await pub.publish(new Uint8Array(10).fill(7));
  const after = await sub.receive({ timeout: 2000 });
  assert.equal(after?.value[0], 7, "the link survived");
});

test("pubsub: a loan waits for room at a full same-thread subscriber and then delivers at commit; nothing is dropped", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Uint8Array>("loanlocal/t", { transport: "inproc" });
  await using sub = await node.subscriber<Uint8Array>("loanlocal/t", { queue: 1 });
  await pub.publish(new Uint8Array([1]));
  let lent = false;
  const lending = pub.loan(1).then((l) => ((lent = true), l));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(lent, false, "the queue is full: the loan waits");
  const first = await sub.receive({ timeout: 1000 });
  assert.deepEqual([...(first?.value ?? [])], [1]);
  first?.release();
  const loan = await lending;
  await assert.rejects(pub.publish(new Uint8Array([9])), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  loan.bytes[0] = 2;
  loan.commit();
  const second = await sub.receive({ timeout: 1000 });
  assert.deepEqual([...(second?.value ?? [])], [2]);
  await assert.rejects(pub.loan(1, { timeout: 10 }).then(async (l) => (l.commit(), pub.loan(1, { timeout: 10 }))), { code: "ERR_PLEXUS_TIMEOUT" });
});

test("pubsub: waitForSubscribers resolves when a subscriber process arrives; timeout, abort, close and bad counts are typed errors", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Msg>("wait/t");
  assert.equal(await pub.waitForSubscribers(0), 0);
  await assert.rejects(pub.waitForSubscribers(1, { timeout: 30 }), (e) => e instanceof TimeoutError && /0 of 1 subscribers on "wait\/t"/.test(e.message));
  const ac = new AbortController();
  const aborted = pub.waitForSubscribers(1, { signal: ac.signal });
  ac.abort("enough");
  await assert.rejects(aborted, (e) => e instanceof AbortError && e.cause === "enough");
  await assert.rejects(pub.waitForSubscribers(-1), InvalidArgumentError);
  await assert.rejects(pub.waitForSubscribers(1.5), InvalidArgumentError);

  const waiting = pub.waitForSubscribers(1, { timeout: 15_000 });
  const child = fixture("pubsub-peer", { role: "sub", address, topic: "wait/t", count: 1 });
  assert.equal(await child.line(), "ready");
  assert.equal(await waiting, 1);
  await pub.publish({ seq: 1, from: "p", data: new Float64Array(8).fill(1) });

  const closing = assert.rejects(pub.waitForSubscribers(5, { timeout: 15_000 }), ClosedError);
  await pub.close();
  await closing;
  await assert.rejects(pub.waitForSubscribers(1), ClosedError);
});

test("pubsub: tryPublish delivers now when nobody has to wait, and otherwise publishes nothing and says so", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });

  // Same thread: the value itself, in the call; a full blocking subscriber makes it step back.
  await using pub = await node.publisher<{ n: number }>("try/local", { transport: "inproc" });
  await using sub = await node.subscriber<{ n: number }>("try/local", { queue: 2 });
  const one = { n: 1 };
  assert.equal(pub.tryPublish(one), true);
  assert.equal(pub.tryPublish({ n: 2 }), true);
  assert.equal(pub.tryPublish({ n: 3 }), false, "the queue of 2 is full: nothing is published");
  assert.equal(pub.counters.messages, 2);
  const first = sub.tryReceive();
  assert.equal(first?.value, one, "the value itself");
  assert.equal(first?.sequence, 1);
  assert.equal(pub.tryPublish({ n: 4 }), true);
  assert.deepEqual([sub.tryReceive()?.value.n, sub.tryReceive()?.sequence], [2, 3], "the refused value took no sequence number");
  assert.equal(sub.tryReceive(), null);

  // Drop-oldest takes it (and drops), fail refuses with the error publish gives.
  await using leaky = await node.subscriber<{ n: number }>("try/local", { queue: 1, backpressure: "drop-oldest" });
  await using strictPub = await node.publisher<{ n: number }>("try/strict", { transport: "inproc" });
  await using strict = await node.subscriber<{ n: number }>("try/strict", { queue: 1, backpressure: "fail" });
  assert.equal(pub.tryPublish({ n: 5 }), true);
  sub.tryReceive()?.release();
  assert.equal(pub.tryPublish({ n: 6 }), true, "drop-oldest never makes it wait");
  assert.equal(leaky.tryReceive()?.value.n, 6);
  assert.equal(leaky.takeMissed(), 1);
  assert.equal(strictPub.tryPublish({ n: 1 }), true);
  assert.throws(() => strictPub.tryPublish({ n: 2 }), { code: "ERR_PLEXUS_BACKPRESSURE" });
  assert.equal(strict.tryReceive()?.value.n, 1, "the refused value did not reach the full subscriber");

  // Refusals as publish's: a value that cannot be encoded, an open loan, a closed publisher.
  assert.throws(() => pub.tryPublish({ n: 7, f: () => 1 } as unknown as { n: number }), EncodeError);
  await using raw = await node.publisher<Uint8Array>("try/raw", { transport: "inproc" });
  const loan = await raw.loan(4);
  assert.throws(() => raw.tryPublish(new Uint8Array(1)), InvalidArgumentError);
  loan.abort();
  await strictPub.close();
  assert.throws(() => strictPub.tryPublish({ n: 3 }), ClosedError);
});

test("pubsub: publish does its work in the call when nothing waits, refuses with a rejected promise, and a full fail subscriber refuses before any link gets the value", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<{ n: number }>("now/t");
  await using sub = await node.subscriber<{ n: number }>("now/t", { queue: 8 });
  const done = pub.publish({ n: 1 });
  assert.equal(sub.tryReceive()?.value.n, 1, "delivered before publish() returned");
  await done;
  // Refusals are rejected promises, never throws.
  const refused = [pub.publish({ n: 2, f: () => 1 } as unknown as { n: number }), pub.publish({ n: 3 }, { timeout: -1 })];
  for (const p of refused) assert.ok(p instanceof Promise);
  await assert.rejects(refused[0] as Promise<void>, EncodeError);
  await assert.rejects(refused[1] as Promise<void>, InvalidArgumentError);
  // A full `fail` subscriber of this thread refuses first, whatever the other links: the
  // subscribers over shared memory and over TCP get nothing of the refused value, which takes no
  // sequence number.
  await using strict = await node.subscriber<{ n: number }>("now/t", { queue: 1, backpressure: "fail" });
  await using overShm = await node.subscriber<{ n: number }>("now/t", { transport: "shm", queue: 64 });
  await using overTcp = await node.subscriber<{ n: number }>("now/t", { transport: "tcp", queue: 64 });
  while (overShm.publishers.length === 0 || overTcp.publishers.length === 0 || pub.subscribers < 4) await new Promise((r) => setTimeout(r, 5));
  await pub.publish({ n: 4 });
  await assert.rejects(pub.publish({ n: 5 }), { code: "ERR_PLEXUS_BACKPRESSURE" });
  strict.tryReceive()?.release();
  await pub.publish({ n: 6 });
  /** The next two samples of `remote`: [value.n, sequence] each. */
  const nextTwo = async (remote: typeof overShm): Promise<[number, number][]> => {
    const got: [number, number][] = [];
    for (let i = 0; i < 2; i++) {
      const smp = await remote.receive({ timeout: 2000 });
      got.push([smp?.value.n ?? -1, smp?.sequence ?? -1]);
      smp?.release();
    }
    return got;
  };
  for (const remote of [overShm, overTcp]) {
    assert.deepEqual(await nextTwo(remote), [
      [4, 2],
      [6, 3],
    ]);
  }
  // A full `block` subscriber ahead of the full `fail` one does not make the publish wait and
  // write the other links first: the refusal wins, whatever the order the subscribers came in.
  await using waiting = await node.subscriber<{ n: number }>("now/order", { queue: 1 });
  await using refusing = await node.subscriber<{ n: number }>("now/order", { queue: 1, backpressure: "fail" });
  await using orderPub = await node.publisher<{ n: number }>("now/order");
  await using orderShm = await node.subscriber<{ n: number }>("now/order", { transport: "shm", queue: 64 });
  while (orderShm.publishers.length === 0 || orderPub.subscribers < 3) await new Promise((r) => setTimeout(r, 5));
  await orderPub.publish({ n: 1 });
  await assert.rejects(orderPub.publish({ n: 2 }, { timeout: 50 }), { code: "ERR_PLEXUS_BACKPRESSURE" });
  waiting.tryReceive()?.release();
  refusing.tryReceive()?.release();
  await orderPub.publish({ n: 3 });
  assert.deepEqual(await nextTwo(orderShm), [
    [1, 1],
    [3, 2],
  ]);
  await pub.close();
  await assert.rejects(pub.publish({ n: 7 }), ClosedError);
});

test("pubsub: tryPublish writes into a shared-memory ring while it has room, and never over TCP", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Uint8Array>("try/shm", { capacity: 1 << 16 });
  await using sub = await node.subscriber<Uint8Array>("try/shm", { transport: "shm", queue: 1024 });
  let accepted = 0;
  while (pub.tryPublish(new Uint8Array(4000).fill(accepted & 0xff))) accepted++;
  assert.ok(accepted > 3 && accepted < 20, `${accepted} messages of 4000 bytes fit a ring of 64 KiB`);
  for (let i = 0; i < accepted; i++) {
    const smp = await sub.receive({ timeout: 2000 });
    assert.equal(smp?.value[0], i & 0xff);
    assert.equal(smp?.sequence, i + 1);
    smp?.release();
  }
  let room = false;
  for (let i = 0; i < 100 && !room; i++) {
    room = pub.tryPublish(new Uint8Array(4000).fill(7));
    if (!room) await new Promise((r) => setTimeout(r, 5)); // the subscriber's releases free the ring
  }
  assert.ok(room, "room again once the subscriber released its samples");
  assert.equal((await sub.receive({ timeout: 2000 }))?.value[0], 7);

  await using tcpPub = await node.publisher<Uint8Array>("try/tcp");
  await using tcpSub = await node.subscriber<Uint8Array>("try/tcp", { transport: "tcp" });
  while (tcpPub.subscribers === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(tcpPub.tryPublish(new Uint8Array([1])), false, "a TCP link's send waits for its window: publish()");
  await tcpPub.publish(new Uint8Array([2]));
  assert.deepEqual([...((await tcpSub.receive({ timeout: 2000 }))?.value ?? [])], [2]);
});

test("pubsub: forEach inline calls the handler in the publisher's call; what comes while it runs or while its promise is pending keeps its order; a throw closes the subscriber, not the publisher", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<number>("inline/t", { transport: "inproc" });
  const sub = await node.subscriber<number>("inline/t", { queue: 64 });
  const seen: string[] = [];
  let open: (() => void) | undefined;
  const done = sub.forEach(
    (smp) => {
      seen.push(`h${smp.value}`);
      if (smp.value === 2) void pub.publish(20); // published from inside the handler: handled after it
      if (smp.value === 3) return new Promise<void>((r) => (open = r)); // the next ones wait for it
      if (smp.value === 99) throw new Error("boom");
      return undefined;
    },
    { inline: true },
  );
  const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
  await settle(); // forEach waits for its first sample now
  const first = pub.publish(1);
  seen.push("publish(1) returned");
  await first;
  assert.deepEqual(seen, ["h1", "publish(1) returned"], "the handler ran inside publish");
  await pub.publish(2);
  await settle();
  assert.deepEqual(seen.slice(2), ["h2", "h20"]);
  await pub.publish(3);
  await pub.publish(4);
  await settle();
  assert.deepEqual(seen.slice(4), ["h3"], "4 waits for 3's promise");
  open?.();
  await settle();
  assert.deepEqual(seen.slice(5), ["h4"]);
  assert.equal(sub.idle, true, "waiting again, nothing in hand: idle (what a pipeline's drain looks at)");
  await pub.publish(99); // the handler throws: not into the publisher
  await assert.rejects(done, /boom/);
  await assert.rejects(sub.receive(), ClosedError);
  const fresh = await node.subscriber<number>("inline/t");
  await assert.rejects(fresh.forEach(42 as unknown as () => void), InvalidArgumentError);
  await assert.rejects(fresh.forEach(() => undefined, { inline: "yes" as unknown as boolean }), InvalidArgumentError);
  await fresh.close();
});

test("pubsub: forEach inline beside other subscribers: a handler that publishes again reaches them after the value it handles; nothing dropped; a null return, a rejection and a close while pending are handled", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<number>("inline/fan", { transport: "inproc" });
  const echo = await node.subscriber<number>("inline/fan", { queue: 64 });
  await using other = await node.subscriber<number>("inline/fan", { queue: 2 }); // block, one slot left after the first
  const echoed = echo.forEach(
    (smp) => {
      if (smp.value < 100) void pub.publish(smp.value + 100); // an echo on its own topic, from inside the delivery
      return null as unknown as void; // what a careless handler returns: not a promise
    },
    { inline: true },
  );
  await new Promise((r) => setImmediate(r));
  await pub.publish(1);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([other.tryReceive()?.value, other.tryReceive()?.value, other.tryReceive()], [1, 101, null], "1 before its echo, and the echo not dropped");
  await echo.close();
  await echoed;

  // A promise that rejects closes the subscriber and rejects forEach; one still pending at close is waited for.
  const failing = await node.subscriber<number>("inline/fan", { queue: 8 });
  const failed = failing.forEach(() => Promise.reject(new Error("late")), { inline: true });
  await new Promise((r) => setImmediate(r));
  await pub.publish(2);
  await assert.rejects(failed, /late/);
  const slow = await node.subscriber<number>("inline/fan", { queue: 8 });
  let finish: (() => void) | undefined;
  let ended = false;
  const waiting = slow
    .forEach(() => new Promise<void>((r) => (finish = r)), { inline: true })
    .then(() => {
      ended = true;
    });
  await new Promise((r) => setImmediate(r));
  await pub.publish(3);
  await slow.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(ended, false, "forEach waits for the handler still running");
  finish?.();
  await waiting;
  other.tryReceive();
});

test("pubsub: forEach inline over a shared-memory link: the handler runs in the link's read, every sample once and in order", async () => {
  const { server: s, address } = await server();
  await using _s = s;
  await using node = await connect({ address, embedded: false });
  await using pub = await node.publisher<Uint8Array>("inline/shm", { capacity: 1 << 16 });
  await using sub = await node.subscriber<Uint8Array>("inline/shm", { transport: "shm", queue: 8 });
  const got: number[] = [];
  const count = 2000; // 2000 x 1 KiB: the 64 KiB ring turns over many times, so every frame is released
  let all: () => void = () => undefined;
  const finished = new Promise<void>((r) => (all = r));
  const done = sub.forEach(
    (smp) => {
      got.push(smp.value[0] as number);
      assert.ok(smp.value instanceof Uint8Array);
      if (got.length === count) all();
    },
    { inline: true },
  );
  for (let i = 0; i < count; i++) {
    await pub.publish(new Uint8Array(1024).fill(i & 0xff));
    if (i % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  await finished;
  assert.deepEqual(
    got,
    Array.from({ length: count }, (_, i) => i & 0xff),
  );
  const taken = (sub as unknown as { queue: { taken: number } }).queue.taken;
  assert.ok(taken > 0, `the handler ran in the link's read for ${taken} of ${count} samples`);
  await sub.close();
  await done;
});
