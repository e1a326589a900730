/**
 * Row `paced` (bench/README.md, "The `paced` row"): what sensor and camera users see. A publisher
 * sends at a fixed rate, through the public API, to a subscriber process and to a worker thread
 * of that process; one-way latency (clock at publish, clock at delivery) and the CPU use of the
 * publisher and subscriber processes, next to a floor of the same run and pace: a native copy of
 * the message plus the one-way wake-up of a process by an eventfd.
 * @module
 */
import type { Publisher } from "../../src/index.js";
import { native } from "../../src/native.js";
import { registerCase, type CaseContext, type CaseScope, type LatencySample, type Resource } from "../harness.js";
import { now } from "../measure.js";
import { paceTo, sleepFor } from "../pacing.js";
import { Peer } from "../peer.js";
import { monotonicNs, type PacedMessage } from "../procs/paced-arrivals.js";
import { cpuMark, cpuPercentSince } from "../procs/runtime.js";
import { registerRow } from "../rows.js";
import { shared } from "../shared.js";
import { EventfdLink } from "./eventfd-floor.js";
import { openTarget, type Target } from "./memcpy-floor.js";
import { graph } from "./plexus-pubsub.js";

const MiB = 1 << 20;
/** Name of the row's floor: the Plexus cases' ratios are to it. */
export const PACED_FLOOR = "one-way floor (eventfd + copy)";
/** Bytes the floor copies for a small object (its MessagePack encoding is about 40). */
const SMALL_BYTES = 64;
/** A measured repetition of a stream, ms (warm-up runs and `--quick` use the runner's shorter target). */
const REPETITION_MS = 1000;
/** The silence of a measured idle repetition, ms. */
const IDLE_MS = 2000;
/** Fewest messages in a repetition. */
const MIN_MESSAGES = 20;
/** How long the floor's receiver is given to wake up for the last message of a repetition, ms. */
const COLLECT_FLOOR_MS = 20;
/** How long the subscribers may take to deliver the last message of a repetition, ms. */
const COLLECT_MS = 10_000;
const TOPIC = "bench/paced";
const SMALL_TAG = "a small object";

/** A variant of the row: what is sent, how often. */
interface Traffic {
  /** Variant label. */
  readonly label: string;
  /** Messages per second; 0: idle (no traffic, then one small object). */
  readonly hz: number;
  /** Bytes of the typed array; 0: a small object. */
  readonly bytes: number;
}

const TRAFFIC: readonly Traffic[] = [
  { label: "small @1 kHz", hz: 1000, bytes: 0 },
  { label: "1 MiB @100 Hz", hz: 100, bytes: MiB },
  { label: "1 MiB @1 kHz", hz: 1000, bytes: MiB },
  { label: "idle", hz: 0, bytes: 0 },
];

/** Messages a small-object stream sends back to back before its first repetition (not measured). */
const WARM_SMALL = 20_000;
/** The same for a stream of 1 MiB arrays. */
const WARM_LARGE = 3_000;

/** Ring capacity for 1 MiB messages (as the thr row's pubsub case): room for 7 of them. */
const LARGE_RING = 8 * MiB;

