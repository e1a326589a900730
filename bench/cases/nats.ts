/**
 * Row `nats` (bench/README.md, "The suite"): Plexus through a NATS server this suite starts
 * itself (one nats-server process with JetStream on loopback). {@link queueCases}: queue puts
 * through JetStream (the bridge's export side alone, and export -> import end to end, `fast` and
 * `reliable`) against the plain JetStream client publishing the same bytes to the same server.
 * The cases are left out, with the reason in the row's method text, where nats-server is not
 * installed.
 * @module
 */
import { readFileSync } from "node:fs";
import type * as JetStream from "@nats-io/jetstream";
import { queue, type QueueClient, type QueueServer } from "../../src/index.js";
import type { BridgeContext } from "../../src/bridge/context.js";
import { connectNats, loadNats, type NatsConnection } from "../../src/bridge/nats.js";
import { QueueBridge, loadJetStream } from "../../src/bridge/queues.js";
import { registerCase, type CaseContext, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now } from "../measure.js";
import { cpuSeconds } from "../procs/runtime.js";
import { natsMissing, natsServer } from "../../test/helpers/nats.js";

/** Why the row cannot run here (undefined: it can). */
export const NO_NATS = natsMissing();

/** Puts (or publications) in flight at once in the windowed cases. */
const WINDOW = 256;

/** How the row's queue cases are measured (part of the row's method text, bench/cases/nats-pubsub.ts). */
export const QUEUE_METHOD =
  "One nats-server 2.9 process started by the suite (JetStream, file storage), every client and bridge in the benchmark process. " +
    "Queue puts/s: `jetstream publish`: the plain JetStream client publishes each message to a work-queue stream and awaits its acknowledgement " +
    `(awaited: one at a time; ${WINDOW} in flight: a sliding window); \`jetstream publish -> consume\`: the same plus a plain pull consumer on a second connection ` +
    "that acknowledges each message, time = first publication to the last message consumed. `plexus put -> jetstream`: a Plexus queue client puts to the bridge's " +
    "exporting queue server, which publishes each message to the stream (with its message id and headers); each put resolves when the stream " +
    "stored it (fast). `plexus put -> jetstream -> plexus`: the same, plus an importing bridge that pulls from the stream's durable consumer, " +
    "puts each message into an application queue server and acknowledges it on JetStream; time = first put to the application having taken " +
    "the last message; fast: puts resolve when stored; reliable: when the importer's put of it resolved (a notice back over NATS). " +
    "Streams are purged after each repetition. CPU µs/msg = user + system CPU of the benchmark process and the nats-server process during the median repetition, per message.";

/** CPU seconds process `pid` used so far (Linux: utime + stime of /proc/PID/stat, at 100 ticks/s). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A nats-server with JetStream and a bridge context on it. */
interface Nats extends Resource {
  ctx: BridgeContext;
  mod: typeof JetStream;
  jsm: JetStream.JetStreamManager;
  /** CPU seconds of the server process so far. */
  cpu(): number;
}

async function startNats(scope: CaseScope): Promise<Nats> {
  const server = await natsServer({ jetstream: true });
  scope.defer(() => server.close());
  const nats = await loadNats();
  const nc: NatsConnection = await connectNats(nats, { servers: server.url });
  scope.defer(() => nc.close());
  const mod = await loadJetStream();
  const jsm = await mod.jetstreamManager(nc);
  const ctx: BridgeContext = {
    nats,
    nc,
    prefix: "bench",
    origin: "bench",
    report: (e) => scope.fail(e),
    online: () => true,
    connected: () => Promise.resolve(),
  };
  return { ctx, mod, jsm, cpu: () => processCpuSeconds(server.pid), close: () => undefined };
}

/** Something that puts one message and resolves when it was acknowledged. */
interface Putter extends Resource {
  put(b: Uint8Array): Promise<unknown>;
  /** Resolves once `total` messages in all were taken at the far end (end-to-end cases). */
  consumed(total: number): Promise<void>;
  /** After a repetition: empties the stream. */
  reset(): Promise<void>;
  nats: Nats;
  sent: number;
}

/**
 * The plain JetStream client publishing to a work-queue stream of its own; with `consuming`, a
 * plain pull consumer on another connection takes and acknowledges every message.
 */
async function plainPublisher(scope: CaseScope, consuming = false): Promise<Putter> {
  const n = await startNats(scope);
  const stream = "bench_plain";
  await n.jsm.streams.add({ name: stream, subjects: ["bench.plain"], retention: n.mod.RetentionPolicy.Workqueue, storage: n.mod.StorageType.File });
  const js = n.mod.jetstream(n.ctx.nc);
  let taken = 0;
  let waiter: { total: number; resolve: () => void } | undefined;
  if (consuming) {
    await n.jsm.consumers.add(stream, { durable_name: "plain", ack_policy: n.mod.AckPolicy.Explicit, max_ack_pending: WINDOW * 2 });
    const nc2 = await connectNats(n.ctx.nats, { servers: n.ctx.nc.getServer() });
    scope.defer(() => nc2.close());
    const consumer = await n.mod.jetstream(nc2).consumers.get(stream, "plain");
    const messages = await consumer.consume({
      max_messages: WINDOW * 2,
      callback: (m) => {
        taken += m.data.length > 0 ? 1 : 0;
        m.ack();
        if (waiter !== undefined && taken >= waiter.total) {
          waiter.resolve();
          waiter = undefined;
        }
      },
    });
    scope.defer(() => messages.close().then(() => undefined));
  }
  return {
    nats: n,
    sent: 0,
    put: (b) => js.publish("bench.plain", b),
    consumed: (total) => (!consuming || taken >= total ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { total, resolve }))),
    reset: async () => void (await n.jsm.streams.purge(stream)),
    close: () => undefined,
  };
}

