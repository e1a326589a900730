/**
 * The subscriber process of the paced row. Usage: `paced-peer.js <graph-address> <topic> <collect-ms> [true|false]`.
 * Subscribes to the topic on its main thread and in a worker thread of its own
 * (`paced-worker.js`), both with default options but `anticipate` (the last argument, default
 * false), and answers:
 * - `begin(first)`: both record the messages from sequence number `first` on; the CPU meter starts;
 * - `usage()`: the CPU use of this process (every thread) since `begin`, % of one core;
 * - `collect(last)`: once both have `last`, `{ process, worker, cpu }`: their one-way latencies
 *   (µs, Float64Array) and the CPU use since `begin`.
 * @module
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connect } from "../../src/index.js";
import { Arrivals, record, type PacedMessage } from "./paced-arrivals.js";
import { cpuMark, cpuPercentSince, serve } from "./runtime.js";

const [address, topic, collect, anticipateArg] = process.argv.slice(2);
const collectMs = Number(collect);
if (!address || !topic || !(collectMs > 0)) throw new Error("usage: paced-peer.js <graph-address> <topic> <collect-ms> [anticipate: true|false]");
const anticipate = anticipateArg === "true";

const node = await connect({ address, embedded: false });
const sub = await node.subscriber<PacedMessage>(topic, { anticipate });
const arrivals = new Arrivals();
record(sub, arrivals).catch((err: unknown) => {
  process.stderr.write(`paced-peer: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

const worker = new Worker(new URL("./paced-worker.js", import.meta.url), { workerData: { address, topic, collectMs, anticipate } });
worker.on("error", (err) => {
  process.stderr.write(`paced-peer: worker: ${err.message}\n`);
  process.exit(1);
});
await once(worker, "message");

let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
worker.on("message", (m: { id: number; result?: unknown; error?: string }) => {
  const p = pending.get(m.id);
  pending.delete(m.id);
  if (m.error !== undefined) p?.reject(new Error(`worker: ${m.error}`));
  else p?.resolve(m.result);
});

/** Asks the worker; resolves with its answer. */
function ask<T>(op: string, arg: number): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: (v) => resolve(v as T), reject });
    worker.postMessage({ id, op, arg });
  });
}

let mark = cpuMark();
serve(
  async (op, args) => {
    const n = Number(args);
    if (op === "begin") {
      arrivals.begin(n);
      await ask("begin", n);
      mark = cpuMark();
      return null;
    }
    if (op === "usage") return cpuPercentSince(mark);
    if (op === "collect") {
      const [mine, theirs] = await Promise.all([arrivals.collect(n, collectMs), ask<Float64Array>("collect", n)]);
      return { process: mine, worker: theirs, cpu: cpuPercentSince(mark), checksum: arrivals.checksum };
    }
    throw new Error(`unknown op ${op}`);
  },
  {},
  () => void node.close(),
);