registerRow({
  id: "paced",
  title: "paced: a publisher at a fixed rate -> a subscriber process and a worker thread: one-way latency and CPU",
  method:
    "The suite's process publishes at a fixed rate through the public API (connect, node.publisher, node.subscriber; shared-memory rings; " +
    "the GraphServer runs in the suite's process, as in the lat row) to one topic with two subscribers, default options: a subscriber process " +
    "(main thread) and a worker thread of that same process. One stream feeds both: a repetition is run once and its two subscribers are the " +
    `cases "plexus pubsub -> process" and "-> worker". A second stream, whose subscriber process and worker subscribe with anticipate: true, ` +
    `gives the case "-> process, anticipate" (its repetitions alternate with the first stream's). small: {seq, t, tag: "${SMALL_TAG}"} (MessagePack, ~40 B); 1 MiB: {seq, t, data: ` +
    `Float64Array(131072)} (out of band, one copy into a ${LARGE_RING / MiB} MiB ring). t = process.hrtime.bigint() (CLOCK_MONOTONIC: one ` +
    "clock for every process and thread of the host) just before publish(), so the encoding and the copy into the ring count; latency = the " +
    "subscriber's clock as soon as the decoded sample is in hand - t; then it touches one byte per 64 of the array and releases the sample. " +
    "Each subscriber sends its latencies back (IPC, postMessage) at the end of the repetition; p50/p90/p99 are one-way, 'round trips/rep' " +
    "is messages per repetition. Pacing: message i is due at t0 + i/rate, never earlier: a timer to ~1.5 ms before, one event-loop turn, then " +
    "a blocking sleep (Atomics.wait, a futex with a timeout) for the rest, so that waiting costs the publisher no CPU (the zb row's " +
    `event-loop turns would keep one of the cores busy at 1 kHz). Repetitions of ${REPETITION_MS / 1000} s; idle: nothing is sent for ` +
    `${IDLE_MS / 1000} s, then one small object (its latency: the first message after ${IDLE_MS / 1000} s of silence). CPU % = user + system ` +
    "CPU time of a whole process (all its threads, process.cpuUsage()) / wall time, 100 = one core: publisher = the suite's process over the " +
    "sending window (idle: the silence); subscriber = the subscriber process, its main-thread subscriber AND the worker thread, from the start " +
    "of the repetition to the last delivery (idle: the silence); printed: the median of each over the repetitions, the same pair for both cases. The goal of the row: p50 <= the floor, i.e. a " +
    `ratio <= 1. "${PACED_FLOOR}" = the time of a native copy of the message's bytes into shared memory (${SMALL_BYTES} B for the small ` +
    "object) + the time from an eventfd signal to the callback of a process that waits in its event loop (uv_poll, the lat row's floor; " +
    "one-way: the process notes CLOCK_MONOTONIC in its callback, the clock of the subscribers; like a publisher, the sender does not wait for it), " +
    "paced the same way, its repetitions " +
    "alternating with the Plexus cases'. Before its first repetition a stream sends " +
    `${WARM_SMALL} small objects (${WARM_LARGE} arrays of 1 MiB) back to back, not measured: V8 optimizes a function after some thousands ` +
    "of calls, which a stream at 100 Hz reaches after minutes; the burst puts both processes in that steady state at once.",
});

/** What one repetition of a stream delivered: each subscriber's latencies (µs) and the CPU shares. */
interface Delivered {
  process: Float64Array;
  worker: Float64Array;
  cpuPercent: Record<string, number>;
}

/** How long a run lasts: the full length when measured, the runner's target when warming up or `--quick`. */
function windowMs(ctx: CaseContext, fullMs: number): number {
  return ctx.phase === "measure" && !ctx.quick ? fullMs : ctx.targetMs;
}

/** Messages in a repetition of `ms` at `hz`. */
function messagesIn(ms: number, hz: number): number {
  return Math.max(MIN_MESSAGES, Math.round((ms * hz) / 1000));
}

/** Runs `send(i)` for i = 0..n-1, the i-th at `(i + 1) / hz` s after the start, never earlier. */
async function paced(n: number, hz: number, signal: AbortSignal, send: (i: number) => Promise<void>): Promise<void> {
  const period = 1000 / hz;
  const t0 = now();
  for (let i = 0; i < n; i++) {
    await paceTo(t0 + (i + 1) * period, signal);
    await send(i);
  }
}

/** The stream: a GraphServer, a publisher in this process, the subscriber process (and its worker). */
class PacedStream implements Resource {
  private seq = 0;

  private constructor(
    private readonly pub: Publisher<PacedMessage>,
    private readonly peer: Peer,
    private readonly data: Float64Array | undefined,
  ) {}

