/**
 * The pieces of the bench's paced row that hold logic, without processes or timing: cases
 * sharing one resource and one run per repetition, CPU shares carried from a sample to the
 * tables, and a subscriber's record of one-way latencies.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuPercents, percent, summaryLine } from "../bench/format.js";
import type { BenchCase, LatencySample } from "../bench/harness.js";
import { Arrivals } from "../bench/procs/paced-arrivals.js";
import { toMarkdown, type Report } from "../bench/report.js";
import { runAll, type Settings } from "../bench/runner.js";
import { shared } from "../bench/shared.js";
import { medianCpuPercent } from "../bench/stats.js";

const SETTINGS: Settings = { quick: false, pinning: "none", repetitions: 3, repetitionMs: 5, warmupMs: 1, hardLimitMs: 5000 };

test("shared: the cases of a variant open one resource, run each repetition once and close it after the last of them", async () => {
  const log: string[] = [];
  let runs = 0;
  const subscriberCase = (who: "a" | "b"): BenchCase => ({
    row: "t",
    name: who,
    variant: "v",
    kind: "latency",
    async run(ctx): Promise<LatencySample> {
      const s = await shared(ctx, "t v", async () => {
        log.push("open");
        return { close: () => void log.push("close") };
      });
      const got = await s.repetition(ctx, async () => {
        runs += 1;
        log.push(`run ${ctx.phase} ${ctx.repetition} by ${who}`);
        return { a: [1000 * runs], b: [10_000 * runs], cpu: { publisher: runs } };
      });
      return { kind: "latency", rttUs: got[who], cpuPercent: got.cpu };
    },
  });
  const results = await runAll([subscriberCase("a"), subscriberCase("b")], SETTINGS);
  assert.deepEqual(log, ["open", "run warmup 0 by a", "run measure 0 by a", "run measure 1 by a", "run measure 2 by a", "close"]);
  const [a, b] = results;
  assert.ok(a?.kind === "latency" && b?.kind === "latency");
  assert.deepEqual(
    a.repetitions.map((r) => r.p50),
    [2000, 3000, 4000],
  );
  assert.deepEqual(
    b.repetitions.map((r) => r.p50),
    [20_000, 30_000, 40_000],
    "b takes its part of the runs a started",
  );
  assert.deepEqual(b.median?.cpuPercent, { publisher: 3 }, "the median carries the CPU shares");
});

test("shared: a resource that fails to open fails every case and is not kept", async () => {
  let opens = 0;
  const failing = (name: string): BenchCase => ({
    row: "t",
    name,
    variant: "w",
    kind: "latency",
    async run(ctx): Promise<LatencySample> {
      await shared(ctx, "t w", () => {
        opens += 1;
        return Promise.reject(new Error("no peer"));
      });
      return { kind: "latency", rttUs: [1] };
    },
  });
  const results = await runAll([failing("a"), failing("b")], SETTINGS);
  assert.deepEqual(
    results.map((r) => [r.ok, r.error]),
    [
      [false, "no peer"],
      [false, "no peer"],
    ],
  );
  assert.equal(opens, 2, "the second case tries again: nothing failed was kept");
});

test("stats: the CPU shares printed are each one's median over the repetitions, not those of the repetition of median p50", () => {
  const reps = [
    { cpuPercent: { publisher: 1, subscriber: 0.3 } },
    { cpuPercent: { publisher: 2, subscriber: 7.3 } }, // a pause of the subscriber process
    { cpuPercent: { publisher: 3, subscriber: 0.2 } },
    {},
  ];
  assert.deepEqual(medianCpuPercent(reps), { publisher: 2, subscriber: 0.3 });
  assert.equal(medianCpuPercent([{}, {}]), undefined);
});

test("format: CPU shares with 2-3 significant digits, in their order", () => {
  assert.equal(percent(0.1234), "0.12");
  assert.equal(percent(3.14), "3.1");
  assert.equal(percent(57.4), "57");
  assert.equal(percent(123.6), "124");
  assert.equal(cpuPercents({ publisher: 3.14, subscriber: 0.5 }), "publisher 3.1 %, subscriber 0.50 %");
  assert.equal(cpuPercents(undefined), "-");
  assert.equal(cpuPercents({}), "-");
});

test("report: a latency table gets a CPU column only when a case reports CPU shares", async () => {
  const plain: BenchCase = { row: "p", name: "plain", variant: "v", kind: "latency", run: () => Promise.resolve({ kind: "latency", rttUs: [5, 6, 7] }) };
  const withCpu: BenchCase = {
    ...plain,
    name: "with cpu",
    run: () => Promise.resolve({ kind: "latency", rttUs: [5, 6, 7], cpuPercent: { publisher: 2.5, subscriber: 12.25 } }),
  };
  const markdown = async (cases: BenchCase[]): Promise<string> => {
    const results = await runAll(cases, { ...SETTINGS, repetitions: 1 });
    const report: Report = {
      version: 1,
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:00:01.000Z",
      argv: [],
      machine: { cpu: "test", cores: 2, node: process.version, kernel: "test", arch: "x64", memoryGiB: 1, load1: 0 },
      settings: SETTINGS,
      method: "",
      rows: [{ id: "p", title: "p", method: "" }],
      results,
    };
    return toMarkdown(report);
  };
  const without = await markdown([plain]);
  assert.doesNotMatch(without, /CPU/);
  const both = await markdown([plain, withCpu]);
  assert.match(both, /\| round trips\/rep \| CPU % of one core \(median\) \|/);
  assert.match(both, /\| plain \| v \|.*\| 3 \| - \|/);
  assert.match(both, /\| with cpu \| v \|.*\| 3 \| publisher 2.5 %, subscriber 12 % \|/);
  const results = await runAll([withCpu], { ...SETTINGS, repetitions: 1 });
  assert.match(summaryLine(results[0] as (typeof results)[0]), /p50 6\.00 µs, p99 7\.00 µs, CPU publisher 2\.5 %, subscriber 12 %/);
});

test("arrivals: records from the first sequence number of a repetition, hands them over once the last is in", async () => {
  const a = new Arrivals();
  a.arrived(1, 99); // before the repetition: not recorded
  a.begin(2);
  const collected = a.collect(4, 1000);
  a.arrived(2, 10);
  a.arrived(3, 11);
  a.arrived(4, 12);
  assert.deepEqual(Array.from(await collected), [10, 11, 12]);
  a.begin(5);
  a.arrived(5, 13);
  assert.deepEqual(Array.from(await a.collect(5, 1000)), [13], "already there");
});

test("arrivals: a missing message or a late last one is an error", async () => {
  const a = new Arrivals();
  a.begin(1);
  a.arrived(1, 10);
  a.arrived(3, 10);
  await assert.rejects(a.collect(3, 1000), /2 of messages 1\.\.3 arrived/);
  a.begin(4);
  await assert.rejects(a.collect(5, 20), /message 5 not there within 20 ms \(last: 3\)/);
});
