/**
 * The results of a run as JSON (machine readable, complete) and as Markdown tables (one per
 * row, with the machine and the method).
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpuPercents, gbps, rate, ratio, us } from "./format.js";
import { machineLine, type Machine } from "./machine.js";
import { rowById, type Row } from "./rows.js";
import type { CaseResult, Settings } from "./runner.js";

/** Everything a run produced. */
export interface Report {
  /** Format version of this object. */
  version: 1;
  /** ISO time the run started. */
  startedAt: string;
  /** ISO time the run ended. */
  finishedAt: string;
  /** Command line arguments. */
  argv: string[];
  /** Where it ran. */
  machine: Machine;
  /** Repetitions and durations. */
  settings: Settings;
  /** The general method, one paragraph. */
  method: string;
  /** The rows run, with their methods. */
  rows: Row[];
  /** One result per case, in run order. */
  results: CaseResult[];
}

const PINNING_TEXT: Record<Settings["pinning"], string> = {
  none: "CPU placement left to the kernel (--pin none): a peer may land on the same core or the other one, which changes wake-up latency several times.",
  same: "Pinned (--pin same): the suite and every peer process on CPU 0.",
  cross: "Pinned (--pin cross): the suite on CPU 0, peer processes on CPU 1 (worker threads share CPU 0 with the suite).",
};

/** The general method paragraph for these settings. */
export function methodText(s: Settings): string {
  const reps = s.repetitions === 1 ? "1 repetition" : `${s.repetitions} repetitions`;
  return (
    `Every case: warm-up of about ${s.warmupMs} ms (at least one run, same processes as the measurement), then ${reps} of about ` +
    `${s.repetitionMs} ms each (iteration counts calibrated from the previous run; hard limit ${s.hardLimitMs / 1000} s per run). ` +
    `The cases of one row and size run side by side: all warm up, then their repetitions alternate (one of each, in turn), so a ` +
    `drift of the machine's speed moves a case and its baselines alike. The median repetition is reported; spread = min..max over ` +
    `the repetitions. A ratio is the median of the per-repetition ratios of a case to the named baseline of the same row and size ` +
    `(each repetition against the one run next to it): compare ratios, not absolute numbers. ` +
    PINNING_TEXT[s.pinning] +
    (s.quick ? " QUICK RUN (CI smoke): numbers are not meaningful." : "")
  );
}

function ratios(r: CaseResult): string {
  if (r.ratios.length === 0) return "-";
  const parts = r.ratios.map((x) => (x.value === null ? `n/a (${x.to})` : `${ratio(x.value)} ${x.to}`));
  return parts.join("; ");
}

function baselineNames(results: readonly CaseResult[]): Set<string> {
  const set = new Set<string>();
  for (const r of results) for (const x of r.ratios) set.add(`${r.row}\u0000${r.variant}\u0000${x.to}`);
  return set;
}

function latencyTable(results: readonly CaseResult[], baselines: Set<string>): string[] {
  const lines = ["| case | size | p50 µs | p90 µs | p99 µs | p50 min..max | p99 min..max | ratio (p50) | round trips/rep |", "| --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: |"];
  // CPU shares (cases that report them): the median of each over the repetitions.
  const withCpu = results.some((r) => r.kind === "latency" && r.repetitions.some((x) => x.cpuPercent !== undefined));
  if (withCpu) {
    lines[0] += " CPU % of one core (median) |";
    lines[1] += " --- |";
  }
  for (const r of results) {
    if (r.kind !== "latency") continue;
    if (!r.ok || r.median === undefined || r.spread === undefined) {
      lines.push(`| ${r.name} | ${r.variant} | FAILED | | | | | ${escape(r.error ?? "")} | |${withCpu ? " |" : ""}`);
      continue;
    }
    const isBase = baselines.has(`${r.row}\u0000${r.variant}\u0000${r.name}`);
    lines.push(
      `| ${r.name} | ${r.variant} | ${us(r.median.p50)} | ${us(r.median.p90)} | ${us(r.median.p99)} | ${us(r.spread.p50.min)}..${us(r.spread.p50.max)} | ` +
        `${us(r.spread.p99.min)}..${us(r.spread.p99.max)} | ${isBase && r.ratios.length === 0 ? "baseline" : ratios(r)} | ${r.median.count} |` +
        (withCpu ? ` ${cpuPercents(r.median.cpuPercent)} |` : ""),
    );
  }
  return lines;
}

