/**
 * `node dist/bench/pipeline.js [--quick]`: what the pipeline API costs over publishers and
 * subscribers written by hand. The same three stages — a source in the main thread, a transform
 * in a worker thread, a sink in a process — built with `plexus/pipeline` and by hand
 * (bench/procs/pipeline-stages.ts), their runs alternating, 3 repetitions each: throughput at
 * 64 B and 1 MiB (unpaced, every message through both hops), and one-way latency source -> sink
 * at 64 B paced at 1 kHz. Ratios are pipeline / hand (throughput) and hand / pipeline (latency),
 * per repetition, median: 1 means the same cost. Also the startup of the pipeline with each stage
 * in a process of its own (`start()` until every unit initialized). Not part of the suite's rows.
 * @module
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { GraphServer, connect as join } from "../src/index.js";
import { start } from "../src/pipeline/index.js";
import Stages, { SinkState, now, settle, type Msg, type Result } from "./procs/pipeline-stages.js";

const quick = process.argv.includes("--quick");
const module = new URL("./procs/pipeline-stages.js", import.meta.url);
const file = fileURLToPath(module);
const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
const address = `127.0.0.1:${server.address.port}`;
const node = await join({ address, embedded: false, name: "bench pipeline driver" });
const results = { pipeline: await node.subscriber<Result>("bench/pipeline/result"), hand: await node.subscriber<Result>("bench/hand/result") };

interface Variant {
  name: string;
  size: number;
  count: number;
  pace: number;
  /** Every stage in the main thread (the pure cost of the API: no wake-ups). */
  single?: boolean;
}

/** What one run measured: messages/s over both hops, one-way latency p50 and p99 (ms). */
interface Figures {
  rate: number;
  p50: number;
  p99: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;

async function result(kind: "pipeline" | "hand"): Promise<Figures> {
  const s = await results[kind].receive({ timeout: 120_000 });
  if (s === null) throw new Error("no result");
  const r = s.value;
  const figures = { rate: (r.count * 1000) / (r.last - r.first), p50: pct(r.latencies, 0.5), p99: pct(r.latencies, 0.99) };
  s.release();
  return figures;
}

async function pipelineRun(v: Variant): Promise<Figures> {
  const settings = { size: v.size, count: v.count, pace: v.pace };
  const runner = await start(new Stages(), { address, module, signals: false, single: v.single, settings: { "Stages/SOURCE": settings, "Stages/SINK": settings } });
  const f = await result("pipeline");
  await runner.stop();
  await runner.done;
  return f;
}

/** The hand-written transform and sink in this thread. */
async function handRunInThread(v: Variant): Promise<Figures> {
  // Publishers first: a subscriber made before a publisher of its own thread links to it over
  // shared memory instead of taking the value itself (the pipeline's hosts do the same).
  const pub = await node.publisher<Msg>("bench/hand/a");
  const b = await node.publisher<Msg>("bench/hand/b");
  const res = await node.publisher<Result>("bench/hand/result");
  const a = await node.subscriber<Msg>("bench/hand/a", { queue: 64 });
  const toSink = await node.subscriber<Msg>("bench/hand/b", { queue: 64 });
  const state = new SinkState(v.count);
  void a.forEach((s) => b.publish(s.value));
  void toSink.forEach((s) => {
    const r = state.take(s.value);
    if (r !== undefined) return res.publish(r);
  });
  const data = new Uint8Array(v.size).fill(7);
  await settle();
  for (let seq = 0; seq < v.count; seq++) await pub.publish({ seq, t: now(), data });
  const f = await result("hand");
  for (const port of [pub, a, b, toSink, res]) await port.close();
  return f;
}

async function handRun(v: Variant): Promise<Figures> {
  if (v.single === true) return handRunInThread(v);
  const worker = new Worker(file, { workerData: { role: "hand-transform", address, count: v.count } });
  await once(worker, "message");
  const sink = fork(file, [JSON.stringify({ role: "hand-sink", address, count: v.count })], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
  await once(createInterface({ input: sink.stdout! }), "line");
  const pub = await node.publisher<Msg>("bench/hand/a");
  await pub.waitForSubscribers(1, { timeout: 10_000 });
  const data = new Uint8Array(v.size).fill(7);
  await settle();
  for (let seq = 0; seq < v.count; seq++) {
    await pub.publish({ seq, t: now(), data });
    if (v.pace > 0) await new Promise((r) => setTimeout(r, v.pace));
  }
  const f = await result("hand");
  await pub.close();
  worker.postMessage("stop");
  await once(worker, "exit");
  if (sink.exitCode === null) await once(sink, "exit");
  return f;
}

const variants: Variant[] = [
  { name: "64 B, all in one thread", size: 64, count: quick ? 20_000 : 200_000, pace: 0, single: true },
  { name: "64 B", size: 64, count: quick ? 2000 : 20_000, pace: 0 },
  { name: "1 MiB", size: 1 << 20, count: quick ? 50 : 300, pace: 0 },
  { name: "64 B @1 kHz", size: 64, count: quick ? 100 : 500, pace: 1 },
];
const reps = quick ? 1 : 3;
console.log(`pipeline vs hand-written pub/sub: source (main thread) -> transform (worker) -> sink (process), or all in one thread; ${reps} repetition(s), alternating`);
console.log("| variant | pipeline msg/s | hand msg/s | throughput pipeline/hand | pipeline p50 / p99 ms | hand p50 / p99 ms | latency hand/pipeline (p50) |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const v of variants) {
  const pipe: Figures[] = [];
  const hand: Figures[] = [];
  for (let i = 0; i < reps; i++) {
    if (i % 2 === 0) {
      pipe.push(await pipelineRun(v));
      hand.push(await handRun(v));
    } else {
      hand.push(await handRun(v));
      pipe.push(await pipelineRun(v));
    }
  }
  const rate = median(pipe.map((p, i) => p.rate / (hand[i] as Figures).rate));
  const lat = median(pipe.map((p, i) => (hand[i] as Figures).p50 / p.p50));
  const m = (xs: Figures[], k: keyof Figures): number => median(xs.map((x) => x[k]));
  console.log(`| ${v.name} | ${m(pipe, "rate").toFixed(0)} | ${m(hand, "rate").toFixed(0)} | ${rate.toFixed(2)}x | ${m(pipe, "p50").toFixed(3)} / ${m(pipe, "p99").toFixed(3)} | ${m(hand, "p50").toFixed(3)} / ${m(hand, "p99").toFixed(3)} | ${lat.toFixed(2)}x |`);
}
const startups: number[] = [];
for (let i = 0; i < reps; i++) {
  const t = performance.now();
  const runner = await start(new Stages(), { address, module, signals: false, placement: { "Stages/SOURCE": "process", "Stages/TRANSFORM": "process", "Stages/SINK": "process" }, settings: { "Stages/SOURCE": { count: 1 }, "Stages/SINK": { count: 1 } } });
  startups.push(performance.now() - t);
  await runner.stop();
  await runner.done;
}
console.log(`startup of the pipeline with its 3 stages in 3 processes (start() until every unit initialized): median ${median(startups).toFixed(0)} ms (${startups.map((s) => s.toFixed(0)).join(", ")})`);
await node.close();
await server.close();
