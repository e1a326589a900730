/**
 * Number formatting for the tables and the progress lines.
 * @module
 */
import type { CaseResult } from "./runner.js";

/** Microseconds with 3 significant digits ("12.8", "105", "0.372"). */
export function us(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

/** A rate with a k/M suffix ("452 k", "11.3 M"). */
export function rate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toPrecision(3)} M`;
  if (v >= 1e3) return `${(v / 1e3).toPrecision(3)} k`;
  return v.toPrecision(3);
}

/** GB/s with 3 significant digits. */
export function gbps(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

/** A ratio ("4.71x"). */
export function ratio(v: number): string {
  if (v >= 10) return `${v.toFixed(1)}x`;
  return `${v >= 1 ? v.toFixed(2) : v.toPrecision(2)}x`;
}

/** A CPU share in % of one core, 2-3 significant digits ("0.42", "3.1", "57"). */
export function percent(v: number): string {
  if (v >= 10) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

/** CPU shares by process, in their order ("publisher 3.1 %, subscriber 0.42 %"); "-" when there are none. */
export function cpuPercents(cpu: Record<string, number> | undefined): string {
  const parts = Object.entries(cpu ?? {}).map(([what, v]) => `${what} ${percent(v)} %`);
  return parts.length > 0 ? parts.join(", ") : "-";
}

/** A one-line summary of a result for progress output. */
export function summaryLine(r: CaseResult): string {
  const head = `${r.row} | ${r.name} | ${r.variant}`;
  if (!r.ok || r.median === undefined) return `${head}: FAILED ${r.error ?? ""}`;
  const reps = `${r.repetitions.length} rep${r.repetitions.length === 1 ? "" : "s"}, ${r.wallSeconds.toFixed(1)} s`;
  if (r.kind === "latency") {
    const cpu = r.median.cpuPercent === undefined ? "" : `, CPU ${cpuPercents(r.median.cpuPercent)}`;
    return `${head}: p50 ${us(r.median.p50)} µs, p99 ${us(r.median.p99)} µs${cpu} (${reps})`;
  }
  return `${head}: ${rate(r.median.messagesPerSecond)} msg/s, ${gbps(r.median.gigabytesPerSecond)} GB/s (${reps})`;
}
