/**
 * Row `iops` (bench/README.md, "The suite"): acknowledged puts driven three ways (sync, async,
 * mix) over loopback TCP between two processes — Plexus queues side by side with a raw Node
 * socket (the floor), MQTT through an aedes broker and through a mosquitto process (raw QoS 1
 * publishes, and the Plexus queue over `mqtt://`), and gRPC (@grpc/grpc-js, one bidirectional
 * stream, an ack per message; and the Plexus queue over `grpc://`). The receiving process touches every message; its peak RSS is
 * reported. The mosquitto cases are left out, with the reason in the row's method text, where
 * mosquitto is not installed.
 * @module
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { queue, type QueueClient } from "../../src/index.js";
import { registerCase, type CaseContext, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now } from "../measure.js";
import { Peer } from "../peer.js";
import { cpuSeconds } from "../procs/runtime.js";
import { registerRow } from "../rows.js";
import { mosquitto, mosquittoMissing } from "../../test/helpers/mosquitto.js";

/** Queue limits of the receiving Plexus queue server (what bounds its memory). */
const MAX_QUEUE = 1024;
const MAX_QUEUE_BYTES = 64 << 20;
/** Puts in flight at once in the async method (a sliding window). */
const WINDOW = 256;

/** Why the mosquitto cases cannot run here (undefined: they can). */
const NO_MOSQUITTO = mosquittoMissing();

registerRow({
  id: "iops",
  title: "iops: acknowledged queue throughput between two processes (sync, async, mixed sizes)",
  method:
    "A sender process puts messages to a receiver process over loopback TCP; the receiver takes each, touches one byte per 64 and counts it; " +
    "time = first put to the receiver confirming the last byte (IPC). sync: puts in batches of the receiver's queue limit " +
    `(${MAX_QUEUE} messages / ${MAX_QUEUE_BYTES >> 20} MiB), each batch acknowledged before the next; async: a sliding window of ${WINDOW} ` +
    "unacknowledged puts; mix: async over sizes 256 B .. 16 MiB (powers of two, each size 1 MiB per cycle of 8191 messages: 4096 x 256 B ... 1 x 16 MiB, in a fixed shuffled order). " +
    `Plexus: queue client -> queue server, fast mode, slots: ${WINDOW} (the window; the default is 16), each put resolved by the server's ack. ` +
    "raw tcp socket: plain writes, no framing, " +
    "no acks (the floor). raw tcp socket, whole messages: the same, but the receiver copies each message into a buffer of its own " +
    "before touching it, as every framed receiver must (fixed sizes only). mqtt (aedes): QoS 1 publish to an aedes broker (PUBACK), one subscriber in the broker's process. " +
    "mqtt (mosquitto): the same through a mosquitto process on loopback (default settings but max_queued_messages 0: by default it drops QoS 1 messages beyond 1000 queued for a client). plexus queue over mqtt: the same queue client and server as plexus queue, " +
    "through that broker (frames at QoS 0, each put resolved by the server's ack through the broker). grpc: a bidirectional " +
    "stream, one 1-byte ack per message. plexus queue over grpc: the same queue client and server over grpc://, one bidirectional stream, each queue frame one gRPC message. peak RSS = the receiving process's own peak RSS (VmHWM). CPU µs/msg = user + system CPU time of both processes (sender and receiver, " +
    "the kernel's TCP work included; with mosquitto, the broker's process too) during the median repetition, per message: what a message costs, whatever the machine's speed at the time." +
    (NO_MOSQUITTO === undefined ? "" : ` The mosquitto cases were skipped: ${NO_MOSQUITTO}.`),
});

interface Sender extends Resource {
  /** Sends one message; resolves when acknowledged (or written, for the raw socket). */
  put(b: Buffer): Promise<void>;
  /** Resolves once the receiver took `total` bytes in all. */
  consumed(total: number): Promise<unknown>;
  /** The receiver's peak RSS in bytes. */
  rss(): Promise<number>;
  /** CPU seconds the receiving process used so far. */
  cpu(): Promise<number>;
  sent: number;
}

/** The brokers of the MQTT cases. */
type Broker = "aedes" | "mosquitto";

/** CPU seconds process `pid` used so far (Linux: utime + stime of /proc/PID/stat, at 100 ticks/s). */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The broker a case sends through: aedes runs in the receiving peer (no url); mosquitto is a
 * process of its own, started here so it never outlives the suite, its CPU counted with the peer's.
 */
async function brokerFor(scope: CaseScope, broker: Broker): Promise<{ args: string[]; cpu: () => number }> {
  if (broker === "aedes") return { args: [], cpu: () => 0 };
  // Its default queue of 1000 QoS 1 messages per client drops the rest of a burst to a client
  // that is behind (a plain MQTT sink then never sees its count): the queue is unbounded here.
  const b = await mosquitto(["max_queued_messages 0"]);
  scope.defer(() => b.close());
  return { args: [b.url], cpu: () => processCpuSeconds(b.pid) };
}

