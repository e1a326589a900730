/**
 * Message sizes used by the rows, with their printed labels.
 * @module
 */

/** A message size. */
export interface Size {
  /** Bytes per message. */
  readonly bytes: number;
  /** Printed label, also the case variant ("64 B", "1 MiB"). */
  readonly label: string;
  /** Included in the `--quick` suite. */
  readonly quick: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Round-trip sizes of the lat row. */
export const LAT_SIZES: readonly Size[] = [
  { bytes: 64, label: "64 B", quick: true },
  { bytes: 4 * KiB, label: "4 KiB", quick: true },
];

/** Stream sizes of the thr row (quick: 64 B and 1 MiB). */
export const THR_SIZES: readonly Size[] = [
  { bytes: 64, label: "64 B", quick: true },
  { bytes: 4 * KiB, label: "4 KiB", quick: false },
  { bytes: 64 * KiB, label: "64 KiB", quick: false },
  { bytes: MiB, label: "1 MiB", quick: true },
  { bytes: 16 * MiB, label: "16 MiB", quick: false },
];

/** Latency size of the thread row. */
export const THREAD_LAT_SIZES: readonly Size[] = [{ bytes: 64, label: "64 B", quick: true }];

/** Throughput sizes of the thread row. */
export const THREAD_THR_SIZES: readonly Size[] = [
  { bytes: 64 * KiB, label: "64 KiB", quick: true },
  { bytes: MiB, label: "1 MiB", quick: true },
];
