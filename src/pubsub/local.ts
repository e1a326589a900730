/**
 * Delivery to subscribers in the publisher's own thread: the value itself, no encoding.
 * (Internal: not part of the public API.)
 * @module
 */
import { BackpressureError } from "../errors.js";
import type { BlockingOptions } from "../util/blocking.js";
import { SampleImpl, type SampleQueue } from "./sample.js";

/**
 * The same-thread side of every publisher of this thread, by publisher id, whatever node made
 * it. (Module state is per thread: a worker loads its own copy.)
 */
const inThread = new Map<string, LocalDelivery<unknown>>();

/**
 * While a delivery hands a value to the queues of this thread: the inline handlers that took it
 * (`forEach(..., { inline: true })`), called once every queue has it — so that a handler that
 * publishes again cannot reach the other subscribers before the value it is handling.
 */
let afterDelivery: (() => void)[] | undefined;

/**
 * Calls `call` once the delivery under way in this thread has reached every subscriber, or now
 * if none is under way.
 */
export function whenDelivered(call: () => void): void {
  if (afterDelivery !== undefined) afterDelivery.push(call);
  else call();
}

/** Runs `push` (the pushes of one delivery), then the calls it left for after it. */
function delivering(push: () => void): void {
  if (afterDelivery !== undefined) {
    push(); // nested: the outer delivery runs what this one leaves
    return;
  }
  const calls: (() => void)[] = [];
  afterDelivery = calls;
  try {
    push();
  } finally {
    afterDelivery = undefined;
    for (const call of calls) call();
  }
}

/** The subscribers of one publisher that live in its thread. */
export class LocalDelivery<T> {
  private readonly queues = new Set<SampleQueue<T>>();

  /**
   * Makes the same-thread side of the publisher `publisher` and lists it for the subscribers of
   * this thread. Made before the publisher is registered with the GraphServer: a subscriber told
   * of it (which happens before the registration is answered) must find it, or it would link
   * over shared memory instead.
   * @param topic - the publisher's topic; @param publisher - its id
   */
  constructor(
    private readonly topic: string,
    private readonly publisher: string,
  ) {
    inThread.set(publisher, this as LocalDelivery<unknown>);
  }

  /** The publisher `id` of this thread, if it is one and still open. */
  static find(id: string): LocalDelivery<unknown> | undefined {
    return inThread.get(id);
  }

  /** Number of attached subscribers. */
  get count(): number {
    return this.queues.size;
  }

  /** True if a blocking subscriber is full now (a delivery would wait). */
  get full(): boolean {
    for (const q of this.queues) if (q.policy === "block" && q.full) return true;
    return false;
  }

  /** Attaches a subscriber's queue; returns the detach function. */
  attach(queue: SampleQueue<T>): () => void {
    this.queues.add(queue);
    return () => this.queues.delete(queue);
  }

  /** Hands `value` itself to every attached queue (each applies its own backpressure policy). */
  async deliver(value: T, sequence: number, opts: BlockingOptions): Promise<void> {
    // A full `fail` subscriber fails the publish before anyone receives the message.
    for (const q of this.queues) if (q.refuses) throw this.refusal();
    let pending: Promise<void>[] | undefined;
    delivering(() => {
      for (const q of this.queues) {
        const waiting = q.push(new SampleImpl(value, this.topic, sequence, this.publisher, undefined), opts);
        if (waiting) (pending ??= []).push(waiting);
      }
    });
    if (pending) await Promise.all(pending);
  }

  /**
   * True if every attached queue takes a sample now without waiting (false: a full `block`
   * queue); a full `fail` queue throws `BackpressureError`, as {@link deliver} does. Then
   * {@link deliverNow} delivers without anyone waiting.
   */
  roomNow(): boolean {
    let room = true;
    for (const q of this.queues) {
      if (q.refuses) throw this.refusal(); // whichever queue comes first: a refusal wins over a wait
      if (q.policy === "block" && q.full) room = false;
    }
    return room;
  }

  /**
   * Waits until every attached queue takes a sample without waiting (a full `fail` queue
   * throws `BackpressureError`): what a loan does before it lends, so its commit can deliver at once.
   */
  async ready(opts: BlockingOptions): Promise<void> {
    for (const q of this.queues) {
      if (q.refuses) throw this.refusal();
      if (q.policy === "block") await q.waitForRoom(opts);
    }
  }

  /** Hands `value` to every queue now; after {@link ready} (or {@link roomNow}) nobody has to wait. */
  deliverNow(value: T, sequence: number): void {
    delivering(() => {
      for (const q of this.queues) void q.push(new SampleImpl(value, this.topic, sequence, this.publisher, undefined), {}, "drop-oldest");
    });
  }

  /** What a full `fail` subscriber makes a delivery throw. */
  private refusal(): BackpressureError {
    return new BackpressureError(`a subscriber of ${JSON.stringify(this.topic)} is full (policy "fail")`);
  }

  /** Detaches everyone; subscribers of this thread no longer find it. */
  close(): void {
    this.queues.clear();
    if (inThread.get(this.publisher) === this) inThread.delete(this.publisher);
  }
}
