/**
 * Runs cases: warm-up, calibrated repetitions with a hard time limit each, median and spread,
 * then ratios against the named baselines of the same row and variant.
 * @module
 */
import type { Pinning } from "./affinity.js";
import { baselinesOf, type BenchCase, type CaseContext, type CaseScope, type Resource, type Sample } from "./harness.js";
import { asError, now } from "./measure.js";
import { Scope } from "./scope.js";
import { latencyStats, medianCpuPercent, medianIndex, spreadOf, throughputStats, type LatencyStats, type ThroughputStats } from "./stats.js";

/** How long runs take. */
export interface Settings {
  /** `--quick`. */
  quick: boolean;
  /** `--pin`: CPU placement of the suite and its peer processes. */
  pinning: Pinning;
  /** Measured repetitions per case. */
  repetitions: number;
  /** Target duration of one repetition, ms. */
  repetitionMs: number;
  /** Total warm-up time per case, ms (at least one warm-up run). */
  warmupMs: number;
  /** Hard limit of one run, ms (the first warm-up, which also starts the peers, gets {@link STARTUP_ALLOWANCE_MS} more). */
  hardLimitMs: number;
}

/** Full runs (3+ repetitions) or the CI smoke run. */
export function settingsFor(quick: boolean, pinning: Pinning = "none"): Settings {
  return quick
    ? { quick, pinning, repetitions: 1, repetitionMs: 60, warmupMs: 40, hardLimitMs: 10_000 }
    : { quick, pinning, repetitions: 5, repetitionMs: 400, warmupMs: 300, hardLimitMs: 15_000 };
}

/** Smallest and largest value over the repetitions. */
export interface MinMax {
  /** Smallest. */
  min: number;
  /** Largest. */
  max: number;
}

/** A ratio of a case to one of its baselines (median to median). */
export interface Ratio {
  /** Baseline case name. */
  to: string;
  /** Latency: p50 / baseline p50. Throughput: msgs/s / baseline msgs/s. Null if the baseline is missing or failed. */
  value: number | null;
}

interface ResultBase {
  /** Row id. */
  row: string;
  /** Case name. */
  name: string;
  /** Variant (size). */
  variant: string;
  /** Method line of the case, if any. */
  method?: string;
  /** Whether every run succeeded. */
  ok: boolean;
  /** Why the case failed. */
  error?: string;
  /** Warm-up runs done. */
  warmups: number;
  /** Time the case itself took (its start-up, warm-up, repetitions and cleanup, not its neighbours' turns), s. */
  wallSeconds: number;
  /** Ratios to the baselines. */
  ratios: Ratio[];
  /** Problems during cleanup (not failures). */
  cleanupErrors: string[];
}

/** Result of a latency case. */
export interface LatencyResult extends ResultBase {
  /** Discriminant. */
  kind: "latency";
  /** One entry per measured repetition. */
  repetitions: LatencyStats[];
  /** The median repetition (by p50). */
  median?: LatencyStats;
  /** Spread over repetitions. */
  spread?: { p50: MinMax; p99: MinMax };
}

/** Result of a throughput case. */
export interface ThroughputResult extends ResultBase {
  /** Discriminant. */
  kind: "throughput";
  /** One entry per measured repetition. */
  repetitions: ThroughputStats[];
  /** The median repetition (by msgs/s). */
  median?: ThroughputStats;
  /** Spread over repetitions. */
  spread?: { messagesPerSecond: MinMax; gigabytesPerSecond: MinMax };
}

/** Result of one case. */
export type CaseResult = LatencyResult | ThroughputResult;

/** Progress callbacks. */
export interface RunObserver {
  /** A case starts. */
  caseStarted?(c: BenchCase, index: number, total: number): void;
  /** A case ended (successfully or not). */
  caseFinished?(result: CaseResult, index: number, total: number): void;
}

const LATENCY_COUNT = { first: 100, min: 20, max: 200_000 };
const THROUGHPUT_COUNT = { min: 2, max: 50_000_000 };
/** Warm-up runs at most (more for a case whose warm-up is several repetitions long). */
const MAX_WARMUP_RUNS = 5;
/** Extra time the first run of a case gets for starting its peers. */
export const STARTUP_ALLOWANCE_MS = 15_000;

