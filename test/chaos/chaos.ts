// `npm run chaos`: random kill -9 of the participants of every pattern (pub/sub, rpc, queues in
// both modes with fresh and taken-over identities, over shm, TCP, TLS and MQTT), then verdicts.
// Options: --kills N (per pattern, default 200), --only a,b (substrings of pattern names),
// --seed N, --rate N (operations/s per sender, default 400), --min-gap/--max-gap ms (before a
// kill, default 50/400), --restart-delay ms (most, default 200), --out file.json.
import { parseArgs } from "node:util";
import { runChaos, type ChaosReport } from "./chaos-run.js";
import { defaultOut, secs, table, writeReport } from "./report.js";
import { freshSeed } from "./rng.js";

const { values } = parseArgs({
  options: {
    kills: { type: "string", default: "200" },
    only: { type: "string", default: "" },
    seed: { type: "string" },
    rate: { type: "string", default: "400" },
    "min-gap": { type: "string", default: "50" },
    "max-gap": { type: "string", default: "400" },
    "restart-delay": { type: "string", default: "200" },
    out: { type: "string" },
  },
});

/** The summary table of a chaos report. */
export function summary(r: ChaosReport): string {
  const rows: (string | number)[][] = [["pattern", "kills", "resolved", "failed", "received", "torn", "wrong", "lost", "dup", "gaps", "hangs", "leaked", "zombies", "secs", "verdict"]];
  for (const p of r.patterns) {
    const hangs = p.timeouts + p.stalls.length + p.unsettled.length + p.unclosed.length + p.stuckStarts;
    rows.push([p.pattern, p.kills, p.resolved, p.failed, p.received, p.torn, p.wrong, p.lost, p.duplicates, p.gaps, hangs, p.leakedSegments.length + p.leftAfterSweep.length, p.zombies, secs(p.durationMs), p.problems.length ? "FAIL" : "ok"]);
  }
  return table(rows);
}

const report = await runChaos({
  only: values.only ? values.only.split(",") : [],
  kills: Number(values.kills),
  seed: values.seed ? Number(values.seed) : freshSeed(),
  rate: Number(values.rate),
  minGapMs: Number(values["min-gap"]),
  maxGapMs: Number(values["max-gap"]),
  maxRestartDelayMs: Number(values["restart-delay"]),
  log: (s) => console.log(s),
});
const out = values.out ?? defaultOut("chaos");
writeReport(out, report);
console.log(`\n${summary(report)}\n\nseed ${report.config.seed}, ${secs(report.durationMs)} s; report: ${out}`);
for (const p of report.patterns) for (const e of p.problems) console.log(`${p.pattern}: ${e}`);
process.exit(report.passed ? 0 : 1);