function throughputTable(results: readonly CaseResult[], baselines: Set<string>): string[] {
  const lines = ["| case | size | msgs/s | GB/s | GB/s min..max | ratio (rate) | msgs/rep |", "| --- | --- | ---: | ---: | --- | --- | ---: |"];
  const peakRss = (r: CaseResult): number => (r.kind === "throughput" ? Math.max(...r.repetitions.map((x) => x.peakRssBytes ?? NaN)) : NaN);
  const cpu = (r: CaseResult): number => (r.kind === "throughput" ? (r.median?.cpuUsPerMessage ?? NaN) : NaN);
  const withRss = results.some((r) => Number.isFinite(peakRss(r)));
  const withCpu = results.some((r) => Number.isFinite(cpu(r)));
  const extra = (withCpu ? 1 : 0) + (withRss ? 1 : 0);
  if (withCpu) {
    lines[0] += " CPU µs/msg |";
    lines[1] += " ---: |";
  }
  if (withRss) {
    lines[0] += " peak RSS |";
    lines[1] += " ---: |";
  }
  for (const r of results) {
    if (r.kind !== "throughput") continue;
    if (!r.ok || r.median === undefined || r.spread === undefined) {
      lines.push(`| ${r.name} | ${r.variant} | FAILED | | | ${escape(r.error ?? "")} | |${" |".repeat(extra)}`);
      continue;
    }
    const isBase = baselines.has(`${r.row}\u0000${r.variant}\u0000${r.name}`);
    lines.push(
      `| ${r.name} | ${r.variant} | ${rate(r.median.messagesPerSecond)} | ${gbps(r.median.gigabytesPerSecond)} | ` +
        `${gbps(r.spread.gigabytesPerSecond.min)}..${gbps(r.spread.gigabytesPerSecond.max)} | ${isBase && r.ratios.length === 0 ? "baseline" : ratios(r)} | ${r.median.messages} |`,
    );
    if (withCpu) {
      const c = cpu(r);
      lines[lines.length - 1] += Number.isFinite(c) ? ` ${c < 10 ? c.toFixed(2) : c.toFixed(1)} |` : " - |";
    }
    if (withRss) {
      const rss = peakRss(r);
      lines[lines.length - 1] += Number.isFinite(rss) ? ` ${(rss / 2 ** 20).toFixed(0)} MiB |` : " - |";
    }
  }
  return lines;
}

function escape(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** The report as Markdown: title, machine, method, then one table per row with its method. */
export function toMarkdown(report: Report): string {
  const out: string[] = [
    `# Plexus benchmarks, ${report.startedAt}${report.settings.quick ? " (quick)" : ""}`,
    "",
    `**Machine:** ${machineLine(report.machine)}`,
    "",
    `**Method:** ${report.method}`,
  ];
  const baselines = baselineNames(report.results);
  for (const row of report.rows) {
    const results = report.results.filter((r) => r.row === row.id);
    if (results.length === 0) continue;
    out.push("", `## ${row.title}`, "");
    if (row.method !== "") out.push(row.method, "");
    const latency = results.filter((r) => r.kind === "latency");
    const throughput = results.filter((r) => r.kind === "throughput");
    if (latency.length > 0) out.push(...latencyTable(latency, baselines));
    if (latency.length > 0 && throughput.length > 0) out.push("");
    if (throughput.length > 0) out.push(...throughputTable(throughput, baselines));
    const notes = new Map<string, string>();
    for (const r of results) if (r.method !== undefined) notes.set(r.name, r.method);
    if (notes.size > 0) {
      out.push("");
      for (const [name, method] of notes) out.push(`- ${name}: ${method}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** The rows that appear in `results`, in the given order. */
export function rowsOf(order: readonly string[]): Row[] {
  return order.map((id) => rowById(id));
}

/**
 * Writes `<dir>/<stamp>.json` and `<dir>/<stamp>.md`; returns their paths.
 * @param dir - output directory (created if missing)
 * @param report - the report
 */
export function writeReport(dir: string, report: Report): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, "-");
  const json = join(dir, `${stamp}.json`);
  const markdown = join(dir, `${stamp}.md`);
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(markdown, toMarkdown(report));
  return { json, markdown };
}
