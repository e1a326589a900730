/**
 * A count of the messages this thread has published, for the subscriber's pump: after it hands
 * a sample over, it lets the code that sample woke run until that code published something (the
 * answer the peer is waiting for) before it polls its ring again — a poll any earlier would spin
 * while that code waits for the thread.
 * (Internal: not part of the public API.)
 * @module
 */

let published = 0;

/** Counts one published message (publish, loan commit). */
export function notePublished(): void {
  published++;
}

/** Messages published by this thread so far. */
export function publishedCount(): number {
  return published;
}