/** What a Plexus queue case runs over: TCP, gRPC, or a broker. */
type Backend = "tcp" | "grpc" | Broker;

async function plexus(scope: CaseScope, backend: Backend = "tcp"): Promise<Sender> {
  const broker = backend === "aedes" || backend === "mosquitto";
  const via = broker ? await brokerFor(scope, backend) : { args: [], cpu: () => 0 };
  const kind = broker ? "plexus-mqtt" : backend === "grpc" ? "plexus-grpc" : "plexus";
  const peer = await Peer.start(scope, "iops-peer.js", { args: [kind, String(MAX_QUEUE), String(MAX_QUEUE_BYTES), ...via.args] });
  // As many slots as the async window: every put of the window can be on the wire at once.
  const client: QueueClient = await queue.client({ url: String(peer.info["url"]), timeout: 60_000, slots: WINDOW });
  scope.defer(() => client.close());
  return {
    sent: 0,
    put: (b) => client.put(b),
    consumed: (total) => peer.call("waitFor", total, 60_000),
    rss: () => peer.call<number>("rss"),
    cpu: async () => (await peer.call<number>("cpu")) + via.cpu(),
    close: () => undefined,
  };
}

/**
 * The raw socket floor. `messageBytes` 0: the receiver only touches what it reads (no message
 * boundaries, nothing copied). Otherwise it assembles every message of that size into a buffer
 * of its own first, as a framed receiver (Plexus, MQTT, gRPC) must before handing it out.
 */
async function raw(scope: CaseScope, messageBytes = 0): Promise<Sender> {
  const args = messageBytes > 0 ? ["tcp", "-", "messages", String(messageBytes)] : ["tcp", "-", "sink", "1"];
  const peer = await Peer.start(scope, "net-peer.js", { args });
  const socket: Socket = connect({ host: "127.0.0.1", port: Number(peer.info["port"]), noDelay: true });
  scope.defer(() => void socket.destroy());
  socket.on("error", (err) => scope.fail(err));
  await once(socket, "connect", { signal: scope.signal });
  let drained: Promise<void> | undefined;
  return {
    sent: 0,
    put: (b) => {
      if (socket.write(b) && drained === undefined) return Promise.resolve();
      return (drained ??= once(socket, "drain", { signal: scope.signal }).then(() => void (drained = undefined)));
    },
    consumed: (total) => peer.call("waitFor", total, 60_000),
    rss: () => Promise.resolve(NaN),
    cpu: () => peer.call<number>("cpu"),
    close: () => undefined,
  };
}

async function mqttSender(scope: CaseScope, broker: Broker): Promise<Sender> {
  const via = await brokerFor(scope, broker);
  const peer = await Peer.start(scope, "iops-peer.js", { args: ["mqtt", "0", "0", ...via.args] });
  const mqtt = await import("mqtt");
  const client = await mqtt.connectAsync(String(peer.info["url"]), { clientId: `iops-${process.pid}`, clean: true });
  scope.defer(() => client.endAsync(true));
  return {
    sent: 0,
    put: (b) => client.publishAsync("iops", b, { qos: 1 }).then(() => undefined),
    consumed: (total) => peer.call("waitFor", total, 60_000),
    rss: () => peer.call<number>("rss"),
    cpu: async () => (await peer.call<number>("cpu")) + via.cpu(),
    close: () => undefined,
  };
}

