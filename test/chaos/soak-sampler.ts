/** Memory and descriptor series of the soak's processes, and whether they stayed flat. */

/** One sample a participant printed ("mem <json>"). */
export interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  external: number;
  fds: number;
}

export interface SeriesSummary {
  samples: number;
  /** Medians of the first and last quarter of the run (the first quarter after warm-up). */
  rss: [number, number];
  heapUsed: [number, number];
  fds: [number, number];
  /** Most descriptors seen. */
  fdsMax: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** Summarises a series: medians of its first and last quarter. */
export function summarise(series: readonly Sample[]): SeriesSummary {
  const q = Math.max(1, Math.floor(series.length / 4));
  const first = series.slice(0, q);
  const last = series.slice(-q);
  const m = (xs: readonly Sample[], k: keyof Sample): number => median(xs.map((x) => x[k]));
  return {
    samples: series.length,
    rss: [m(first, "rss"), m(last, "rss")],
    heapUsed: [m(first, "heapUsed"), m(last, "heapUsed")],
    fds: [m(first, "fds"), m(last, "fds")],
    fdsMax: Math.max(0, ...series.map((s) => s.fds)),
  };
}

/** Parses a "mem <json>" line. */
export function parseSample(line: string): Sample | undefined {
  if (!line.startsWith("mem ")) return undefined;
  try {
    return JSON.parse(line.slice(4)) as Sample;
  } catch {
    return undefined;
  }
}
