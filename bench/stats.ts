/**
 * Statistics over samples: percentiles of round-trip times, rates of streams, the median
 * repetition and the spread over repetitions.
 * @module
 */
import type { LatencySample, ThroughputSample } from "./harness.js";

/** Summary of one latency repetition, in µs. */
export interface LatencyStats {
  /** Round trips measured. */
  count: number;
  /** Median RTT. */
  p50: number;
  /** 90th percentile RTT (nearest rank). */
  p90: number;
  /** 99th percentile RTT (nearest rank). */
  p99: number;
  /** Mean RTT. */
  mean: number;
  /** Fastest RTT. */
  min: number;
  /** Slowest RTT. */
  max: number;
  /**
   * CPU use during the repetition, % of one core by process (cases that report it;
   * {@link LatencySample.cpuPercent}). In a result's `median`: the median of each over the repetitions.
   */
  cpuPercent?: Record<string, number>;
}

/** Summary of one throughput repetition. */
export interface ThroughputStats {
  /** Messages delivered. */
  messages: number;
  /** Payload bytes delivered. */
  bytes: number;
  /** Seconds taken. */
  seconds: number;
  /** Messages per second. */
  messagesPerSecond: number;
  /** Payload GB (1e9 B) per second. */
  gigabytesPerSecond: number;
  /** Peak RSS of the receiving process, bytes (cases that report it). */
  peakRssBytes?: number;
  /** CPU time of both processes per message, µs (cases that report it). */
  cpuUsPerMessage?: number;
}

/** Nearest-rank percentile of an ascending array; `q` in (0, 1]. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new Error("percentile of an empty sample");
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

/** Summarises the round-trip times of one repetition. Throws if there are none. */
export function latencyStats(sample: LatencySample): LatencyStats {
  const sorted = Float64Array.from(sample.rttUs).sort();
  if (sorted.length === 0) throw new Error("latency sample without round trips");
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    mean: sum / sorted.length,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    ...(sample.cpuPercent === undefined ? {} : { cpuPercent: { ...sample.cpuPercent } }),
  };
}

/** Rates of one throughput repetition. Throws on an empty or instantaneous sample. */
export function throughputStats(sample: ThroughputSample): ThroughputStats {
  if (!(sample.messages > 0) || !(sample.seconds > 0)) {
    throw new Error(`throughput sample without messages or time (${sample.messages} msgs in ${sample.seconds} s)`);
  }
  return {
    messages: sample.messages,
    bytes: sample.bytes,
    seconds: sample.seconds,
    messagesPerSecond: sample.messages / sample.seconds,
    gigabytesPerSecond: sample.bytes / sample.seconds / 1e9,
    ...(sample.peakRssBytes === undefined ? {} : { peakRssBytes: sample.peakRssBytes }),
    ...(sample.cpuSeconds === undefined ? {} : { cpuUsPerMessage: (sample.cpuSeconds * 1e6) / sample.messages }),
  };
}

/** Index of the median element by `key` (the lower median for an even count). */
export function medianIndex<T>(items: readonly T[], key: (item: T) => number): number {
  if (items.length === 0) throw new Error("median of nothing");
  const order = items.map((item, i) => ({ i, v: key(item) })).sort((a, b) => a.v - b.v);
  return (order[Math.floor((order.length - 1) / 2)] as { i: number }).i;
}

/**
 * The median (the lower one for an even count) of each CPU share over the repetitions that
 * report it, by process; undefined when none does.
 */
export function medianCpuPercent(reps: readonly Pick<LatencyStats, "cpuPercent">[]): Record<string, number> | undefined {
  const values = new Map<string, number[]>();
  for (const r of reps) {
    for (const [what, v] of Object.entries(r.cpuPercent ?? {})) {
      const list = values.get(what);
      if (list === undefined) values.set(what, [v]);
      else list.push(v);
    }
  }
  if (values.size === 0) return undefined;
  const out: Record<string, number> = {};
  for (const [what, vs] of values) out[what] = vs[medianIndex(vs, (v) => v)] as number;
  return out;
}

/** Smallest and largest value of `key` over `items`. */
export function spreadOf<T>(items: readonly T[], key: (item: T) => number): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const item of items) {
    const v = key(item);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}
