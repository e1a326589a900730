/**
 * Plexus publish/subscribe through the public API (`connect`, `publisher`, `subscriber`)
 * between processes on one host: lat (a small object, ping/pong topics; also raw bytes), thr
 * (1 MiB typed arrays) and the fan row (one publisher, 1/2/4 subscriber processes, against TCP
 * fan-out); and the thread row's round trip through a worker thread.
 * @module
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connect, GraphServer, type Node, type Publisher, type Subscriber } from "../../src/index.js";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { Peer } from "../peer.js";
import { registerRow } from "../rows.js";
import { LAT_SIZES, THR_SIZES, THREAD_LAT_SIZES } from "../sizes.js";
import { POSTMESSAGE } from "./thread-postmessage.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

const MiB = 1 << 20;

/** A GraphServer for the case and a node of the suite on it (closed with `scope`). */
export async function graph(scope: CaseScope): Promise<{ node: Node; address: string }> {
  const server = await GraphServer.start({ port: 0 });
  scope.defer(() => server.close());
  const address = `127.0.0.1:${server.address.port}`;
  const node = await connect({ address, embedded: false });
  scope.defer(() => node.close());
  return { node, address };
}

/** Waits until `pub` reaches `n` subscribers. */
async function subscribers(pub: Publisher<unknown>, n: number, signal: AbortSignal): Promise<void> {
  await pub.waitForSubscribers(n, { signal });
}

/** What the echo cases send: the small object, or 64 raw bytes (a `Uint8Array`: no MessagePack). */
type EchoValue = { seq: number; t: number; tag: string } | Uint8Array;

class PubSubEcho implements Resource {
  private seq = 0;
  private readonly bytes = new Uint8Array(64).fill(7);
  private constructor(
    private readonly pub: Publisher<EchoValue>,
    private readonly sub: Subscriber<unknown>,
    private readonly raw: boolean,
  ) {}

  /** @param peerMode - how the peer process echoes, or "worker": a worker thread of this process echoes (for-await) */
  static async open(scope: CaseScope, peerMode: "echo" | "echo-callback" | "echo-wake" | "worker", raw: boolean): Promise<PubSubEcho> {
    const { node, address } = await graph(scope);
    const pub = await node.publisher<EchoValue>("bench/ping");
    const sub = await node.subscriber<unknown>("bench/pong", { queue: 4, adaptiveSpin: peerMode !== "echo-wake" });
    if (peerMode === "worker") await startEchoWorker(scope, address);
    else await Peer.start(scope, "plexus-pubsub-peer.js", { args: [peerMode, address, "bench"] });
    await subscribers(pub as Publisher<unknown>, 1, scope.signal);
    // the peer's publisher must be linked to our subscriber too
    while (sub.publishers.length === 0) await new Promise((r) => setTimeout(r, 2));
    return new PubSubEcho(pub, sub, raw);
  }

  async roundTrip(): Promise<void> {
    ++this.seq;
    await this.pub.publish(this.raw ? this.bytes : { seq: this.seq, t: 0, tag: "a small object" });
    const s = await this.sub.receive({ timeout: 10_000 });
    if (s === null) throw new Error("echo subscriber closed");
    s.release();
  }

  close(): void {}
}

/** Starts `pubsub-echo-worker.js` on the `bench` topics (stopped with `scope`). */
async function startEchoWorker(scope: CaseScope, address: string): Promise<void> {
  const worker = new Worker(new URL("../procs/pubsub-echo-worker.js", import.meta.url), { workerData: { address, topic: "bench" } });
  let closing = false;
  scope.defer(async () => {
    closing = true;
    worker.postMessage("close");
    await worker.terminate();
  });
  worker.on("error", (err) => scope.fail(new Error(`pub/sub echo worker: ${err.message}`, { cause: err })));
  worker.on("exit", (code) => {
    if (!closing) scope.fail(new Error(`pub/sub echo worker exited with code ${code}`));
  });
  await once(worker, "message", { signal: scope.signal });
}

class PubSubStream implements Resource {
  private sent = 0;
  private constructor(
    private readonly pubs: Publisher<{ seq: number; data: Float64Array }>,
    private readonly peers: Peer[],
    private readonly data: Float64Array,
  ) {}

  static async open(scope: CaseScope, bytes: number, readers: number): Promise<PubSubStream> {
    const { node, address } = await graph(scope);
    const pub = await node.publisher<{ seq: number; data: Float64Array }>("bench/stream", { capacity: Math.max(8 * MiB, 4 * (bytes + 4096)) });
    const peers: Peer[] = [];
    for (let i = 0; i < readers; i++) peers.push(await Peer.start(scope, "plexus-pubsub-peer.js", { args: ["sink", address, "bench/stream"] }));
    await subscribers(pub as Publisher<unknown>, readers, scope.signal);
    return new PubSubStream(pub, peers, new Float64Array(bytes / 8).fill(1.5));
  }

