/**
 * Measuring loops shared by the cases: a timed ping-pong loop, a one-shot reply slot for
 * callback-driven transports, and a clock.
 * @module
 */
import { performance } from "node:perf_hooks";
import type { CaseContext, LatencySample, ThroughputSample } from "./harness.js";

/** The clock of the suite, in milliseconds. */
export const now = (): number => performance.now();

/**
 * Runs up to `ctx.count` round trips (fewer if twice `ctx.targetMs` pass, at least one) and
 * returns their times. `roundTrip` sends one message and resolves when the reply is in.
 */
export async function roundTrips(ctx: CaseContext, roundTrip: () => Promise<void>): Promise<LatencySample> {
  const rtt = new Float64Array(ctx.count);
  let n = 0;
  const deadline = Math.max(ctx.deadline, now() + 2 * ctx.targetMs);
  while (n < ctx.count) {
    if (ctx.signal.aborted) throw asError(ctx.signal.reason);
    const t0 = now();
    await roundTrip();
    const t1 = now();
    rtt[n++] = (t1 - t0) * 1000;
    if (t1 > deadline) break;
  }
  return { kind: "latency", rttUs: rtt.subarray(0, n) };
}

/** Builds a throughput sample from a message count, message size and start time (`now()`). */
export function streamed(messages: number, messageBytes: number, startMs: number): ThroughputSample {
  return { kind: "throughput", messages, bytes: messages * messageBytes, seconds: (now() - startMs) / 1000 };
}

/** `reason` as an Error. */
export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/**
 * A reusable slot for the single outstanding reply of a ping-pong: `wait()` before sending,
 * `settle()` from the transport's callback. Rejects when the case's signal aborts.
 */
export class ReplySlot {
  private resolveFn: (() => void) | undefined;
  private rejectFn: ((e: Error) => void) | undefined;

  /** @param signal - the case signal; an abort rejects the pending wait */
  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener("abort", () => this.fail(asError(signal.reason)), { once: true });
  }

  /** A promise for the next reply. */
  wait(): Promise<void> {
    if (this.signal.aborted) return Promise.reject(asError(this.signal.reason));
    return new Promise<void>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
  }

  /** The reply arrived. A reply nobody waits for is ignored. */
  settle(): void {
    const r = this.resolveFn;
    this.resolveFn = undefined;
    this.rejectFn = undefined;
    r?.();
  }

  /** Fails the pending wait, if any. */
  fail(error: Error): void {
    const r = this.rejectFn;
    this.resolveFn = undefined;
    this.rejectFn = undefined;
    r?.(error);
  }
}
