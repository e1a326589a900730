// `npm run soak -- --minutes N`: mixed load (pub/sub over shm and TCP, rpc, a reliable queue)
// across real processes with RSS, heap and descriptor series per process. Options: --minutes N
// (default 10), --rate N (operations/s per sender, default 500), --sample ms (default 1000),
// --out file.json.
import { parseArgs } from "node:util";
import { runSoak } from "./soak-run.js";
import { defaultOut, secs, table, writeReport } from "./report.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "500" },
    sample: { type: "string", default: "1000" },
    out: { type: "string" },
  },
});
const minutes = Number(values.minutes);
const report = await runSoak({
  minutes,
  rate: Number(values.rate),
  sampleMs: Number(values.sample),
  warmupMs: Math.min(30000, minutes * 60000 * 0.1),
  maxRssGrowth: 0.25,
  maxFdGrowth: 2,
  log: (s) => console.log(s),
});
const mb = (x: number): string => (x / 1048576).toFixed(1);
const rows: (string | number)[][] = [["process", "samples", "RSS MiB first→last quarter", "heap MiB", "fds", "fds max"]];
for (const [name, p] of Object.entries(report.processes)) rows.push([name, p.samples, `${mb(p.rss[0])} → ${mb(p.rss[1])}`, `${mb(p.heapUsed[0])} → ${mb(p.heapUsed[1])}`, `${p.fds[0]} → ${p.fds[1]}`, p.fdsMax]);
const vrows: (string | number)[][] = [["pattern", "resolved", "failed", "received", "torn", "wrong", "lost", "dup", "gaps", "timeouts"]];
for (const [k, v] of Object.entries(report.verdicts)) vrows.push([k, v.resolved, v.failed, v.received, v.torn, v.wrong, v.lost, v.duplicates, v.gaps, v.timeouts]);
const out = values.out ?? defaultOut("soak");
writeReport(out, report);
console.log(`\n${table(rows)}\n\n${table(vrows)}\n\n${secs(report.durationMs)} s; ${report.passed ? "PASSED" : "FAILED"}; report: ${out}`);
for (const p of report.problems) console.log(`problem: ${p}`);
process.exit(report.passed ? 0 : 1);
