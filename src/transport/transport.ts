/**
 * The transport interface: how bytes move from one sender to its receivers. Every transport
 * (`inproc`, `thread`, `shm`, `tcp`) implements it and passes the same conformance suite.
 * @module
 */
import type { BlockingOptions } from "../util/blocking.js";
import { BACKPRESSURE_POLICIES } from "../util/async-queue.js";
import { readOptions } from "../util/options.js";
import { MAX_CAPACITY, MAX_READERS, type Policy } from "../ring/layout.js";

/** The transports Plexus knows. */
export type TransportKind = "inproc" | "thread" | "shm" | "tcp";

/** The transports a port (publisher, subscriber, rpc server or client) can be limited to: its `transport` option. */
export const PORT_TRANSPORTS = ["inproc", "shm", "tcp"] as const;

/** What a sender does when a receiver has no room: wait, drop that receiver's oldest, or fail. */
export type BackpressurePolicy = Policy;

/**
 * One received message: a view of the sender's bytes, read-only by contract (see
 * docs/transports.md: copy before keeping or changing it). Release it (`release()`, `using`,
 * or by moving on in a `for await` loop) so the sender can reuse the space.
 */
export interface Frame extends Disposable {
  /** The message bytes; valid until released. */
  readonly bytes: Uint8Array;
  /** Sequence number given by the sender (from 1, one per message). */
  readonly sequence: number;
  /** Gives the space back to the sender; idempotent. */
  release(): void;
}

/** Space lent by a sender: fill `bytes`, then `commit()` (publish) or `abort()`. */
export interface Loan {
  /** Where to write the message, in place, with no further copy. */
  readonly bytes: Uint8Array;
  /** Publishes the first `length` bytes (default: all). */
  commit(length?: number): void;
  /** Ends the loan without publishing. */
  abort(): void;
}

/** The sending end: one sender, many receivers; each message is written once. */
export interface Sender extends AsyncDisposable {
  /** Which transport this is. */
  readonly kind: TransportKind;
  /** Receivers currently attached. */
  readonly receivers: number;
  /** Sends now if every blocking receiver has room; returns false if it would have to wait. */
  trySend(data: ArrayBufferView): boolean;
  /** Sends, waiting (bounded by `timeout`, `signal`) while a blocking receiver is full. */
  send(data: ArrayBufferView, opts?: BlockingOptions): Promise<void>;
  /** Lends `size` bytes to write a message in place. */
  loan(size: number, opts?: BlockingOptions): Promise<Loan>;
  /** Ends the stream: receivers get what was sent, then the end. Idempotent. */
  close(): Promise<void>;
}

/** The receiving end: an async iterable of frames. */
export interface Receiver extends AsyncIterable<Frame>, AsyncDisposable {
  /** Which transport this is. */
  readonly kind: TransportKind;
  /** The next frame if one is ready, else null. */
  tryReceive(): Frame | null;
  /**
   * Waits for the next frame; resolves null once the sender closed and everything was
   * received; rejects with `PeerDeadError` if the sender died (after what it committed).
   */
  receive(opts?: BlockingOptions): Promise<Frame | null>;
  /** Messages dropped for this receiver (policy `drop-oldest`) since the last call. */
  takeMissed(): number;
  /** Leaves: releases held frames and frees the sender from waiting for this receiver. Idempotent. */
  close(): Promise<void>;
}

/** Options for creating a ring-backed sender. */
export interface RingSenderOptions {
  /** Ring data capacity in bytes (power of two, default 1 MiB); the largest message is half of it. */
  capacity?: number;
  /** Most receivers at once (default 16). */
  maxReceivers?: number;
  /** Default timeout of `send`/`loan` in ms (default 5000). */
  timeout?: number;
}

/** Options for attaching a receiver. */
export interface ReceiverOptions {
  /** Backpressure policy for this receiver (default `block`). */
  backpressure?: BackpressurePolicy;
  /** Busy-poll this many µs before sleeping (default 0; costs a core while spinning). */
  spinMicros?: number;
  /**
   * Ring transports: poll briefly (≤50 µs) before sleeping while messages keep arriving within a
   * wake-up's time, backing off when it does not pay (default true). `false` = always sleep.
   */
  adaptiveSpin?: boolean;
  /**
   * Ring transports: learn the period of a paced stream (a message every 0.5 ms or more, at a
   * steady rate) and poll briefly around each expected arrival instead of sleeping through it
   * (default false: it costs the poll's share of a core, docs/pubsub.md, "Latency").
   */
  anticipate?: boolean;
  /** Default timeout of `receive` in ms (default none). */
  timeout?: number;
}

/** Checks the options of a ring-backed sender's `create` (`where`: `ShmSender.create`, ...) and fills in the defaults. */
export function ringSenderSettings(where: string, opts: RingSenderOptions | undefined): Required<RingSenderOptions> {
  const o = readOptions(where, opts);
  return {
    capacity: o.int("capacity", 1 << 20, 1, MAX_CAPACITY),
    maxReceivers: o.int("maxReceivers", 16, 1, MAX_READERS),
    timeout: o.timeout("timeout", 5000),
  };
}

/** Checks the {@link ReceiverOptions} of a `connect...` call (`where`: `connectShm`, ...) and fills in the defaults. */
export function receiverSettings(where: string, opts: ReceiverOptions | undefined): Required<ReceiverOptions> {
  const o = readOptions(where, opts);
  return {
    backpressure: o.oneOf("backpressure", BACKPRESSURE_POLICIES, "block"),
    spinMicros: o.spin("spinMicros", 0),
    adaptiveSpin: o.bool("adaptiveSpin", true),
    anticipate: o.bool("anticipate", false),
    timeout: o.timeout("timeout", Infinity),
  };
}
