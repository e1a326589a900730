/**
 * The three stages of the `pipeline` comparison (bench/pipeline.ts), twice: as a pipeline (the
 * default export, which the runner's worker and process import again), and written by hand with
 * publishers and subscribers (`hand` roles: the transform in a worker thread, the sink in a
 * process). The source runs in the driver's main thread, the transform in a worker, the sink
 * in a process; the sink publishes what it measured on `bench/<kind>/result`.
 * @module
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { connect as join } from "../../src/index.js";
import { Collection, Unit, connect, input, output, setting, topic } from "../../src/pipeline/index.js";

/** A message: its sequence number, when it was published (ms, CLOCK_MONOTONIC) and its payload. */
export interface Msg {
  seq: number;
  t: number;
  data: Uint8Array;
}

/** What a sink measured. */
export interface Result {
  count: number;
  /** When the first message was published and the last received (ms). */
  first: number;
  last: number;
  /** One-way latencies (ms), at most 10000. */
  latencies: number[];
}

/** Now, ms, comparable between processes (CLOCK_MONOTONIC). */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Both versions wait this long before the first message, so that no stage is still starting. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

/** The settings every stage reads. */
const SETTINGS = { size: setting.int(64, { min: 1 }), count: setting.int(1000, { min: 1 }), pace: setting.number(0, { min: 0 }) };

/** Counts what it receives and reports once it has `count`. */
export class SinkState {
  private n = 0;
  private first = 0;
  private readonly latencies: number[] = [];
  constructor(private readonly count: number) {}
  /** One message; the result once the last arrived. */
  take(m: Msg): Result | undefined {
    const t = now();
    if (this.n === 0) this.first = m.t;
    if (this.latencies.length < 10_000) this.latencies.push(t - m.t);
    if (++this.n < this.count) return undefined;
    return { count: this.n, first: this.first, last: t, latencies: this.latencies };
  }
}

class Source extends Unit.with(SETTINGS) {
  readonly OUTPUT = output<Msg>();
  override initialize(): void {
    this.produce(this.OUTPUT, (signal) => this.messages(signal));
  }
  private async *messages(signal: AbortSignal): AsyncGenerator<Msg> {
    const { size, count, pace } = this.settings;
    const data = new Uint8Array(size).fill(7);
    await settle();
    for (let seq = 0; seq < count && !signal.aborted; seq++) {
      yield { seq, t: now(), data };
      if (pace > 0) await new Promise((r) => setTimeout(r, pace));
    }
  }
}

class Transform extends Unit {
  readonly INPUT = input<Msg>({ queue: 64 });
  readonly OUTPUT = output<Msg>();
  override initialize(): void {
    this.subscribe(this.INPUT, (m) => this.OUTPUT.publish(m));
  }
}

class Sink extends Unit.with(SETTINGS) {
  readonly INPUT = input<Msg>({ queue: 64 });
  readonly RESULT = output<Result>();
  override initialize(): void {
    const state = new SinkState(this.settings.count);
    this.subscribe(this.INPUT, (m) => {
      const r = state.take(m);
      if (r !== undefined) return this.RESULT.publish(r);
    });
  }
}

/** The pipeline: SOURCE (main thread) -> TRANSFORM (worker) -> SINK (process). */
export default class Stages extends Collection {
  readonly SOURCE = new Source();
  readonly TRANSFORM = new Transform().place("worker");
  readonly SINK = new Sink().place("process");
  override connections() {
    return [connect(this.SOURCE.OUTPUT, this.TRANSFORM.INPUT), connect(this.TRANSFORM.OUTPUT, this.SINK.INPUT), connect(this.SINK.RESULT, topic<Result>("bench/pipeline/result"))];
  }
}

// The hand-written transform (a worker) and sink (a process): argv[2] is JSON { role, address, count }.
const arg = process.argv[2]?.startsWith("{") === true ? (JSON.parse(process.argv[2]) as { role?: string; address: string; count: number }) : undefined;
const role = (!isMainThread ? (workerData as { role?: string } | undefined) : arg)?.role;
if (role === "hand-transform" || role === "hand-sink") {
  const { address, count } = (isMainThread ? arg : workerData) as { address: string; count: number };
  const node = await join({ address, embedded: false });
  if (role === "hand-transform") {
    const out = await node.publisher<Msg>("bench/hand/b");
    const sub = await node.subscriber<Msg>("bench/hand/a", { queue: 64 });
    parentPort?.postMessage("ready");
    parentPort?.on("message", () => void node.close().then(() => process.exit(0)));
    await sub.forEach((s) => out.publish(s.value));
  } else {
    const res = await node.publisher<Result>("bench/hand/result");
    const sub = await node.subscriber<Msg>("bench/hand/b", { queue: 64 });
    const state = new SinkState(count);
    process.stdout.write("ready\n");
    process.on("disconnect", () => process.exit(0));
    await sub.forEach((s) => {
      const r = state.take(s.value);
      if (r !== undefined) return res.publish(r).then(() => node.close().then(() => process.exit(0)));
    });
  }
}
