// `npm run fuzz`: mutation fuzzing of every listening port (GraphServer, tcp transport, rpc TCP,
// rpc and transport shm handshake sockets, queue server) from captured valid traffic, with
// honest clients working beside. Options: --inputs N (default 1000000), --concurrency N
// (default 16), --seed N, --settle ms (default 7000), --out file.json, --heap-snapshots DIR
// (heap snapshots of the target before the first hostile byte and at the end).
import { parseArgs } from "node:util";
import { runFuzz, type FuzzReport } from "./fuzz-run.js";
import { defaultOut, secs, table, writeReport } from "./report.js";
import { freshSeed } from "./rng.js";

const MiB = 1 << 20;
const { values } = parseArgs({
  options: {
    inputs: { type: "string", default: "1000000" },
    concurrency: { type: "string", default: "16" },
    seed: { type: "string" },
    settle: { type: "string", default: "7000" },
    out: { type: "string" },
    "heap-snapshots": { type: "string" },
  },
});

function summary(r: FuzzReport): string {
  const rows: (string | number)[][] = [["target", "inputs", "captures"]];
  for (const [t, n] of Object.entries(r.perTarget)) rows.push([t, n, r.captures[t] ?? 0]);
  const m = r.memory;
  const mb = (x: number | undefined): string => (x === undefined ? "-" : (x / MiB).toFixed(1));
  const rows2: (string | number)[][] = [
    ["", "before", "after"],
    ["arrayBuffers MiB (after GC)", mb(m.before?.arrayBuffers), mb(m.after?.arrayBuffers)],
    ["heapUsed MiB (after GC)", mb(m.before?.heapUsed), mb(m.after?.heapUsed)],
    ["rss MiB", mb(m.before?.rss), mb(m.after?.rss)],
    ["descriptors", m.fdsBefore ?? "-", m.fdsAfter ?? "-"],
  ];
  return `${table(rows)}\n\n${table([["mutator", "inputs"], ...Object.entries(r.perMutator)])}\n\n${table(rows2)}\n\n` +
    `inputs ${r.inputs} (${(r.bytes / MiB).toFixed(1)} MiB), closed by the target ${r.closedByTarget}, by the fuzzer ${r.closedByFuzzer}; ` +
    `honest operations ${r.honest.operations}, failed ${r.honest.failed}; crashed: ${r.crashed ? "yes" : "no"}; ${secs(r.durationMs)} s; ${r.passed ? "PASSED" : "FAILED"}`;
}

const report = await runFuzz({
  inputs: Number(values.inputs),
  concurrency: Number(values.concurrency),
  seed: values.seed ? Number(values.seed) : freshSeed(),
  settleMs: Number(values.settle),
  maxArrayBuffersGrowth: 16 * MiB,
  maxHeapGrowth: 16 * MiB,
  maxFdGrowth: 8,
  heapSnapshots: values["heap-snapshots"],
  log: (s) => console.log(s),
});
const out = values.out ?? defaultOut("fuzz");
writeReport(out, report);
console.log(`\n${summary(report)}\nseed ${report.config.seed}; report: ${out}`);
for (const p of report.problems) console.log(`problem: ${p}`);
process.exit(report.passed ? 0 : 1);
