/**
 * Anticipation for paced streams (cameras, sensors, fixed-rate pipelines): learns the period at
 * which frames arrive and says when the next one is due, so a reader can poll through that short
 * window instead of sleeping through it. A frame that arrives while its reader sleeps pays the
 * wake-up of the reader's thread and event loop — on an idle (virtual) CPU, tens to hundreds of
 * µs — which is most of the latency of a paced stream; a poll sees it within a microsecond. The
 * window is bounded in time and in share of the period, and is skipped when the stream is not
 * regular. Used by the ZeroBuffer reader (with the event loop's millisecond timers) and by the
 * shared-memory ring reader (with a high-resolution timer).
 * (Internal: not part of the public API.)
 * @module
 */

import { performance } from "node:perf_hooks";

/** How far ahead a reader can wake up, and so which windows it can open. */
export interface AnticipatorOptions {
  /**
   * Intervals shorter than this (ms) are not anticipated: the window would be too short for the
   * jitter of a typical sender. Default 3 (for the event loop's ms-grained timers).
   */
  minPeriodMs?: number;
  /** Polling starts this long (ms) before the earliest expected arrival: covers the timer's own wake-up. Default 0.5. */
  leadMs?: number;
  /** Half a window is at least this (ms), then 3x the observed jitter. Default 0.15. */
  minHalfMs?: number;
  /**
   * How closely (a share of the period) the intervals that follow a new period must match it
   * before it is trusted. Default 0.1; a reader that notes arrivals only when woken (whose wake-up
   * varies by tens of µs) needs more at sub-ms periods.
   */
  confirm?: number;
}

/** Half-window upper bound (ms). */
const MAX_HALF_MS = 2;
/** The whole window is at most this share of the period. */
const MAX_DUTY = 0.25;
/** Consecutive regular intervals before anticipating. */
const SETTLE = 2;
/** An interval off the period by more than this share restarts the learning. */
const TOLERANCE = 0.4;

/**
 * Learns a stream's period and phase from its arrival times, like a phase-locked loop: each
 * arrival inside its window corrects the expected time of the next one by a share of its error,
 * so one late frame (a sender's timer firing late) does not move the next window by all of its
 * delay; an arrival outside its window (a phase jump) moves the phase at once.
 */
export class Anticipator {
  private last = 0;
  private period = 0;
  /** Expected arrival of the next frame. */
  private next = 0;
  /** Mean absolute error of the predictions. */
  private jitter = 0;
  private regular = 0;
  /** The window of the frame after `last` was already polled through in vain. */
  private spent = false;
  /** Frames caught while polling in their window. */
  caught = 0;
  /** Windows that passed without their frame. */
  missed = 0;
  /** Shortest period anticipated (ms). */
  private readonly minPeriod: number;
  /** Smallest half window (ms). */
  private readonly minHalf: number;
  /** Tolerance of an interval while the period is not settled yet (share of the period). */
  private readonly confirm: number;
  /** How long before the window the poll starts (ms); see {@link AnticipatorOptions.leadMs}. */
  private lead: number;
  /** The lead was learnt ({@link learnLead}), not given: it may be capped by the period. */
  private leadLearnt = false;

  /** @param opts - which periods are anticipated, and how far ahead the reader can wake up */
  constructor(opts: AnticipatorOptions = {}) {
    this.minPeriod = opts.minPeriodMs ?? 3;
    this.lead = opts.leadMs ?? 0.5;
    this.minHalf = opts.minHalfMs ?? 0.15;
    this.confirm = opts.confirm ?? 0.1;
  }

  /** How long before the window the poll starts (ms). */
  get leadMs(): number {
    return this.lead;
  }

  /**
   * Sets the lead from what the reader measured of its own timer's wake-up. A learnt lead takes
   * at most half of a window's share of the period, so a timer that woke late a few times
   * cannot close the windows for good.
   */
  learnLead(ms: number): void {
    this.lead = ms;
    this.leadLearnt = true;
  }

