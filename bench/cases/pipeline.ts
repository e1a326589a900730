/**
 * The "pipeline" row: what the pipeline API (`plexus/pipeline`) costs over publishers and
 * subscribers written by hand. The same three stages — the source in this process's main
 * thread, a transform (republishes each message) in a worker thread of it, a sink in another
 * process — built with the pipeline API and by hand (bench/procs/pipeline-stages.ts); the sink
 * answers the messages that ask for it on an echo topic. Throughput at 64 B and 1 MiB (the last
 * message of a repetition asks for an answer: it arrives after all the others), the round trip
 * of 64 B (every message answered, one in flight), the same 64 B stream with the three stages in
 * this thread (the API's own cost, without wake-ups), and the startup of the pipeline with each
 * stage in a process of its own.
 * @module
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Publisher, Subscriber } from "../../src/index.js";
import { start, type Runner } from "../../src/pipeline/index.js";
import { registerCase, type CaseContext, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import Stages, { TOPICS, handSink, handTransform, type Echo, type Msg } from "../procs/pipeline-stages.js";
import { registerRow } from "../rows.js";
import { graph } from "./plexus-pubsub.js";

const PIPELINE = "pipeline API";
const HAND = "hand-written pub/sub";
const MODULE = new URL("../procs/pipeline-stages.js", import.meta.url);

/** Three stages, fed by `send`, answering on `echoes`. */
class Chain implements Resource {
  private seq = 0;
  private constructor(
    readonly send: (m: Msg) => Promise<void>,
    private readonly echoes: Subscriber<Echo>,
    private readonly scope: CaseScope,
  ) {}

  /** The pipeline version, its stages placed as declared (or all in this thread). */
  static async pipeline(scope: CaseScope, single: boolean): Promise<Chain> {
    const { node, address } = await graph(scope);
    const echoes = await node.subscriber<Echo>(TOPICS.pipeline.echo, { queue: 64 });
    const sys = new Stages();
    const runner: Runner = await start(sys, { address, module: MODULE, signals: false, single, name: "Stages" });
    scope.defer(() => runner.stop());
    while (echoes.publishers.length === 0) await new Promise((r) => setTimeout(r, 2));
    return new Chain((m) => sys.SOURCE.OUTPUT.publish(m), echoes, scope);
  }

  /** The hand-written version: transform in a worker, sink in a process (or both in this thread). */
  static async hand(scope: CaseScope, single: boolean): Promise<Chain> {
    const { node, address } = await graph(scope);
    const echoes = await node.subscriber<Echo>(TOPICS.hand.echo, { queue: 64 });
    if (single) {
      const stages = [await handTransform(node), await handSink(node)];
      scope.defer(async () => {
        for (const s of stages) await s.close();
      });
    } else {
      const file = fileURLToPath(MODULE);
      const worker = new Worker(file, { workerData: { role: "hand-transform", address } });
      scope.defer(async () => {
        worker.postMessage("stop");
        await Promise.race([once(worker, "exit"), new Promise((r) => setTimeout(r, 2000))]);
        await worker.terminate();
      });
      await once(worker, "message");
      const sink = fork(file, [JSON.stringify({ role: "hand-sink", address })], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
      scope.defer(() => void sink.kill("SIGKILL"));
      await once(createInterface({ input: sink.stdout! }), "line");
    }
    const pub: Publisher<Msg> = await node.publisher<Msg>(TOPICS.hand.a);
    await pub.waitForSubscribers(1, { signal: scope.signal });
    while (echoes.publishers.length === 0) await new Promise((r) => setTimeout(r, 2));
    return new Chain((m) => pub.publish(m), echoes, scope);
  }

  /** Waits for the answer to `seq`. */
  private async echo(seq: number): Promise<void> {
    for (;;) {
      const s = await this.echoes.receive({ timeout: 10_000, signal: this.scope.signal });
      if (s === null) throw new Error("the echo subscriber closed");
      const got = s.value.seq;
      s.release();
      if (got === seq) return;
    }
  }

  /** One message there and its answer back. */
  async roundTrip(data: Uint8Array): Promise<void> {
    const seq = this.seq++;
    await this.send({ seq, data, echo: true });
    await this.echo(seq);
  }

  /** `count` messages back to back, the last one answered. */
  async stream(ctx: CaseContext, data: Uint8Array): Promise<ThroughputSample> {
    const t0 = now();
    for (let i = 0; i < ctx.count; i++) await this.send({ seq: this.seq++, data, echo: i === ctx.count - 1 });
    await this.echo(this.seq - 1);
    return streamed(ctx.count, data.length, t0);
  }

  close(): void {}
}

registerRow({
  id: "pipeline",
  title: "pipeline: the pipeline API against publishers and subscribers written by hand",
  method:
    "Three stages: the source is this process's main thread, a transform (republishes each message) runs in a worker thread of it, a sink in another " +
    "process; written with plexus/pipeline (the source unit's OUTPUT.publish, handlers for the transform and the sink, the runner placing them) and by hand " +
    "(node.publisher / node.subscriber / forEach in a worker and a forked process), over the same kind of GraphServer, their repetitions alternating. " +
    "Every input blocks with a queue of 64. The sink answers the messages that ask for it on an echo topic this process reads: a stream's last message " +
    "(it arrives after all the others: time = first publish to that answer), every message of the round trip (one in flight). " +
    "'one thread': the three stages in this thread (single: true; by hand, the same ports on one node), the API's own cost without wake-ups. " +
    "startup: start() of the pipeline with each stage in a process of its own until every unit is initialized, one per repetition (then stopped).",
});

const variants = [
  { variant: "64 B", bytes: 64, single: false, kind: "throughput" },
  { variant: "1 MiB", bytes: 1 << 20, single: false, kind: "throughput" },
  { variant: "64 B rtt", bytes: 64, single: false, kind: "latency" },
  { variant: "64 B, one thread", bytes: 64, single: true, kind: "throughput" },
] as const;

for (const v of variants) {
  for (const [name, open] of [
    [PIPELINE, Chain.pipeline],
    [HAND, Chain.hand],
  ] as const) {
    registerCase({
      row: "pipeline",
      name,
      variant: v.variant,
      kind: v.kind,
      ratioTo: name === PIPELINE ? HAND : undefined,
      messageBytes: v.bytes,
      quick: v.variant !== "64 B, one thread",
      async run(ctx) {
        const chain = await ctx.keep("chain", (scope) => open(scope, v.single));
        const data = new Uint8Array(v.bytes).fill(7);
        return v.kind === "latency" ? roundTrips(ctx, () => chain.roundTrip(data)) : chain.stream(ctx, data);
      },
    });
  }
}

registerCase({
  row: "pipeline",
  name: PIPELINE,
  variant: "startup, 3 processes",
  kind: "latency",
  quick: false,
  method: "one start() per repetition: its time is the repetition's only sample",
  async run(ctx) {
    const { address } = await ctx.keep("graph", async (scope) => ({ ...(await graph(scope)), close() {} }));
    const t0 = now();
    const runner = await start(new Stages(), {
      address,
      module: MODULE,
      signals: false,
      name: "Stages",
      placement: { "Stages/SOURCE": "process", "Stages/TRANSFORM": "process", "Stages/SINK": "process" },
    });
    const us = (now() - t0) * 1000;
    await runner.stop();
    await runner.done;
    return { kind: "latency", rttUs: [us] };
  },
});