/** Iterations of the first warm-up run of a case. */
function firstCount(c: BenchCase): number {
  if (c.kind === "latency") return LATENCY_COUNT.first;
  const bytes = c.messageBytes ?? 4096;
  return Math.max(THROUGHPUT_COUNT.min, Math.min(4000, Math.floor((16 * 1024 * 1024) / bytes)));
}

/** Milliseconds one iteration took in `sample`. */
function perIterationMs(sample: Sample): number {
  if (sample.kind === "latency") {
    let sum = 0;
    for (let i = 0; i < sample.rttUs.length; i++) sum += sample.rttUs[i] as number;
    return sample.rttUs.length > 0 ? sum / sample.rttUs.length / 1000 : 1;
  }
  return sample.messages > 0 ? (sample.seconds * 1000) / sample.messages : 1;
}

/** Time the sample covers, ms. */
function sampleMs(sample: Sample): number {
  return sample.kind === "latency" ? perIterationMs(sample) * sample.rttUs.length : sample.seconds * 1000;
}

/** Iterations that should take about `targetMs`. */
function calibrate(c: BenchCase, last: Sample, targetMs: number): number {
  const limits = c.kind === "latency" ? LATENCY_COUNT : THROUGHPUT_COUNT;
  const n = Math.round(targetMs / Math.max(perIterationMs(last), 1e-6));
  return Math.max(limits.min, Math.min(limits.max, n));
}

/** Runs `c.run` once with a hard time limit; the case scope is failed on timeout. */
async function runOnce(c: BenchCase, scope: Scope, ctx: CaseContext, limitMs: number): Promise<Sample> {
  const work = c.run(ctx);
  work.catch(() => {}); // a run abandoned after a timeout may reject later
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`${ctx.phase} run ${ctx.repetition + 1} exceeded the hard limit of ${limitMs} ms`);
      scope.fail(e);
      reject(e);
    }, limitMs);
    onAbort = () => reject(asError(scope.signal.reason));
    if (scope.signal.aborted) onAbort();
    else scope.signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const sample = await Promise.race([work, guard]);
    if (sample.kind !== c.kind) throw new Error(`case returned a ${sample.kind} sample, expected ${c.kind}`);
    return sample;
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) scope.signal.removeEventListener("abort", onAbort);
  }
}

function contextFor(scope: Scope, settings: Settings, phase: CaseContext["phase"], repetition: number, count: number, targetMs: number): CaseContext {
  return {
    quick: settings.quick,
    phase,
    repetition,
    count,
    targetMs,
    deadline: now() + 2 * targetMs,
    signal: scope.signal,
    fail: (e: Error) => scope.fail(e),
    tempPath: (suffix: string) => scope.tempPath(suffix),
    defer: (cleanup: () => Promise<void> | void) => scope.defer(cleanup),
    keep: <T extends Resource>(key: string, create: (s: CaseScope) => Promise<T>) => scope.keep(key, create),
  };
}

/** A case being run: its scope, calibrated count, samples so far, and failure if any. */
interface Running {
  readonly c: BenchCase;
  /** Milliseconds spent in this case's own warm-up, repetitions and cleanup. */
  spentMs: number;
  readonly scope: Scope;
  count: number;
  warmups: number;
  readonly samples: Sample[];
  error?: string;
}

/** Starts a case: its warm-up runs (which also start its peers), calibrating the iteration count. */
async function warmUp(c: BenchCase, settings: Settings): Promise<Running> {
  const t0 = now();
  const r: Running = { c, spentMs: 0, scope: new Scope(), count: firstCount(c), warmups: 0, samples: [] };
  try {
    let warmed = 0;
    const warmupMs = settings.quick ? settings.warmupMs : (c.warmupMs ?? settings.warmupMs);
    const target = Math.min(settings.repetitionMs, warmupMs);
    const runs = Math.max(MAX_WARMUP_RUNS, Math.ceil(warmupMs / target) + 2);
    while (r.warmups < runs && (r.warmups === 0 || warmed < warmupMs)) {
      const ctx = contextFor(r.scope, settings, "warmup", r.warmups, r.count, target);
      const limit = settings.hardLimitMs + (r.warmups === 0 ? STARTUP_ALLOWANCE_MS : 0);
      const sample = await runOnce(c, r.scope, ctx, limit);
      r.warmups += 1;
      warmed += sampleMs(sample);
      r.count = calibrate(c, sample, target);
    }
    // A case with repetitions of its own length starts them with as many more iterations.
    r.count = Math.max(1, Math.round((r.count * repetitionMsOf(c, settings)) / settings.repetitionMs));
  } catch (err) {
    await failed(r, err);
  }
  r.spentMs += now() - t0;
  return r;
}

