/**
 * The subscriber side of the paced row, shared by its subscriber process and its worker thread:
 * the message, the clock, and the one-way latencies of a repetition.
 * @module
 */
import type { Subscriber } from "../../src/index.js";
import { touch } from "./runtime.js";

/** A message of the paced row: a small object (`tag`) or a 1 MiB typed array (`data`). */
export interface PacedMessage {
  /** 1, 2, ... across the repetitions of a stream. */
  seq: number;
  /** {@link monotonicNs} when it was published. */
  t: number;
  /** The small object's text. */
  tag?: string;
  /** The large message's array (a view into shared memory on the subscriber's side). */
  data?: Float64Array;
}

/**
 * `process.hrtime.bigint()` as a number of ns: CLOCK_MONOTONIC, one clock for every process and
 * thread of the host (exact to the ns for 104 days of uptime, to a few ns after).
 */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

/**
 * The one-way latencies of one subscriber, per repetition: {@link begin} with the first sequence
 * number of the repetition, {@link arrived} for every message, {@link collect} after the last.
 */
export class Arrivals {
  private first = Infinity;
  private latencies: number[] = [];
  private last = 0;
  private waiter: { last: number; done: () => void } | undefined;
  /** A sum of the touched bytes (so that the reads cannot be optimised away). */
  checksum = 0;

  /** Records the messages from sequence number `first` on; earlier ones are not recorded. */
  begin(first: number): void {
    this.first = first;
    this.latencies = [];
  }

  /**
   * A message arrived.
   * @param seq - its sequence number
   * @param latencyUs - its one-way latency, µs
   */
  arrived(seq: number, latencyUs: number): void {
    this.last = seq;
    if (seq >= this.first) this.latencies.push(latencyUs);
    if (this.waiter !== undefined && seq >= this.waiter.last) this.waiter.done();
  }

  /**
   * Resolves with the latencies (µs, in the order of arrival) of the messages `first..last` once
   * `last` arrived; rejects after `timeoutMs`, or if some of them never came.
   */
  collect(last: number, timeoutMs: number): Promise<Float64Array> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        const expected = last - this.first + 1;
        const got = this.latencies.splice(0);
        if (got.length !== expected) reject(new Error(`${got.length} of messages ${this.first}..${last} arrived`));
        else resolve(Float64Array.from(got));
      };
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`message ${last} not there within ${timeoutMs} ms (last: ${this.last})`));
      }, timeoutMs);
      this.waiter = { last, done };
      if (this.last >= last) done();
    });
  }
}

/**
 * Reads `sub` until it closes: takes the clock as soon as each sample is in hand (decoded), then
 * touches one byte per 64 of its array and releases it.
 */
export async function record(sub: Subscriber<PacedMessage>, arrivals: Arrivals): Promise<void> {
  for await (const s of sub) {
    const v = s.value;
    const latencyUs = (monotonicNs() - v.t) / 1000;
    arrivals.arrived(v.seq, latencyUs);
    const d = v.data;
    if (d !== undefined) arrivals.checksum += touch(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    s.release();
  }
}