  /** @param anticipate - the subscribers' `anticipate` option */
  static async open(scope: CaseScope, traffic: Traffic, anticipate: boolean): Promise<PacedStream> {
    const { node, address } = await graph(scope);
    const pub = await node.publisher<PacedMessage>(TOPIC, traffic.bytes > 0 ? { capacity: LARGE_RING } : {});
    const peer = await Peer.start(scope, "paced-peer.js", { args: [address, TOPIC, String(COLLECT_MS), String(anticipate)] });
    await pub.waitForSubscribers(2, { signal: scope.signal, timeout: 15_000 });
    const stream = new PacedStream(pub, peer, traffic.bytes > 0 ? new Float64Array(traffic.bytes / 8).fill(1.5) : undefined);
    // Back to back, not recorded (the subscribers record from the first repetition's `begin` on).
    for (let i = traffic.bytes > 0 ? WARM_LARGE : WARM_SMALL; i > 0; i--) await stream.publish(++stream.seq, scope.signal);
    return stream;
  }

  /** Publishes message `seq`, stamped now. */
  private publish(seq: number, signal: AbortSignal): Promise<void> {
    const t = monotonicNs();
    const m: PacedMessage = this.data === undefined ? { seq, t, tag: SMALL_TAG } : { seq, t, data: this.data };
    return this.pub.publish(m, { signal });
  }

  /** The subscribers' latencies of `first..last` and the CPU shares, with the publisher's. */
  private async collect(last: number, publisher: number, subscriber?: number): Promise<Delivered> {
    const got = await this.peer.call<{ process: Float64Array; worker: Float64Array; cpu: number }>("collect", last, COLLECT_MS + 5000);
    return { process: got.process, worker: got.worker, cpuPercent: { publisher, subscriber: subscriber ?? got.cpu } };
  }

  /** One repetition: `ms` of messages at `hz`. */
  async stream(ms: number, hz: number, signal: AbortSignal): Promise<Delivered> {
    const n = messagesIn(ms, hz);
    const first = this.seq + 1;
    await this.peer.call("begin", first);
    const mark = cpuMark();
    await paced(n, hz, signal, () => this.publish(++this.seq, signal));
    return this.collect(this.seq, cpuPercentSince(mark));
  }

  /** One idle repetition: `ms` of silence (the CPU shares), then one small object (the latency). */
  async idle(ms: number, signal: AbortSignal): Promise<Delivered> {
    const seq = ++this.seq;
    await this.peer.call("begin", seq);
    const mark = cpuMark();
    await sleepFor(ms, signal);
    const publisher = cpuPercentSince(mark);
    const subscriber = await this.peer.call<number>("usage");
    await this.publish(seq, signal);
    return this.collect(seq, publisher, subscriber);
  }

  close(): void {}
}

/**
 * The floor: a native copy into shared memory, then an eventfd that wakes a process waiting in
 * its event loop; the latency is the copy's time + the time from the signal to the waiting
 * process's callback (one-way, the same clock as the Plexus cases). Like a publisher, the sender
 * does not wait for the woken process (a sender that blocks right after its signal lets the
 * kernel run the woken process on the sender's own core at once: 11 µs here, against 26–36 µs
 * for one that goes on).
 */
class Floor implements Resource {
  private offset = 0;

  private constructor(
    private readonly link: EventfdLink,
    private readonly target: Target,
  ) {}

  static async open(scope: CaseScope, bytes: number): Promise<Floor> {
    const target = openTarget(bytes);
    scope.defer(() => target.close());
    return new Floor(await EventfdLink.open(scope, true), target);
  }

  /** One message: the copy, then the signal; the copy's µs, the signal's time at `signals[i]`. */
  private send(i: number, copyUs: Float64Array, signals: Float64Array): void {
    const { segment, source } = this.target;
    if (this.offset + source.byteLength > segment.byteLength) this.offset = 0;
    const t0 = now();
    native().copy(segment, this.offset, source);
    copyUs[i] = (now() - t0) * 1000;
    signals[i] = monotonicNs();
    this.link.signal();
    this.offset += source.byteLength;
  }

