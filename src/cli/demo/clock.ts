/**
 * The demo's clock: milliseconds since the epoch with sub-millisecond resolution, comparable
 * between processes of one host.
 * (Internal: not part of the public API.)
 * @module
 */

/** Now, in ms since the epoch (fractional). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Percentile `p` (0..1) of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
