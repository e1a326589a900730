/**
 * Waiting for the due time of a paced stream without spending CPU: rows that report the CPU use
 * of the sending process must not count the wait between messages.
 * @module
 */
import { setTimeout as delay } from "node:timers/promises";
import { asError, now } from "./measure.js";

/** From this many ms before the due time on, no timer is used (they are ms-grained and often late by a ms). */
const TIMER_MARGIN_MS = 1.5;

/** A word nobody notifies: `Atomics.wait` on it is a sleep with a timeout (a futex). */
const SLEEP_WORD = new Int32Array(new SharedArrayBuffer(4));

/**
 * Resolves after `ms` milliseconds; rejects with the reason of `signal` when it aborts first.
 * @param ms - how long
 * @param signal - aborts the wait
 */
export async function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    throw signal.aborted ? asError(signal.reason) : err;
  }
}

/**
 * Resolves at `due` (a {@link now} time), never earlier: a timer to about 1.5 ms before, one turn
 * of the event loop (timers and I/O of the process run), then a blocking sleep for the rest
 * (`Atomics.wait` with a timeout: a futex, late by ~0.1 ms, no CPU). The zb row instead turns
 * the event loop until the time is due, which keeps a core busy at a 1 kHz pace.
 * @param due - `now()` value to wait for
 * @param signal - aborts the wait
 */
export async function paceTo(due: number, signal: AbortSignal): Promise<void> {
  const ahead = due - now() - TIMER_MARGIN_MS;
  if (ahead > 0) await sleepFor(ahead, signal);
  await new Promise((resolve) => setImmediate(resolve));
  if (signal.aborted) throw asError(signal.reason);
  for (let left = due - now(); left > 0; left = due - now()) Atomics.wait(SLEEP_WORD, 0, 0, left);
}
