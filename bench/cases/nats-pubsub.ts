/**
 * Row `nats`, pub/sub (bench/README.md, "The `nats` row"): a Plexus publisher on one graph to a
 * subscriber on another, through a bridge on each and one nats-server, against a plain NATS client
 * publishing the same bytes to a plain NATS subscriber through the same kind of server; throughput
 * at 64 B, 64 KiB, 1 MiB and 16 MiB (chunked), and the round trip of 64 B. The bridges' CPU and
 * peak RSS are reported.
 * @module
 */
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import type { Publisher, Subscriber } from "../../src/index.js";
import { registerCase, type CaseContext, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { asError, now, ReplySlot, roundTrips } from "../measure.js";
import { Peer } from "../peer.js";
import { registerRow } from "../rows.js";
import { natsServer } from "../../test/helpers/nats.js";
import { startBenchBridge } from "../procs/nats-bridge.js";
import { graph } from "./plexus-pubsub.js";
import { NO_NATS, processCpuSeconds, QUEUE_METHOD } from "./nats.js";
import { cpuSeconds } from "../procs/runtime.js";

const KiB = 1024;
const MiB = 1 << 20;
/** The plain client's case: the baseline of the row. */
export const PLAIN_NATS = "plain nats client";
const BRIDGED = "plexus pubsub through bridges";
const IN_PROCESS = "plexus pubsub, bridges in the processes";
/**
 * A repetition of a stream case, ms: at a few hundred messages a second, the default 400 ms
 * holds so few that one garbage collection or scheduling hiccup moves a repetition by 20 %.
 */
const REPETITION_MS = 1500;
/**
 * The warm-up of a round-trip case, ms: each round trip runs the whole path's JavaScript once
 * (the NATS client's, and the bridges' with Plexus's pub/sub), which V8 compiles with its
 * optimizing tier only after thousands of calls: after the default 300 ms (about a thousand
 * round trips), a round trip took 20–45% longer than after twenty thousand.
 */
const ROUND_TRIP_WARMUP_MS = 4000;
/** Bytes in flight at most (both kinds): the sender waits for the receiver every window. */
const WINDOW_BYTES = 8 * MiB;

const SIZES = [
  { label: "64 B", bytes: 64, quick: true },
  { label: "64 KiB", bytes: 64 * KiB, quick: false },
  { label: "1 MiB", bytes: MiB, quick: true },
  { label: "16 MiB", bytes: 16 * MiB, quick: false },
] as const;

registerRow({
  id: "nats",
  title: "nats: between two graphs through NATS (bridges) against a plain NATS client; queues through JetStream",
  method:
    "Pub/sub: one nats-server (started by the suite, default settings: max_payload 1 MiB) on loopback. plexus pubsub through bridges: the suite publishes a " +
    "Uint8Array on graph A (a GraphServer in the suite), a bridge process exports it (policy block) to NATS, a second bridge process imports it into " +
    "graph B (a GraphServer in the sink process), whose subscriber touches one byte per 64 and counts. Messages above max_payload travel in chunks; " +
    "messages that wait together in a bridge travel as one NATS message (a batch). plexus pubsub, bridges in the processes: the same, with graph A's " +
    "bridge in the suite and graph B's in the sink process (the publisher hands its bridge the value itself, and the bridge its subscriber). " +
    "plain nats client: the suite publishes the same bytes with @nats-io/transport-node to a subscriber process (16 MiB as 16 messages of 1 MiB, " +
    `the server's limit). Both wait for the receiver every ${WINDOW_BYTES / MiB} MiB (or 1024 messages), as NATS core has no flow control of its own. ` +
    `Throughput: first publish to the receiver confirming the last byte (IPC); each repetition lasts ${REPETITION_MS / 1000} s, not the suite's default. ` +
    "Round trip: 64 B to an echo (graph B's subscriber publishing back on " +
    `another topic; the plain echo republishes on another subject), after a warm-up of ${ROUND_TRIP_WARMUP_MS / 1000} s, not the suite's default; on both sides a callback ` +
    "(the NATS subscription's, the Plexus subscriber's inline forEach: each runs in the call that delivers the message) settles a reply slot armed before the publish. " +
    "CPU µs/msg = user + system time, during the repetition, of every process of the path: " +
    "the suite (the publisher, and graph A's bridge where it runs there), nats-server, the bridge processes and the receiving process; " +
    "peak RSS = the larger of the two bridge processes' (VmHWM). Queues: " +
    QUEUE_METHOD +
    (NO_NATS === undefined ? "" : ` Skipped: ${NO_NATS}.`),
});

/** What a stream case runs: sends one message, and the receiver's running byte count. */
interface Stream extends Resource {
  send(bytes: Uint8Array): Promise<void> | void;
  sink: Peer;
  /** Bytes sent so far, over every repetition (the sink counts cumulatively). */
  sent: number;
  /** The processes whose peak RSS is reported (the bridge processes). */
  measured: Peer[];
  /** CPU seconds used so far by every process of the path: the suite's, nats-server's, the bridges', the receiver's. */
  pathCpu(): Promise<number>;
}

/** CPU seconds so far of this process, nats-server (`pid`) and `peers`. */
async function pathCpu(pid: number, peers: readonly Peer[]): Promise<number> {
  const theirs = await Promise.all(peers.map((p) => p.call<number>("cpu")));
  return cpuSeconds() + processCpuSeconds(pid) + theirs.reduce((a, c) => a + c, 0);
}

async function stream(ctx: CaseContext, s: Stream, size: number): Promise<ThroughputSample> {
  const payload = new Uint8Array(size).fill(7);
  const window = Math.max(1, Math.min(1024, Math.floor(WINDOW_BYTES / size)));
  const cpu0 = await s.pathCpu();
  const t0 = now();
  for (let i = 0; i < ctx.count; i++) {
    await s.send(payload);
    s.sent += size;
    if ((i + 1) % window === 0) await s.sink.call("waitFor", s.sent - window * size, 120_000);
  }
  await s.sink.call("waitFor", s.sent, 120_000);
  const seconds = (now() - t0) / 1000;
  const cpuSeconds = (await s.pathCpu()) - cpu0;
  const sample: ThroughputSample = { kind: "throughput", messages: ctx.count, bytes: ctx.count * size, seconds, cpuSeconds };
  if (s.measured.length > 0) {
    sample.peakRssBytes = Math.max(...(await Promise.all(s.measured.map((p) => p.call<number>("rss")))));
  }
  return sample;
}

async function plainStream(scope: CaseScope): Promise<Stream> {
  const server = await natsServer();
  scope.defer(() => server.close());
  const sink = await Peer.start(scope, "nats-peer.js", { args: ["plain-sink", server.url] });
  const nc = await natsConnect({ servers: server.url });
  scope.defer(() => nc.close());
  const max = nc.info?.max_payload ?? MiB;
  return {
    sink,
    sent: 0,
    measured: [],
    pathCpu: () => pathCpu(server.pid, [sink]),
    send(bytes) {
      for (let at = 0; at < bytes.length; at += max) nc.publish("bench.stream", bytes.subarray(at, Math.min(bytes.length, at + max)));
    },
    close: () => undefined,
  };
}

/**
 * Starts the bridges of graphs A (`address`, the suite's) and B (`other`): two processes, or
 * (`inProcess`) graph A's in the suite itself (graph B's runs in its peer, started so).
 */
async function bridges(scope: CaseScope, url: string, address: string, other: string, capacity: number, inProcess: boolean): Promise<Peer[]> {
  if (inProcess) {
    const bridge = await startBenchBridge(url, address, "bench-a", capacity);
    scope.defer(() => bridge.close());
    return [];
  }
  return [
    await Peer.start(scope, "nats-peer.js", { args: ["bridge", url, address, "bench-a", String(capacity)] }),
    await Peer.start(scope, "nats-peer.js", { args: ["bridge", url, other, "bench-b", String(capacity)] }),
  ];
}

/** The arguments of a Plexus peer of `kind`: with the graph's bridge in it when `inProcess`. */
function plexusPeer(kind: string, url: string, capacity: number, inProcess: boolean): string[] {
  return inProcess ? [kind, url, String(capacity)] : [kind, url];
}

async function bridgedStream(scope: CaseScope, size: number, inProcess: boolean): Promise<Stream> {
  const server = await natsServer();
  scope.defer(() => server.close());
  const capacity = Math.max(4 * MiB, 4 * size);
  const { node, address } = await graph(scope);
  const sink = await Peer.start(scope, "nats-peer.js", { args: plexusPeer("plexus-sink", server.url, capacity, inProcess) });
  const measured = await bridges(scope, server.url, address, String(sink.info["address"]), capacity, inProcess);
  const pub: Publisher<Uint8Array> = await node.publisher<Uint8Array>("bench/stream", { capacity, timeout: 60_000 });
  await sink.call("linked", null, 30_000);
  return { sink, sent: 0, measured, pathCpu: () => pathCpu(server.pid, [sink, ...measured]), send: (b) => pub.publish(b), close: () => undefined };
}

/** A 64 B ping-pong. */
interface Echo extends Resource {
  roundTrip(): Promise<void>;
}

async function plainEcho(scope: CaseScope): Promise<Echo> {
  const server = await natsServer();
  scope.defer(() => server.close());
  await Peer.start(scope, "nats-peer.js", { args: ["plain-echo", server.url] });
  const nc: NatsConnection = await natsConnect({ servers: server.url });
  scope.defer(() => nc.close());
  const slot = new ReplySlot(scope.signal);
  nc.subscribe("bench.pong", { callback: () => slot.settle() });
  await nc.flush();
  const ping = new Uint8Array(64);
  return {
    roundTrip() {
      const p = slot.wait();
      nc.publish("bench.ping", ping);
      return p;
    },
    close: () => undefined,
  };
}

async function bridgedEcho(scope: CaseScope, inProcess: boolean): Promise<Echo> {
  const server = await natsServer();
  scope.defer(() => server.close());
  const { node, address } = await graph(scope);
  const echo = await Peer.start(scope, "nats-peer.js", { args: plexusPeer("plexus-echo", server.url, 4 * MiB, inProcess) });
  const pong: Subscriber<Uint8Array> = await node.subscriber<Uint8Array>("bench/pong");
  const ping = await node.publisher<Uint8Array>("bench/ping");
  await bridges(scope, server.url, address, String(echo.info["address"]), 4 * MiB, inProcess);
  await echo.call("linked", null, 30_000);
  while (pong.publishers.length === 0) await new Promise((r) => setTimeout(r, 20));
  // The plain case's form: a callback that runs where the message is delivered (an inline
  // forEach, as the NATS client's callbacks run in its socket read) settles a reply slot armed
  // before the publish.
  const slot = new ReplySlot(scope.signal);
  pong.forEach(() => slot.settle(), { inline: true }).catch((e: unknown) => slot.fail(asError(e)));
  const bytes = new Uint8Array(64);
  return {
    roundTrip() {
      const p = slot.wait();
      ping.publish(bytes).catch((e: unknown) => slot.fail(asError(e)));
      return p;
    },
    close: () => undefined,
  };
}

if (NO_NATS === undefined) pubsubCases();

/** Registers the pub/sub cases. */
function pubsubCases(): void {
  for (const size of SIZES) {
    registerCase({
      row: "nats",
      name: PLAIN_NATS,
      variant: size.label,
      kind: "throughput",
      messageBytes: size.bytes,
      quick: size.quick,
      repetitionMs: REPETITION_MS,
      method: "nc.publish of the bytes (in 1 MiB messages above that) to a NATS subscriber process",
      async run(ctx) {
        return stream(ctx, await ctx.keep("plain", plainStream), size.bytes);
      },
    });
    for (const inProcess of [false, true]) {
      registerCase({
        row: "nats",
        name: inProcess ? IN_PROCESS : BRIDGED,
        variant: size.label,
        kind: "throughput",
        ratioTo: PLAIN_NATS,
        messageBytes: size.bytes,
        quick: size.quick && !inProcess,
        repetitionMs: REPETITION_MS,
        method: inProcess
          ? "publisher and bridge (graph A, one process) -> NATS -> bridge and subscriber (graph B, one process)"
          : "publisher (graph A) -> bridge process -> NATS -> bridge process -> subscriber (graph B)",
        async run(ctx) {
          return stream(ctx, await ctx.keep("bridged", (scope) => bridgedStream(scope, size.bytes, inProcess)), size.bytes);
        },
      });
    }
  }

  registerCase({
    row: "nats",
    name: PLAIN_NATS,
    variant: "round trip 64 B",
    kind: "latency",
    warmupMs: ROUND_TRIP_WARMUP_MS,
    method: "publish on bench.ping; an echo process publishes it on bench.pong",
    async run(ctx) {
      const e = await ctx.keep("plain-echo", plainEcho);
      return roundTrips(ctx, () => e.roundTrip());
    },
  });
  for (const inProcess of [false, true]) {
    registerCase({
      row: "nats",
      name: inProcess ? IN_PROCESS : BRIDGED,
      variant: "round trip 64 B",
      kind: "latency",
      ratioTo: PLAIN_NATS,
      warmupMs: ROUND_TRIP_WARMUP_MS,
      quick: !inProcess,
      method: inProcess
        ? "publish on bench/ping (graph A); graph B's echo publishes it on bench/pong; each graph's bridge runs in the process of its publisher and subscriber"
        : "publish on bench/ping (graph A); graph B's echo publishes it on bench/pong; both through the two bridge processes",
      async run(ctx) {
        const e = await ctx.keep("bridged-echo", (scope) => bridgedEcho(scope, inProcess));
        return roundTrips(ctx, () => e.roundTrip());
      },
    });
  }
}
