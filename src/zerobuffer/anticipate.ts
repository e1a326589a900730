/**
 * Anticipation for paced streams (cameras, fixed-rate pipelines): learns the period at which
 * frames arrive and says when the next one is due, so a reader can poll through that short
 * window instead of sleeping through it. A frame that arrives while its reader sleeps pays the
 * wake-up of the waiter thread and of the event loop — on an idle (virtual) CPU, 100 µs or
 * more each — which is most of the latency of a paced round trip; a poll sees it within a
 * microsecond. The window is bounded in time and in share of the period, and is skipped when
 * the stream is not regular.
 * (Internal: not part of the public API.)
 * @module
 */

/** Intervals shorter than this (ms) are not anticipated: the window would be too short for the jitter of a typical sender, and the CPUs do not idle deeply between such frames. */
const MIN_PERIOD_MS = 3;
/** Polling starts this long (ms) before the earliest expected arrival: covers the timer's own wake-up. */
const LEAD_MS = 0.5;
/** Half-window bounds (ms): at least this, then 3x the observed jitter, at most {@link MAX_HALF_MS}. */
const MIN_HALF_MS = 0.15;
const MAX_HALF_MS = 2;
/** The whole window is at most this share of the period. */
const MAX_DUTY = 0.25;
/** Consecutive regular intervals before anticipating. */
const SETTLE = 2;
/** An interval off the period by more than this share restarts the learning. */
const TOLERANCE = 0.4;
/** The same, while the period is not settled yet. */
const CONFIRM = 0.1;

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

  /** Records an arrival at `now` (`performance.now()`). */
  arrived(now: number): void {
    if (this.last > 0) {
      const dt = now - this.last;
      // A period just learnt (from one interval) must be confirmed closely before it is trusted:
      // after a pause, the first interval is the pause, and the real period is within 40% of it.
      const tolerance = this.regular < SETTLE ? CONFIRM : TOLERANCE;
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
   * if the stream is not regular or slower than {@link MIN_PERIOD_MS}, or this frame's window
   * was already used.
   */
  window(): [number, number] | undefined {
    if (this.spent || this.regular < SETTLE || this.period < MIN_PERIOD_MS) return undefined;
    const half = Math.min(Math.max(3 * this.jitter, MIN_HALF_MS), MAX_HALF_MS, (this.period * MAX_DUTY - LEAD_MS) / 2);
    if (half <= 0) return undefined;
    return [this.next - half - LEAD_MS, this.next + half];
  }

  /** The window passed without a frame: sleep until it comes. */
  miss(): void {
    this.spent = true;
    this.missed++;
  }
}
