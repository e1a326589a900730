/**
 * The three stages of the `pipeline` row (bench/cases/pipeline.ts), twice: as a pipeline (the
 * default export, which the runner's worker and process import again), and written by hand with
 * publishers and subscribers (`hand` roles: the transform in a worker thread, the sink in a
 * process). The source is the driver's main thread; the transform republishes each message; the
 * sink answers the messages that ask for it (`echo`) on an echo topic, which the driver reads.
 * @module
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { connect as join } from "../../src/index.js";
import { Collection, Unit, connect, input, output } from "../../src/pipeline/index.js";

/** A message: its sequence number, its payload, and whether the sink answers it. */
export interface Msg {
  seq: number;
  data: Uint8Array;
  echo: boolean;
}

/** The sink's answer. */
export interface Echo {
  seq: number;
}

/** The topics of each version: what the driver publishes, what the transform publishes, the sink's answers. */
export const TOPICS = {
  pipeline: { echo: "bench/pipeline/echo" },
  hand: { a: "bench/hand/a", b: "bench/hand/b", echo: "bench/hand/echo" },
} as const;

/** The source: the driver publishes on its output (`SOURCE.OUTPUT.publish`). */
class Source extends Unit {
  readonly OUTPUT = output<Msg>();
}

class Transform extends Unit {
  readonly INPUT = input<Msg>({ queue: 64 });
  readonly OUTPUT = output<Msg>();
  override initialize(): void {
    this.subscribe(this.INPUT, (m) => this.OUTPUT.publish(m));
  }
}

class Sink extends Unit {
  readonly INPUT = input<Msg>({ queue: 64 });
  readonly ECHO = output<Echo>({ topic: TOPICS.pipeline.echo });
  override initialize(): void {
    this.subscribe(this.INPUT, (m) => (m.echo ? this.ECHO.publish({ seq: m.seq }) : undefined));
  }
}

/** The pipeline: SOURCE (main thread) -> TRANSFORM (worker) -> SINK (process). */
export default class Stages extends Collection {
  readonly SOURCE = new Source();
  readonly TRANSFORM = new Transform().place("worker");
  readonly SINK = new Sink().place("process");
  override connections() {
    return [connect(this.SOURCE.OUTPUT, this.TRANSFORM.INPUT), connect(this.TRANSFORM.OUTPUT, this.SINK.INPUT)];
  }
}

/** The hand-written transform: republishes what it receives, as the pipeline's does. */
export async function handTransform(node: Awaited<ReturnType<typeof join>>): Promise<{ close(): Promise<void> }> {
  const out = await node.publisher<Msg>(TOPICS.hand.b);
  const sub = await node.subscriber<Msg>(TOPICS.hand.a, { queue: 64 });
  void sub.forEach((s) => out.publish(s.value));
  return { close: async () => (await sub.close(), await out.close()) };
}

/** The hand-written sink: answers the messages that ask for it. */
export async function handSink(node: Awaited<ReturnType<typeof join>>): Promise<{ close(): Promise<void> }> {
  const echo = await node.publisher<Echo>(TOPICS.hand.echo);
  const sub = await node.subscriber<Msg>(TOPICS.hand.b, { queue: 64 });
  void sub.forEach((s) => (s.value.echo ? echo.publish({ seq: s.value.seq }) : undefined));
  return { close: async () => (await sub.close(), await echo.close()) };
}

// The hand-written transform (a worker: workerData) and sink (a process: argv[2]), each { role, address }.
const arg = process.argv[2]?.startsWith("{") === true ? (JSON.parse(process.argv[2]) as { role?: string; address: string }) : undefined;
const job = (!isMainThread ? (workerData as { role?: string; address: string } | undefined) : arg) ?? undefined;
if (job?.role === "hand-transform" || job?.role === "hand-sink") {
  const node = await join({ address: job.address, embedded: false });
  const stage = job.role === "hand-transform" ? await handTransform(node) : await handSink(node);
  const stop = (): void => void stage.close().then(() => node.close()).then(() => process.exit(0));
  if (job.role === "hand-transform") {
    parentPort?.postMessage("ready");
    parentPort?.on("message", stop);
  } else {
    process.stdout.write("ready\n");
    process.on("disconnect", stop); // the driver is gone or done
  }
}
