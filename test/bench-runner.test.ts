/**
 * The benchmark runner with fake cases (no processes, no timing asserted): the cases of one row
 * and size warm up, then their repetitions alternate; a case that fails lets its resources go at
 * once and the others carry on; ratios are medians of per-repetition ratios.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BenchCase, CaseContext, Sample } from "../bench/harness.js";
import { computeRatios, runAll, type CaseResult, type Settings } from "../bench/runner.js";

const SETTINGS: Settings = { quick: false, pinning: "none", repetitions: 3, repetitionMs: 5, warmupMs: 1, hardLimitMs: 5000 };

/** A throughput sample at `rate` messages per second. */
const at = (rate: number): Sample => ({ kind: "throughput", messages: 1000, bytes: 1000, seconds: 1000 / rate });

function fake(log: string[], name: string, rates: number[], opts: { ratioTo?: string; failAt?: number } = {}): BenchCase {
  return {
    row: "t",
    name,
    variant: "v",
    kind: "throughput",
    ...(opts.ratioTo === undefined ? {} : { ratioTo: opts.ratioTo }),
    async run(ctx: CaseContext): Promise<Sample> {
      await ctx.keep("res", async () => ({ close: () => void log.push(`${name} closed`) }));
      log.push(`${name} ${ctx.phase} ${ctx.repetition}`);
      if (ctx.phase === "measure" && ctx.repetition === opts.failAt) throw new Error(`${name} broke`);
      return at(ctx.phase === "warmup" ? 1 : (rates[ctx.repetition] as number));
    },
  };
}

test("runner: a row's cases alternate repetitions; a failing case is freed at once; ratios pair repetitions", async () => {
  const log: string[] = [];
  const cases = [
    fake(log, "base", [100, 200, 400]),
    fake(log, "mine", [150, 220, 1000], { ratioTo: "base" }),
    fake(log, "flaky", [1, 1, 1], { ratioTo: "base", failAt: 1 }),
  ];
  const started: number[] = [];
  const finished: number[] = [];
  const results = await runAll(cases, SETTINGS, { caseStarted: (_c, i) => started.push(i), caseFinished: (_r, i) => finished.push(i) });
  assert.deepEqual(log, [
    "base warmup 0",
    "mine warmup 0",
    "flaky warmup 0",
    "base measure 0",
    "mine measure 0",
    "flaky measure 0",
    "base measure 1",
    "mine measure 1",
    "flaky measure 1",
    "flaky closed", // right away, before the others' third repetition
    "base measure 2",
    "mine measure 2",
    "base closed",
    "mine closed",
  ]);
  assert.deepEqual(started, [0, 1, 2]);
  assert.deepEqual(finished, [0, 1, 2]);
  const [base, mine, flaky] = results as [CaseResult, CaseResult, CaseResult];
  assert.equal(base.ok, true);
  assert.equal(flaky.ok, false);
  assert.match(flaky.error ?? "", /flaky broke/);
  // Per repetition 1.5, 1.1, 2.5: the median is 1.5 (the ratio of the medians would be 220/200).
  assert.equal(mine.ratios.length, 1);
  assert.ok(Math.abs((mine.ratios[0]?.value as number) - 1.5) < 1e-9, `ratio ${mine.ratios[0]?.value}`);
  assert.deepEqual(flaky.ratios, [{ to: "base", value: null }], "a failed case has no ratio");
});

test("runner: ratios fall back to the ratio of medians when repetitions cannot be paired", () => {
  const mk = (name: string, rates: number[], ratioTo?: string): { c: BenchCase; r: CaseResult } => {
    const c: BenchCase = { row: "t", name, variant: "v", kind: "throughput", ...(ratioTo === undefined ? {} : { ratioTo }), run: () => Promise.resolve(at(1)) };
    const reps = rates.map((x) => ({ messages: 1000, bytes: 1000, seconds: 1000 / x, messagesPerSecond: x, gigabytesPerSecond: x / 1e6 }));
    const sorted = [...reps].sort((a, b) => a.messagesPerSecond - b.messagesPerSecond);
    const r: CaseResult = {
      row: "t",
      name,
      variant: "v",
      ok: true,
      warmups: 1,
      wallSeconds: 0,
      ratios: [],
      cleanupErrors: [],
      kind: "throughput",
      repetitions: reps,
      median: sorted[(sorted.length - 1) >> 1],
      spread: { messagesPerSecond: { min: 0, max: 0 }, gigabytesPerSecond: { min: 0, max: 0 } },
    };
    return { c, r };
  };
  // Two repetitions against three: medians 300 / 200.
  const base = mk("base", [100, 200, 400]);
  const short = mk("short", [300, 500], "base");
  const even = mk("even", [200, 400, 800], "base"); // paired: 2, 2, 2
  const all = [base, short, even];
  const results = all.map((x) => x.r);
  computeRatios(
    all.map((x) => x.c),
    results,
  );
  assert.equal(short.r.ratios[0]?.value, 300 / 200);
  assert.equal(even.r.ratios[0]?.value, 2);
});

test("runner: a case's own warm-up length runs as many warm-up runs as it takes, in a full run only", async () => {
  const tenMs = (): Sample => ({ kind: "throughput", messages: 100, bytes: 100, seconds: 0.01 });
  const make = (name: string, warmupMs?: number): BenchCase => ({
    row: "t",
    name,
    variant: "v",
    kind: "throughput",
    ...(warmupMs === undefined ? {} : { warmupMs }),
    run: async () => tenMs(),
  });
  const full = await runAll([make("default"), make("long", 100)], SETTINGS);
  assert.deepEqual(
    full.map((r) => [r.name, r.warmups]),
    [
      ["default", 1],
      ["long", 10],
    ],
    "10 ms per run: 1 run covers the runner's 1 ms, 10 runs the case's 100 ms",
  );
  const quick = await runAll([make("long", 100)], { ...SETTINGS, quick: true });
  assert.equal(quick[0]?.warmups, 1, "--quick keeps the runner's warm-up");
});