  /**
   * A frame was taken without waiting for it (it had arrived while the reader was busy), so when
   * it arrived is unknown: if it is the one expected, the stream keeps its period and phase and
   * the next window is the one after it; otherwise it counts as an arrival now.
   */
  taken(now: number): void {
    if (this.regular >= SETTLE && this.period > 0 && now >= this.next - this.period / 2) {
      // On average it came when due: move on by whole periods (it may be late by several).
      const behind = Math.max(1, Math.floor((now - this.next) / this.period) + 1);
      this.last = this.next + (behind - 1) * this.period;
      this.next = this.last + this.period;
      this.spent = false;
      return;
    }
    this.arrived(now);
  }

  /** Records an arrival at `now` (`performance.now()`). */
  arrived(now: number): void {
    if (this.last > 0) {
      const dt = now - this.last;
      // A period just learnt (from one interval) must be confirmed closely before it is trusted:
      // after a pause, the first interval is the pause, and the real period is within 40% of it.
      const tolerance = this.regular < SETTLE ? this.confirm : TOLERANCE;
      if (this.period === 0 || Math.abs(dt - this.period) > this.period * tolerance) {
        this.period = dt;
        this.next = now + dt;
        this.jitter = 0;
        this.regular = 0;
      } else {
        const err = now - this.next; // > 0: later than expected
        const w = this.window();
        if (this.spent || (w !== undefined && now < w[0])) {
          // After its window, or before it opened: the stream kept its period but moved its
          // phase (a pause, a restarted sender). Take the new phase at once rather than a quarter
          // of it per frame (which misses several windows in a row), and widen the windows a bit.
          this.jitter += (Math.min(Math.abs(err), MAX_HALF_MS) - this.jitter) / 8;
          this.next = now + this.period;
        } else {
          this.jitter += (Math.abs(err) - this.jitter) / 8;
          this.period += err / 16;
          this.next += this.period + err / 4;
          if (this.next < now + this.period / 2) this.next = now + this.period; // never behind
        }
        this.regular++;
      }
    }
    this.last = now;
    this.spent = false;
  }

  /** The learnt period in ms (0 until the stream looks regular). */
  get periodMs(): number {
    return this.regular >= SETTLE ? this.period : 0;
  }

  /**
   * When to poll for the next frame, as `[start, end]` in `performance.now()` ms, or undefined
   * if the stream is not regular or faster than the shortest period anticipated, or this frame's window
   * was already used.
   */
  window(): [number, number] | undefined {
    if (this.spent || this.regular < SETTLE || this.period < this.minPeriod) return undefined;
    const lead = this.leadLearnt ? Math.min(this.lead, (this.period * MAX_DUTY) / 2) : this.lead;
    const half = Math.min(Math.max(3 * this.jitter, this.minHalf), MAX_HALF_MS, (this.period * MAX_DUTY - lead) / 2);
    if (half <= 0) return undefined;
    return [this.next - half - lead, this.next + half];
  }

  /** The window passed without a frame: sleep until it comes. */
  miss(): void {
    this.spent = true;
    this.missed++;
  }
}

/** Longest single poll of an anticipated frame (µs) before the event loop gets a turn. */
export const POLL_SLICE_US = 50;

/**
 * Polls through an anticipation window: `poll(budgetUs)` (which may block the thread for at most
 * that long) in slices of {@link POLL_SLICE_US}, with a turn of the event loop between slices
 * (timers and I/O run: the frame may well come from this very process), until it returns true
 * (resolves true), or `end` (`performance.now()` ms) passes or `stop()` says so (false).
 */
export async function pollWindow(end: number, poll: (budgetUs: number) => boolean, stop: () => boolean): Promise<boolean> {
  for (;;) {
    const left = end - performance.now();
    if (left <= 0 || stop()) return false;
    if (poll(Math.min(left * 1000, POLL_SLICE_US))) return true;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