/** Records why `r` failed and frees its peers and memory now, not after the other cases' repetitions. */
async function failed(r: Running, err: unknown): Promise<void> {
  r.error = asError(err).message;
  await r.scope.close();
}

/** How long one measured repetition of `c` should take: its own time in a full run, else the runner's. */
function repetitionMsOf(c: BenchCase, settings: Settings): number {
  return settings.quick ? settings.repetitionMs : (c.repetitionMs ?? settings.repetitionMs);
}

/** One measured repetition of a warmed-up case (nothing once it failed). */
async function repeat(r: Running, settings: Settings, i: number): Promise<void> {
  if (r.error !== undefined) return;
  const t0 = now();
  const targetMs = repetitionMsOf(r.c, settings);
  try {
    const ctx = contextFor(r.scope, settings, "measure", i, r.count, targetMs);
    const sample = await runOnce(r.c, r.scope, ctx, settings.hardLimitMs);
    r.samples.push(sample);
    r.count = calibrate(r.c, sample, targetMs);
  } catch (err) {
    await failed(r, err);
  }
  r.spentMs += now() - t0;
}

/** Ends a case: frees its resources and summarises its samples (never throws). */
async function finish(r: Running): Promise<CaseResult> {
  const t0 = now();
  await r.scope.close();
  r.spentMs += now() - t0;
  const c = r.c;
  const base = {
    row: c.row,
    name: c.name,
    variant: c.variant,
    ...(c.method === undefined ? {} : { method: c.method }),
    ok: r.error === undefined,
    ...(r.error === undefined ? {} : { error: r.error }),
    warmups: r.warmups,
    wallSeconds: r.spentMs / 1000,
    ratios: [],
    cleanupErrors: r.scope.cleanupErrors,
  };
  try {
    return summarise(c, base, r.samples);
  } catch (err) {
    return { ...summarise(c, base, []), ok: false, error: asError(err).message };
  }
}

/**
 * The median repetition, its CPU shares replaced by their medians over all the repetitions (per
 * process: a repetition's CPU share is one number, a one-off pause of the process would
 * otherwise be the figure printed whenever it fell in the repetition of median p50).
 */
function withMedianCpu(median: LatencyStats, reps: readonly LatencyStats[]): LatencyStats {
  const cpu = medianCpuPercent(reps);
  return cpu === undefined ? median : { ...median, cpuPercent: cpu };
}

function summarise(c: BenchCase, base: Omit<ResultBase, "kind">, samples: Sample[]): CaseResult {
  if (c.kind === "latency") {
    const reps = samples.map((s) => latencyStats(s as Extract<Sample, { kind: "latency" }>));
    if (reps.length === 0 || !base.ok) return { ...base, kind: "latency", repetitions: reps };
    return {
      ...base,
      kind: "latency",
      repetitions: reps,
      median: withMedianCpu(reps[medianIndex(reps, (r) => r.p50)] as LatencyStats, reps),
      spread: { p50: spreadOf(reps, (r) => r.p50), p99: spreadOf(reps, (r) => r.p99) },
    };
  }
  const reps = samples.map((s) => throughputStats(s as Extract<Sample, { kind: "throughput" }>));
  if (reps.length === 0 || !base.ok) return { ...base, kind: "throughput", repetitions: reps };
  return {
    ...base,
    kind: "throughput",
    repetitions: reps,
    median: reps[medianIndex(reps, (r) => r.messagesPerSecond)] as ThroughputStats,
    spread: { messagesPerSecond: spreadOf(reps, (r) => r.messagesPerSecond), gigabytesPerSecond: spreadOf(reps, (r) => r.gigabytesPerSecond) },
  };
}