  async stream(count: number): Promise<ThroughputSample> {
    this.sent += count;
    const done = this.peers.map((p) => p.call("waitFor", this.sent, 120_000));
    const t0 = now();
    for (let i = 0; i < count; i++) await this.pubs.publish({ seq: i, data: this.data });
    await Promise.all(done);
    return streamed(count * this.peers.length, this.data.byteLength, t0);
  }

  close(): void {}
}

/** The two ways the echo peer consumes: a for-await loop, or a `forEach` callback. */
const ECHO_PEERS = [
  { name: "plexus pubsub", mode: "echo", raw: false, how: "the peer's for-await loop publishes it back" },
  { name: "plexus pubsub, callback peer", mode: "echo-callback", raw: false, how: "the peer's forEach callback publishes it back" },
  { name: "plexus pubsub, raw bytes", mode: "echo", raw: true, how: "the peer's for-await loop publishes it back" },
  { name: "plexus pubsub wake-only", mode: "echo-wake", raw: false, how: "the peer's for-await loop publishes it back; both subscribers with adaptiveSpin: false (every message is a wake-up)" },
] as const;

for (const size of LAT_SIZES.slice(0, 1)) {
  for (const peer of ECHO_PEERS) {
    registerCase({
      row: "lat",
      name: peer.name,
      variant: size.label,
      kind: "latency",
      ratioTo: ["plexus shm", "plexus shm wake-only", EVENTFD_FLOOR, "zeromq ipc PAIR"],
      quick: size.quick && peer.mode === "echo",
      method: peer.raw
        ? `publish a Uint8Array of 64 B on a ping topic (a raw frame: no MessagePack); ${peer.how} on a pong topic (shm rings, GraphServer in the suite): the API's own cost`
        : `publish {seq, t, tag} on a ping topic; ${peer.how} on a pong topic (MessagePack, shm rings, GraphServer in the suite)`,
      async run(ctx) {
        const link = await ctx.keep("link", (scope) => PubSubEcho.open(scope, peer.mode, peer.raw));
        return roundTrips(ctx, () => link.roundTrip());
      },
    });
  }
}

registerCase({
  row: "thread",
  name: "plexus pubsub",
  variant: THREAD_LAT_SIZES[0].label,
  kind: "latency",
  ratioTo: [POSTMESSAGE, "plexus thread"],
  quick: THREAD_LAT_SIZES[0].quick,
  method:
    "publish {seq, t, tag} on a ping topic; a worker thread of this process (its own connect()) publishes it back on a pong topic from a for-await loop (MessagePack, shm rings between the threads, GraphServer in the suite)",
  async run(ctx) {
    const link = await ctx.keep("link", (scope) => PubSubEcho.open(scope, "worker", false));
    return roundTrips(ctx, () => link.roundTrip());
  },
});

for (const size of THR_SIZES.filter((s) => s.bytes === MiB)) {
  registerCase({
    row: "thr",
    name: "plexus pubsub",
    variant: size.label,
    kind: "throughput",
    ratioTo: ["plexus shm", MEMCPY_FLOOR],
    messageBytes: size.bytes,
    quick: size.quick,
    method: "publish {seq, data: Float64Array(1 MiB)}: the array goes out of band, one copy into the ring; the subscriber gets a view and touches it",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => PubSubStream.open(scope, size.bytes, 1));
      return link.stream(ctx.count);
    },
  });
}

registerRow({
  id: "fan",
  title: "fan: one publisher, 1 / 2 / 4 subscriber processes, 1 MiB messages",
  method:
    "Rate = messages x subscribers delivered per second (aggregate bandwidth); every subscriber touches one byte per 64 of every message. " +
    "plexus pubsub: one copy into the ring whatever the number of subscribers. tcp fan-out: one Node process writes each message to every subscriber's socket.",
});

for (const readers of [1, 2, 4]) {
  registerCase({
    row: "fan",
    name: "plexus pubsub",
    variant: `${readers} sub${readers > 1 ? "s" : ""}`,
    kind: "throughput",
    ratioTo: "tcp fan-out",
    messageBytes: MiB,
    quick: readers === 2,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => PubSubStream.open(scope, MiB, readers));
      return link.stream(ctx.count);
    },
  });
}
