/**
 * Smoke test of the benchmark harness: runs the quick lat row as a child process and checks the
 * shape of its JSON report (rows, cases, positive numbers, ratios, files written). Speed is not
 * asserted.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../bench/main.js", import.meta.url));
const TIMEOUT_MS = 60_000;

interface RunResult {
  pid: number | undefined;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bench CLI; kills it if it outlives the timeout. */
function runBench(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`bench did not finish within ${TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, TIMEOUT_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ pid: child.pid, code, stdout, stderr });
    });
  });
}

interface LatencyCase {
  row: string;
  name: string;
  variant: string;
  kind: string;
  ok: boolean;
  error?: string;
  repetitions: unknown[];
  median?: { p50: number; p99: number; count: number };
  ratios: { to: string; value: number | null }[];
}

test("bench: quick lat row produces a complete JSON report", { timeout: TIMEOUT_MS + 5000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "plexus-bench-test-"));
  try {
    const run = await runBench(["lat", "--quick", "--json", "--out", out]);
    assert.equal(run.code, 0, `exit code ${run.code}; stderr:\n${run.stderr}`);
    const report = JSON.parse(run.stdout) as { machine: { cores: number; node: string }; rows: { id: string }[]; results: LatencyCase[] };
    assert.deepEqual(
      report.rows.map((r) => r.id),
      ["lat"],
    );
    assert.ok(report.machine.cores > 0);
    assert.equal(report.machine.node, process.version);

    const expected = ["eventfd floor", "unix socket", "tcp loopback", "worker postMessage", "zeromq ipc PAIR"];
    for (const variant of ["64 B", "4 KiB"]) {
      for (const name of expected) {
        const r = report.results.find((x) => x.row === "lat" && x.name === name && x.variant === variant);
        assert.ok(r !== undefined, `missing case lat / ${name} / ${variant}`);
        assert.equal(r.ok, true, `${name} ${variant} failed: ${r.error}`);
        assert.equal(r.kind, "latency");
        assert.ok(r.repetitions.length >= 1);
        assert.ok(r.median !== undefined && r.median.p50 > 0 && r.median.p99 >= r.median.p50 && r.median.count > 0, `${name} ${variant}: bad median`);
        if (name !== "eventfd floor") {
          const ratio = r.ratios.find((x) => x.to === "eventfd floor");
          assert.ok(ratio !== undefined && ratio.value !== null && ratio.value > 0, `${name} ${variant}: no ratio to the floor`);
        }
      }
    }

    const leftovers = readdirSync(tmpdir()).filter((f) => f.startsWith(`plexus-bench-${run.pid}-`));
    assert.deepEqual(leftovers, [], "socket/ipc files left behind");

    const files = readdirSync(out);
    assert.equal(files.filter((f) => f.endsWith(".json")).length, 1);
    const md = files.find((f) => f.endsWith(".md"));
    assert.ok(md !== undefined);
    assert.match(readFileSync(join(out, md), "utf8"), /\| eventfd floor \| 64 B \|/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("bench: an unknown row is a usage error", async () => {
  const run = await runBench(["nope"]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /unknown row/);
});

test("bench: quick path row times every stage of the pub/sub path, each with a ratio to the ring", { timeout: TIMEOUT_MS + 5000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "plexus-bench-test-"));
  try {
    const run = await runBench(["path", "--quick", "--json", "--out", out]);
    assert.equal(run.code, 0, `exit code ${run.code}; stderr:\n${run.stderr}`);
    const report = JSON.parse(run.stdout) as { results: LatencyCase[] };
    const names = report.results.filter((r) => r.row === "path").map((r) => r.name);
    assert.deepEqual(names, ["ring write + read (64 B)", "encode", "decode", "publish + receive()", "publish + for await"]);
    for (const r of report.results) {
      assert.equal(r.ok, true, `${r.name} failed: ${r.error}`);
      assert.ok(r.median !== undefined && r.median.p50 > 0, `${r.name}: no time per operation`);
      if (r.name !== "ring write + read (64 B)") {
        const ratio = r.ratios.find((x) => x.to === "ring write + read (64 B)");
        assert.ok(ratio !== undefined && ratio.value !== null && ratio.value > 0, `${r.name}: no ratio to the ring`);
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
