/**
 * The benchmark CLI: `node dist/bench/main.js [rows...] [--quick] [--json] [--out DIR] [--pin none|same|cross]`.
 * Runs the cases of the chosen rows (all rows by default), shows progress on stderr, prints a
 * Markdown table (or the JSON report with --json) on stdout and always writes both to
 * `bench/results/<timestamp>.{json,md}` (or DIR). Exits 1 if a case failed, 2 on bad usage.
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import "./cases/index.js";
import { PINNINGS, pinSuite } from "./affinity.js";
import { registeredCases } from "./harness.js";
import { describeMachine } from "./machine.js";
import { killAllPeers } from "./peer.js";
import { createProgress } from "./progress.js";
import { methodText, rowsOf, toMarkdown, writeReport, type Report } from "./report.js";
import { allRows } from "./rows.js";
import { orderCases, runAll, settingsFor, type CaseResult } from "./runner.js";
import { removeTempPaths } from "./scope.js";

const USAGE = "usage: node dist/bench/main.js [rows...] [--quick] [--json] [--out DIR] [--pin none|same|cross]";

/** Runs the CLI; resolves with the exit code. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      out: { type: "string" },
      pin: { type: "string", default: "none" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const all = registeredCases();
  const known = allRows()
    .map((r) => r.id)
    .filter((id) => all.some((c) => c.row === id));
  for (const c of all) if (!known.includes(c.row)) known.push(c.row);
  if (values.help) {
    process.stdout.write(`${USAGE}\nrows: ${known.join(", ")}\n`);
    return 0;
  }
  const unknown = positionals.filter((p) => !known.includes(p));
  if (unknown.length > 0) {
    process.stderr.write(`unknown row(s): ${unknown.join(", ")}; rows: ${known.join(", ")}\n${USAGE}\n`);
    return 2;
  }
  const rowOrder = positionals.length > 0 ? known.filter((id) => positionals.includes(id)) : known;
  const pinning = PINNINGS.find((p) => p === values.pin);
  if (pinning === undefined) {
    process.stderr.write(`--pin must be one of ${PINNINGS.join(", ")}\n${USAGE}\n`);
    return 2;
  }
  pinSuite(pinning);
  const quick = values.quick;
  const settings = settingsFor(quick, pinning);
  const cases = orderCases(all, rowOrder).filter((c) => !quick || c.quick !== false);

  const startedAt = new Date().toISOString();
  const machine = describeMachine();
  const progress = createProgress();
  let results: CaseResult[];
  try {
    results = await runAll(cases, settings, progress);
  } finally {
    progress.stop();
  }
  const report: Report = {
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    argv,
    machine,
    settings,
    method: methodText(settings),
    rows: rowsOf(rowOrder),
    results,
  };
  const dir = values.out ?? fileURLToPath(new URL("../../bench/results/", import.meta.url));
  const files = writeReport(dir, report);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : toMarkdown(report));
  process.stderr.write(`results: ${files.markdown} and ${files.json}\n`);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) process.stderr.write(`${failed.length} case(s) failed\n`);
  return failed.length > 0 ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllPeers();
    removeTempPaths();
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    killAllPeers();
    process.exitCode = code;
    // Nothing should keep the loop alive now; if something does, say so and leave anyway.
    setTimeout(() => {
      process.stderr.write("bench: handles still open after the run; exiting\n");
      process.exit(code);
    }, 3000).unref();
  },
  (err: unknown) => {
    killAllPeers();
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
