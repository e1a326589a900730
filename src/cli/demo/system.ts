/**
 * The demo's pipeline (`plexus demo`), written with `plexus/pipeline`: a producer process
 * publishing a noisy sine on `demo/raw`, a transform in a worker thread publishing its envelope
 * on `demo/filtered`, two consumer processes reading it (one over shared memory, one over TCP),
 * and the `demo/peak` request/response service in another worker. Each consumer reports its
 * latencies once a second to the demo's acknowledged queue; the shm consumer also puts a summary
 * of the messages there, the tcp consumer asks `demo/peak` about some of them. Workers and
 * processes import this module again to find the system (its default export).
 * (Internal: not part of the public API.)
 * @module
 */
import { queue as queues, type QueueClient } from "../../queue/index.js";
import type { Client } from "../../rpc/client.js";
import type { Server } from "../../rpc/server.js";
import { Collection, Unit, connect, input, output, setting, type Connection, type Input } from "../../pipeline/index.js";
import { now, percentile } from "./clock.js";

/** What the producer publishes on `demo/raw`. */
export interface Raw {
  seq: number;
  sentAt: number;
  samples: Float64Array;
}

/** What the transform publishes on `demo/filtered`. */
export interface Filtered {
  seq: number;
  sentAt: number;
  mean: number;
  rms: number;
  envelope: Float32Array;
}

/** Times of one second (ms): how many, how many failed, percentiles. */
export interface Spread {
  count: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
}

/** A consumer's report of one second, put to the demo's queue. */
export interface Report {
  /** Which consumer. */
  report: "shm" | "tcp";
  /** Messages received. */
  count: number;
  /** End-to-end latency (producer to consumer, ms). */
  p50: number;
  p90: number;
  p99: number;
  /** Round trips of its requests to `demo/peak`. */
  rpc?: Spread;
  /** Its acknowledged puts of summaries (put to ack). */
  queue?: Spread;
}

/** The `demo/peak` service: the loudest bin of a message's envelope. */
export function peak({ seq, envelope }: { seq: number; envelope: Float32Array }): { seq: number; peak: number; bin: number } {
  let bin = 0;
  for (let i = 1; i < envelope.length; i++) if (envelope[i] > envelope[bin]) bin = i;
  return { seq, peak: envelope[bin] ?? 0, bin };
}

/** Publishes `{ seq, sentAt, samples }` at a steady rate: a noisy sine in a Float64Array. */
export class Producer extends Unit.with({ rate: setting.number(1000, { min: 1 }), size: setting.int(1024, { min: 1 }) }) {
  readonly OUTPUT = output<Raw>({ topic: "demo/raw" });

  override initialize(): void {
    this.produce(this.OUTPUT, (signal) => this.samples(signal));
  }