/** The headline number ratios compare: p50 for latency, msgs/s for throughput. */
export function headline(r: CaseResult): number | undefined {
  if (r.median === undefined) return undefined;
  return r.kind === "latency" ? r.median.p50 : r.median.messagesPerSecond;
}

/** The headline number of each repetition of `r`. */
function headlines(r: CaseResult): number[] {
  return r.kind === "latency" ? r.repetitions.map((x) => x.p50) : r.repetitions.map((x) => x.messagesPerSecond);
}

/**
 * Fills `ratios` of every result from the baselines its case names: the median of the ratios of
 * repetitions run side by side (the i-th of the case to the i-th of its baseline — the runner
 * interleaves them), or the ratio of the medians when they differ in number (a case failed
 * part-way) or one of them is not a finite number.
 */
export function computeRatios(cases: readonly BenchCase[], results: CaseResult[]): void {
  for (const [i, c] of cases.entries()) {
    const r = results[i] as CaseResult;
    r.ratios = baselinesOf(c).map((to) => {
      const b = results.find((x) => x.row === c.row && x.variant === c.variant && x.name === to);
      const mine = headline(r);
      const theirs = b === undefined ? undefined : headline(b);
      if (b === undefined || mine === undefined || theirs === undefined || theirs === 0) return { to, value: null };
      const [hm, hb] = [headlines(r), headlines(b)];
      const paired = hm.map((x, k) => x / (hb[k] as number));
      if (hm.length !== hb.length || !paired.every(Number.isFinite)) return { to, value: mine / theirs };
      paired.sort((x, y) => x - y);
      const mid = paired.length >> 1;
      return { to, value: paired.length % 2 === 1 ? (paired[mid] as number) : ((paired[mid - 1] as number) + (paired[mid] as number)) / 2 };
    });
  }
}

/**
 * Orders cases for running and reporting: by row (in `rowOrder`), then by variant (in order of
 * first registration), then in registration order, so a case runs next to its baseline.
 */
export function orderCases(all: readonly BenchCase[], rowOrder: readonly string[]): BenchCase[] {
  const variantRank = new Map<string, number>();
  for (const c of all) {
    const key = `${c.row}\u0000${c.variant}`;
    if (!variantRank.has(key)) variantRank.set(key, variantRank.size);
  }
  const indexed = all.map((c, i) => ({ c, i })).filter(({ c }) => rowOrder.includes(c.row));
  indexed.sort(
    (a, b) =>
      rowOrder.indexOf(a.c.row) - rowOrder.indexOf(b.c.row) ||
      (variantRank.get(`${a.c.row}\u0000${a.c.variant}`) as number) - (variantRank.get(`${b.c.row}\u0000${b.c.variant}`) as number) ||
      a.i - b.i,
  );
  return indexed.map(({ c }) => c);
}

/**
 * Runs `cases` (ordered by {@link orderCases}) and computes ratios. The cases of one row and
 * variant run together: each warms up (starting its peers), then their repetitions alternate —
 * the first of each, the second of each, ... — so a machine whose speed drifts over minutes
 * (a shared VM) moves a case and its baselines alike; then their resources are freed.
 */
export async function runAll(cases: readonly BenchCase[], settings: Settings, observer: RunObserver = {}): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (let start = 0; start < cases.length; ) {
    const first = cases[start] as BenchCase;
    let end = start + 1;
    while (end < cases.length && cases[end]?.row === first.row && cases[end]?.variant === first.variant) end++;
    const group: Running[] = [];
    for (let i = start; i < end; i++) {
      observer.caseStarted?.(cases[i] as BenchCase, i, cases.length);
      group.push(await warmUp(cases[i] as BenchCase, settings));
    }
    for (let k = 0; k < settings.repetitions; k++) for (const r of group) await repeat(r, settings, k);
    for (const [j, r] of group.entries()) {
      const result = await finish(r);
      results.push(result);
      observer.caseFinished?.(result, start + j, cases.length);
    }
    start = end;
  }
  computeRatios(cases, results);
  return results;
}