  /**
   * The one-way latencies (µs) of the messages just sent: copy + signal to the first wake-up at
   * or after it (two signals close together may share one wake-up, as they would share a read).
   */
  private async oneWay(copyUs: Float64Array, signals: Float64Array, signal: AbortSignal): Promise<Float64Array> {
    await sleepFor(COLLECT_FLOOR_MS, signal); // the last wake-up lands
    const wakes = await this.link.wakes();
    let w = 0;
    return copyUs.map((c, i) => {
      while (w < wakes.length && wakes[w] < signals[i]) w++;
      if (w === wakes.length) throw new Error(`the floor's echo never woke for message ${i + 1} of ${signals.length}`);
      return c + (wakes[w] - signals[i]) / 1000;
    });
  }

  /** One repetition: `ms` of messages at `hz`. */
  async stream(ms: number, hz: number, signal: AbortSignal): Promise<Float64Array> {
    const n = messagesIn(ms, hz);
    const copyUs = new Float64Array(n);
    const signals = new Float64Array(n);
    await paced(n, hz, signal, async (i) => this.send(i, copyUs, signals));
    return this.oneWay(copyUs, signals, signal);
  }

  /** One idle repetition: `ms` of silence, then one message. */
  async idle(ms: number, signal: AbortSignal): Promise<Float64Array> {
    await sleepFor(ms, signal);
    const copyUs = new Float64Array(1);
    const signals = new Float64Array(1);
    this.send(0, copyUs, signals);
    return this.oneWay(copyUs, signals, signal);
  }

  close(): void {}
}

for (const traffic of TRAFFIC) {
  const idle = traffic.hz === 0;
  const fullMs = idle ? IDLE_MS : REPETITION_MS;
  registerCase({
    row: "paced",
    name: PACED_FLOOR,
    variant: traffic.label,
    kind: "latency",
    method: `native copy of the message's bytes (${SMALL_BYTES} B for a small object) into shared memory + eventfd signal to the wake-up of a process waiting in its event loop (one-way; the sender does not wait for it), same pacing`,
    async run(ctx): Promise<LatencySample> {
      const floor = await ctx.keep("floor", (scope) => Floor.open(scope, traffic.bytes > 0 ? traffic.bytes : SMALL_BYTES));
      const ms = windowMs(ctx, fullMs);
      const rttUs = idle ? await floor.idle(ms, ctx.signal) : await floor.stream(ms, traffic.hz, ctx.signal);
      return { kind: "latency", rttUs };
    },
  });
  const cases = [
    { subscriber: "process", anticipate: false },
    { subscriber: "worker", anticipate: false },
    { subscriber: "process", anticipate: true },
  ] as const;
  for (const { subscriber, anticipate } of cases) {
    registerCase({
      row: "paced",
      name: `plexus pubsub -> ${subscriber}${anticipate ? ", anticipate" : ""}`,
      variant: traffic.label,
      kind: "latency",
      ratioTo: PACED_FLOOR,
      method:
        (subscriber === "process"
          ? "publisher in the suite's process -> subscriber on the main thread of another process"
          : "publisher in the suite's process -> subscriber in a worker thread of that other process (its own connect())") +
        (anticipate ? "; the subscribers of this stream (another process) with anticipate: true: they poll around each message's expected arrival" : ""),
      async run(ctx): Promise<LatencySample> {
        const stream = await shared(ctx, `paced ${traffic.label}${anticipate ? " (anticipate)" : ""}`, (scope) => PacedStream.open(scope, traffic, anticipate));
        const ms = windowMs(ctx, fullMs);
        const got = await stream.repetition(ctx, (signal) => (idle ? stream.value.idle(ms, signal) : stream.value.stream(ms, traffic.hz, signal)));
        return { kind: "latency", rttUs: got[subscriber], cpuPercent: got.cpuPercent };
      },
    });
  }
}
