/**
 * The case registry of the benchmark suite. A case measures one thing (a peer, a floor, a Plexus
 * transport) for one row and one variant; the runner ({@link ./runner.ts}) warms it up, repeats
 * it, takes the median and spread, and computes ratios against a named baseline of the same row
 * and variant. Case modules call {@link registerCase} at import time and are imported from
 * `bench/cases/index.ts`.
 * @module
 */

/** What a case measures. */
export type CaseKind = "latency" | "throughput";

/** One repetition of a latency case: every round-trip time, in microseconds. */
export interface LatencySample {
  /** Discriminant. */
  kind: "latency";
  /** Round-trip times in µs, one per round trip, in the order measured (one-way times for cases that say so). */
  rttUs: ArrayLike<number>;
  /**
   * CPU use during the repetition, in % of one core (user + system time of every thread of a
   * process over the wall time), by what was measured, e.g. `{ publisher: 3.1, subscriber: 5.2 }`
   * (cases that report it).
   */
  cpuPercent?: Record<string, number>;
}

/** One repetition of a throughput case: how much went through in how long. */
export interface ThroughputSample {
  /** Discriminant. */
  kind: "throughput";
  /** Messages delivered (and touched by the reader). */
  messages: number;
  /** Payload bytes delivered. */
  bytes: number;
  /** Wall time from the first write to the reader confirming the last message, in seconds. */
  seconds: number;
  /** Peak resident set size of the receiving process, in bytes (cases that report it). */
  peakRssBytes?: number;
  /** CPU time (user + system) of both processes during the repetition, in seconds (cases that report it). */
  cpuSeconds?: number;
}

/** What {@link BenchCase.run} returns for one repetition. */
export type Sample = LatencySample | ThroughputSample;

/** Something a case keeps open across its repetitions; closed once after the last one. */
export interface Resource {
  /** Releases the resource (kills child processes, closes sockets, removes files). Must not hang. */
  close(): Promise<void> | void;
}

/**
 * The life of one case across its repetitions: resources kept open, a signal aborted when the
 * case fails (a repetition timed out, a peer died), temporary paths removed at the end.
 */
export interface CaseScope {
  /** Aborted (with the error as reason) when the case fails; every wait should honour it. */
  readonly signal: AbortSignal;
  /** Fails the case now (e.g. a peer died); pending waits reject through {@link signal}. */
  fail(error: Error): void;
  /** A fresh path in the temp directory ending in `suffix`; the file is removed when the case ends. */
  tempPath(suffix: string): string;
  /** Runs `cleanup` when the case ends (in reverse order of registration, errors reported, not thrown). */
  defer(cleanup: () => Promise<void> | void): void;
}

/** What a case's `run` gets for one repetition. */
export interface CaseContext extends CaseScope {
  /** `--quick`: a CI smoke run, numbers are not meaningful. */
  readonly quick: boolean;
  /** A warm-up run (not reported) or a measured repetition. */
  readonly phase: "warmup" | "measure";
  /** 0-based index of this run within its phase. */
  readonly repetition: number;
  /**
   * How many iterations to do: round trips for a latency case, messages for a throughput case.
   * The runner calibrates it from the previous runs so one repetition takes about the target time.
   */
  readonly count: number;
  /** Target duration of this run in ms (the count is calibrated for it). */
  readonly targetMs: number;
  /**
   * `performance.now()` value after which a loop should stop early (a soft bound): twice the
   * target after the run started. {@link roundTrips} applies the same bound from its own start,
   * so time spent starting peers in the first run does not count.
   */
  readonly deadline: number;
  /**
   * Returns the resource stored under `key`, creating it on first use with `create`. Kept for all
   * repetitions of this case (so warm-up warms the same processes), closed when the case ends.
   */
  keep<T extends Resource>(key: string, create: (scope: CaseScope) => Promise<T>): Promise<T>;
}

/** A benchmark case. */
export interface BenchCase {
  /** Row id (bench/README.md, "The suite"): "lat", "thr", "thread", ... */
  readonly row: string;
  /** What is measured, e.g. "unix socket", "eventfd floor", "plexus shm". Unique within row + variant. */
  readonly name: string;
  /** The parameter, e.g. "64 B", "1 MiB". Ratios compare cases of the same row and variant. */
  readonly variant: string;
  /** Latency (round trips, µs) or throughput (msgs/s, GB/s). */
  readonly kind: CaseKind;
  /** Name(s) of the baseline case(s) of the same row + variant to compute ratios against. */
  readonly ratioTo?: string | readonly string[];
  /** Bytes per message (throughput cases): sizes the first warm-up run before calibration. */
  readonly messageBytes?: number;
  /** Part of the `--quick` suite (default true). */
  readonly quick?: boolean;
  /**
   * Milliseconds of one measured repetition in a full run, for this case (default: the
   * runner's 400 ms): longer where a repetition would hold few messages, each a large share of
   * it (a garbage collection, a scheduling hiccup), and the spread would hide the ratio.
   */
  readonly repetitionMs?: number;
  /**
   * Milliseconds of warm-up in a full run, for this case (default: the runner's 300 ms): longer
   * where the measured path is long JavaScript run once per iteration, which V8 compiles with its
   * optimizing tier only after thousands of calls — a short warm-up would measure the tiering.
   */
  readonly warmupMs?: number;
  /** One line on how the case works, printed with the results. */
  readonly method?: string;
  /** One warm-up or measured repetition. Must honour `ctx.signal` and never wait unbounded. */
  run(ctx: CaseContext): Promise<Sample>;
}

const cases: BenchCase[] = [];

/** The registry key of a case. */
export function caseId(c: Pick<BenchCase, "row" | "name" | "variant">): string {
  return `${c.row} / ${c.name} / ${c.variant}`;
}

/**
 * Adds a case to the suite. Throws if a case with the same row, name and variant exists.
 * @param c - the case
 */
export function registerCase(c: BenchCase): void {
  if (cases.some((x) => caseId(x) === caseId(c))) throw new Error(`bench: duplicate case ${caseId(c)}`);
  cases.push(c);
}

/** Every registered case, in registration order. */
export function registeredCases(): readonly BenchCase[] {
  return cases;
}

/** The names a case compares itself with (empty when it has no baseline). */
export function baselinesOf(c: BenchCase): readonly string[] {
  if (c.ratioTo === undefined) return [];
  return typeof c.ratioTo === "string" ? [c.ratioTo] : c.ratioTo;
}