async function grpcSender(scope: CaseScope): Promise<Sender> {
  const peer = await Peer.start(scope, "iops-peer.js", { args: ["grpc", "0", "0"] });
  const grpc = await import("@grpc/grpc-js");
  const same = (b: Buffer): Buffer => b;
  const Ctor = grpc.makeGenericClientConstructor(
    { put: { path: "/plexus.Iops/Put", requestStream: true, responseStream: true, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same, originalName: "put" } },
    "Iops",
  );
  const client = new Ctor(`127.0.0.1:${Number(peer.info["port"])}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
  });
  const call = (client as unknown as { put(): import("@grpc/grpc-js").ClientDuplexStream<Buffer, Buffer> }).put();
  const acks: (() => void)[] = [];
  let head = 0;
  call.on("data", () => acks[head++]?.());
  call.on("error", (err: Error) => {
    if (!/CANCELLED|Cancelled/.test(err.message)) scope.fail(err);
  });
  scope.defer(() => {
    call.cancel();
    client.close();
  });
  return {
    sent: 0,
    put: (b) =>
      new Promise<void>((resolve) => {
        acks.push(resolve);
        call.write(b);
      }),
    consumed: (total) => peer.call("waitFor", total, 60_000),
    rss: () => peer.call<number>("rss"),
    cpu: () => peer.call<number>("cpu"),
    close: () => undefined,
  };
}

/**
 * 256 B .. 16 MiB, 1 MiB of each size per cycle, in a fixed shuffled order (so a run of any
 * length sees about the same mix of sizes; bytes are counted exactly).
 */
const MIX: number[] = [];
for (let k = 8; k <= 24; k++) for (let i = 0; i < 1 << (20 - Math.min(k, 20)); i++) MIX.push(1 << k);
for (let i = MIX.length - 1, seed = 12345; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  const j = seed % (i + 1);
  [MIX[i], MIX[j]] = [MIX[j] as number, MIX[i] as number];
}
const MIX_BUFFERS = new Map<number, Buffer>();
const bufferOf = (size: number): Buffer => {
  let b = MIX_BUFFERS.get(size);
  if (b === undefined) MIX_BUFFERS.set(size, (b = Buffer.alloc(size, 0x5a)));
  return b;
};

type Method = "sync" | "async" | "mix";

async function measure(ctx: CaseContext, s: Sender, method: Method, size: number): Promise<ThroughputSample> {
  const sizeAt = method === "mix" ? (i: number) => MIX[i % MIX.length] : () => size;
  const batch = method === "sync" ? Math.max(1, Math.min(MAX_QUEUE, Math.floor(MAX_QUEUE_BYTES / (size + 64)))) : Infinity;
  const cpu0 = (await s.cpu()) + cpuSeconds();
  const t0 = now();
  let bytes = 0;
  const pending: Promise<void>[] = [];
  let oldest = 0;
  for (let i = 0; i < ctx.count; i++) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const n = sizeAt(i);
    bytes += n;
    pending.push(s.put(bufferOf(n)));
    if (method === "sync") {
      if (pending.length - oldest >= batch) {
        await Promise.all(pending.slice(oldest));
        oldest = pending.length;
      }
    } else if (pending.length - oldest >= WINDOW) {
      await pending[oldest++];
    }
  }
  await Promise.all(pending.slice(oldest));
  s.sent += bytes;
  await s.consumed(s.sent);
  const seconds = (now() - t0) / 1000;
  const cpu = cpuSeconds() + (await s.cpu()) - cpu0;
  const rss = await s.rss();
  return { kind: "throughput", messages: ctx.count, bytes, seconds, cpuSeconds: cpu, ...(Number.isNaN(rss) ? {} : { peakRssBytes: rss }) };
}

const VARIANTS: { method: Method; size: number; label: string; quick: boolean }[] = [
  { method: "sync", size: 64 << 10, label: "sync 64 KiB", quick: true },
  { method: "async", size: 64 << 10, label: "async 64 KiB", quick: false },
  { method: "async", size: 1 << 20, label: "async 1 MiB", quick: false },
  { method: "async", size: 1024, label: "async 1 KiB", quick: false },
  { method: "mix", size: 0, label: "mix 256 B..16 MiB", quick: false },
];

/** The floor that cuts the stream into whole messages (fixed sizes only). */
const WHOLE = "raw tcp socket, whole messages";

const PEERS: { name: string; open: (scope: CaseScope, size: number) => Promise<Sender>; ratioTo?: string[]; fixedSizeOnly?: boolean; mosquitto?: boolean }[] = [
  { name: "raw tcp socket", open: (scope) => raw(scope) },
  { name: WHOLE, open: (scope, size) => raw(scope, size), fixedSizeOnly: true },
  { name: "plexus queue", open: (scope) => plexus(scope), ratioTo: ["raw tcp socket", WHOLE, "mqtt (aedes)", "grpc"] },
  { name: "mqtt (aedes)", open: (scope) => mqttSender(scope, "aedes"), ratioTo: ["raw tcp socket"] },
  { name: "plexus queue over mqtt (aedes)", open: (scope) => plexus(scope, "aedes"), ratioTo: ["mqtt (aedes)"] },
  { name: "mqtt (mosquitto)", open: (scope) => mqttSender(scope, "mosquitto"), ratioTo: ["raw tcp socket", "mqtt (aedes)"], mosquitto: true },
  { name: "plexus queue over mqtt (mosquitto)", open: (scope) => plexus(scope, "mosquitto"), ratioTo: ["mqtt (mosquitto)", "plexus queue over mqtt (aedes)"], mosquitto: true },
  { name: "grpc", open: grpcSender, ratioTo: ["raw tcp socket"] },
  { name: "plexus queue over grpc", open: (scope) => plexus(scope, "grpc"), ratioTo: ["grpc", "plexus queue"] },
];

for (const v of VARIANTS) {
  for (const p of PEERS) {
    if (p.fixedSizeOnly === true && v.method === "mix") continue; // mixed sizes have no fixed message boundary to cut at
    if (p.mosquitto === true && NO_MOSQUITTO !== undefined) continue; // the row's method text says why
    registerCase({
      row: "iops",
      name: p.name,
      variant: v.label,
      kind: "throughput",
      ratioTo: v.method === "mix" ? p.ratioTo?.filter((to) => to !== WHOLE) : p.ratioTo, // no whole-messages floor for mixed sizes
      messageBytes: v.method === "mix" ? 2200 : v.size,
      quick: v.quick,
      async run(ctx) {
        const s = await ctx.keep("sender", (scope) => p.open(scope, v.size));
        return measure(ctx, s, v.method, v.size);
      },
    });
  }
}
