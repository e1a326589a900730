/** Summary tables on stdout and JSON reports on disk for the chaos tools. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The git-ignored folder reports go to unless `--out` says otherwise. */
export function defaultOut(tool: string): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  return join(root, "chaos-reports", `${tool}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
}

/** Writes `report` as JSON to `path` (folders made as needed). */
export function writeReport(path: string, report: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
}

/** A plain-text table: the first row is the header; numbers are right-aligned. */
export function table(rows: readonly (readonly (string | number)[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, String(c).length)));
  return rows
    .map((r, k) => {
      const line = r.map((c, i) => (typeof c === "number" ? String(c).padStart(widths[i] as number) : String(c).padEnd(widths[i] as number))).join("  ");
      return k === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
    })
    .join("\n");
}

/** Seconds with one decimal. */
export const secs = (ms: number): number => Math.round(ms / 100) / 10;