/** A Plexus producer putting through an exporting bridge; with `importing`, an importing bridge and an application server take the messages. */
async function bridged(scope: CaseScope, delivery: "fast" | "reliable", importing: boolean): Promise<Putter> {
  const n = await startNats(scope);
  const name = `bench-${delivery}-${importing ? "e2e" : "export"}`;
  const out = await QueueBridge.start(n.ctx, { name, direction: "export", url: "tcp://127.0.0.1:0", delivery });
  scope.defer(() => out.close());
  let app: QueueServer | undefined;
  let taken = 0;
  let waiter: { total: number; resolve: () => void } | undefined;
  if (importing) {
    const server = (app = await queue.server({ url: "tcp://127.0.0.1:0", maxQueue: 4096 }));
    scope.defer(() => server.close());
    const inn = await QueueBridge.start(n.ctx, { name, direction: "import", url: server.url, delivery: "fast", window: WINDOW * 2 });
    scope.defer(() => inn.close());
    void (async () => {
      try {
        for await (const m of server) {
          taken += m.byteLength > 0 ? 1 : 0;
          if (waiter !== undefined && taken >= waiter.total) {
            waiter.resolve();
            waiter = undefined;
          }
        }
      } catch {
        // closed
      }
    })();
  }
  const client: QueueClient = await queue.client({ url: out.url, slots: WINDOW, timeout: 60_000 });
  scope.defer(() => client.close());
  return {
    nats: n,
    sent: 0,
    put: (b) => client.put(b),
    consumed: (total) => (app === undefined || taken >= total ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { total, resolve }))),
    reset: async () => void (await n.jsm.streams.purge(out.stream)),
    close: () => undefined,
  };
}

async function measure(ctx: CaseContext, p: Putter, inFlight: number, size: number): Promise<ThroughputSample> {
  const msg = new Uint8Array(size).fill(0x5a);
  const cpu0 = cpuSeconds() + p.nats.cpu();
  const t0 = now();
  const pending: Promise<unknown>[] = [];
  let oldest = 0;
  for (let i = 0; i < ctx.count; i++) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const put = p.put(msg);
    put.catch(() => {}); // a failed case closes its client: the puts still pending must not end the suite
    pending.push(put);
    if (pending.length - oldest >= inFlight) await pending[oldest++];
  }
  await Promise.all(pending.slice(oldest));
  p.sent += ctx.count;
  await p.consumed(p.sent);
  const seconds = (now() - t0) / 1000;
  const cpu = cpuSeconds() + p.nats.cpu() - cpu0;
  await p.reset();
  return { kind: "throughput", messages: ctx.count, bytes: ctx.count * size, seconds, cpuSeconds: cpu };
}

/** The queue cases of the row: Plexus puts through JetStream against the plain JetStream publish. */
function queueCases(): void {
  const PLAIN_AWAITED = "jetstream publish, awaited";
  const PLAIN_WINDOW = `jetstream publish, ${WINDOW} in flight`;
  const PLAIN_E2E = `jetstream publish -> consume, ${WINDOW} in flight`;
  const cases: { name: string; open: (scope: CaseScope) => Promise<Putter>; inFlight: number; ratioTo?: string; quick?: boolean }[] = [
    { name: PLAIN_AWAITED, open: plainPublisher, inFlight: 1, quick: true },
    { name: PLAIN_WINDOW, open: plainPublisher, inFlight: WINDOW },
    { name: "plexus put -> jetstream, fast, awaited", open: (s) => bridged(s, "fast", false), inFlight: 1, ratioTo: PLAIN_AWAITED, quick: true },
    { name: `plexus put -> jetstream, fast, ${WINDOW} in flight`, open: (s) => bridged(s, "fast", false), inFlight: WINDOW, ratioTo: PLAIN_WINDOW },
    { name: PLAIN_E2E, open: (s) => plainPublisher(s, true), inFlight: WINDOW },
    { name: `plexus put -> jetstream -> plexus, fast, ${WINDOW} in flight`, open: (s) => bridged(s, "fast", true), inFlight: WINDOW, ratioTo: PLAIN_E2E },
    { name: `plexus put -> jetstream -> plexus, reliable, ${WINDOW} in flight`, open: (s) => bridged(s, "reliable", true), inFlight: WINDOW, ratioTo: PLAIN_E2E },
  ];
  for (const size of [1024, 64 << 10]) {
    for (const c of cases) {
      registerCase({
        row: "nats",
        name: c.name,
        variant: `queue ${size >= 1024 ? `${size >> 10} KiB` : `${size} B`}`,
        kind: "throughput",
        ...(c.ratioTo !== undefined ? { ratioTo: c.ratioTo } : {}),
        messageBytes: size,
        quick: c.quick === true && size === 1024,
        async run(ctx) {
          const p = await ctx.keep("putter", c.open);
          return measure(ctx, p, c.inFlight, size);
        },
      });
    }
  }
}

if (NO_NATS === undefined) queueCases();