  private async *samples(signal: AbortSignal): AsyncGenerator<Raw> {
    const { rate, size } = this.settings;
    const started = now();
    let seq = 0;
    while (!signal.aborted) {
      // small batches, so latency is not queueing behind a burst
      const due = Math.floor(((now() - started) * rate) / 1000);
      while (seq < due && !signal.aborted) {
        const samples = new Float64Array(size);
        const phase = seq / 50;
        for (let i = 0; i < size; i++) samples[i] = Math.sin(phase + i / 16) + (Math.random() - 0.5) * 0.2;
        yield { seq: seq++, sentAt: now(), samples };
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/**
 * Reads `demo/raw`, publishes `demo/filtered`: new values, never the received views (received
 * data is read-only and goes back to the ring when the handler returns).
 */
export class Transform extends Unit {
  readonly INPUT = input<Raw>({ topic: "demo/raw", queue: 64 });
  readonly OUTPUT = output<Filtered>({ topic: "demo/filtered" });

  override initialize(): void {
    this.subscribe(this.INPUT, (raw) => this.OUTPUT.publish(filter(raw)));
  }
}

function filter({ seq, sentAt, samples: x }: Raw): Filtered {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    sq += x[i] * x[i];
  }
  const bins = 32;
  const envelope = new Float32Array(bins);
  const per = Math.max(1, Math.floor(x.length / bins));
  for (let b = 0; b < bins; b++) {
    let m = 0;
    for (let i = b * per; i < Math.min(x.length, (b + 1) * per); i++) m = Math.max(m, Math.abs(x[i]));
    envelope[b] = m;
  }
  const n = Math.max(1, x.length);
  return { seq, sentAt, mean: sum / n, rms: Math.sqrt(sq / n), envelope };
}

/** Times of one second, cut at 100,000. */
class Times {
  values: number[] = [];
  errors = 0;

  add(ms: number): void {
    if (this.values.length < 100_000) this.values.push(ms);
  }

  /** The second's spread; starts the next. */
  take(): Spread {
    const sorted = this.values.sort((a, b) => a - b);
    const s = { count: sorted.length, errors: this.errors, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
    this.values = [];
    this.errors = 0;
    return s;
  }
}

/** The settings of a consumer: the demo's queue, and how often to call `demo/peak` and to put a summary (0: never). */
const consumerSettings = { queue: setting.string(""), every: setting.int(0, { min: 0 }), putEvery: setting.int(0, { min: 0 }) };

/**
 * Reads `demo/filtered` over one transport, measures the latency from the producer, and reports
 * it each second to the demo's queue; calls `demo/peak` for one message in `every`, puts a
 * summary of one in `putEvery` to the queue.
 */
export class Consumer extends Unit.with(consumerSettings) {
  readonly INPUT: Input<Filtered>;
  private client: Client<{ seq: number; envelope: Float32Array }, { seq: number; peak: number; bin: number }> | undefined;
  private reports: QueueClient | undefined;
  private readonly latencies = new Times();
  private readonly rtts = new Times();
  private readonly acks = new Times();

  /** @param transport - the only transport its input takes messages over */
  constructor(private readonly transport: "shm" | "tcp") {
    super();
    this.INPUT = input<Filtered>({ topic: "demo/filtered", transport, queue: 64 });
  }

  override async initialize(): Promise<void> {
    const { queue, every, putEvery } = this.settings;
    if (every > 0) this.client = await this.node.client("demo/peak", { timeout: 2000 });
    if (queue !== "") this.reports = await queues.client({ url: queue, linger: 500 });
    this.subscribe(this.INPUT, (m) => this.take(m, every, putEvery));
    this.task((signal) => this.report(signal, every > 0, putEvery > 0));
  }

  private take(m: Filtered, every: number, putEvery: number): void {
    this.latencies.add(now() - m.sentAt);
    const client = this.client;
    if (client && m.seq % every === 0) {
      // The received envelope is a view of the ring, valid only in this handler: the request
      // may wait for an in-flight slot, so it gets its own copy.
      const sent = performance.now();
      client.request({ seq: m.seq, envelope: m.envelope.slice() }).then(
        () => this.rtts.add(performance.now() - sent),
        () => void this.rtts.errors++,
      );
    }
    const reports = this.reports;
    if (reports && putEvery > 0 && m.seq % putEvery === 0) {
      // A summary of the message (plain numbers, nothing borrowed from the ring), acknowledged by the queue server.
      const sent = performance.now();
      reports.put({ seq: m.seq, latency: now() - m.sentAt }).then(
        () => this.acks.add(performance.now() - sent),
        () => void this.acks.errors++,
      );
    }
  }

  /** Puts a {@link Report} to the demo's queue once a second, until the unit shuts down. */
  private async report(signal: AbortSignal, rpc: boolean, puts: boolean): Promise<void> {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
      if (signal.aborted) return;
      const l = this.latencies.take();
      const report: Report = { report: this.transport, count: l.count, p50: l.p50, p90: l.p90, p99: l.p99 };
      if (rpc) report.rpc = this.rtts.take();
      if (puts) report.queue = this.acks.take();
      await this.reports?.put(report).catch(() => {});
    }
  }

  override async shutdown(): Promise<void> {
    await this.client?.close();
    await this.reports?.close();
  }
}

/** Serves `demo/peak` (when `serve`). */
export class Peak extends Unit.with({ serve: setting.bool(true) }) {
  private server: Server | undefined;

  override async initialize(): Promise<void> {
    if (this.settings.serve) this.server = await this.node.server("demo/peak", peak);
  }

  override async shutdown(): Promise<void> {
    await this.server?.close();
  }
}

/** The demo: producer process -> transform worker -> consumer processes over shm and tcp, and the peak service in a worker. */
export default class Demo extends Collection {
  readonly PRODUCER = new Producer().place("process");
  readonly TRANSFORM = new Transform().place("worker");
  readonly SHM = new Consumer("shm").place("process");
  readonly TCP = new Consumer("tcp").place("process");
  readonly PEAK = new Peak().place("worker");

  override connections(): Connection[] {
    // Each stream is given its topic (demo/raw, demo/filtered): these connections need no edge,
    // they say who depends on whom (shutdown order).
    return [connect(this.PRODUCER.OUTPUT, this.TRANSFORM.INPUT), connect(this.TRANSFORM.OUTPUT, this.SHM.INPUT), connect(this.TRANSFORM.OUTPUT, this.TCP.INPUT)];
  }
}

/** Node names of the demo's threads and processes, as the graph shows them. */
export const NODE_NAMES = {
  "demo/PRODUCER": "demo producer",
  "demo/TRANSFORM": "demo transform (worker)",
  "demo/SHM": "demo consumer (shm)",
  "demo/TCP": "demo consumer (tcp)",
  "demo/PEAK": "demo service (peak)",
} as const;
