/**
 * Delivery to subscribers in the publisher's own thread: the value itself, no encoding.
 * @internal
 * @module
 */
import { BackpressureError } from "../errors.js";
import type { BlockingOptions } from "../util/blocking.js";
import { SampleImpl, type SampleQueue } from "./sample.js";

/** The subscribers of one publisher that live in its thread. */
export class LocalDelivery<T> {
  private readonly queues = new Set<SampleQueue<T>>();

  /** @param topic - the publisher's topic; @param publisher - its id */
  constructor(
    private readonly topic: string,
    private readonly publisher: string,
  ) {}

  /** Number of attached subscribers. */
  get count(): number {
    return this.queues.size;
  }

  /** Attaches a subscriber's queue; returns the detach function. */
  attach(queue: SampleQueue<T>): () => void {
    this.queues.add(queue);
    return () => this.queues.delete(queue);
  }

  /** Hands `value` itself to every attached queue (each applies its own backpressure policy). */
  async deliver(value: T, sequence: number, opts: BlockingOptions): Promise<void> {
    // A full `fail` subscriber fails the publish before anyone receives the message.
    for (const q of this.queues) if (q.refuses) throw new BackpressureError(`a subscriber of ${JSON.stringify(this.topic)} is full (policy "fail")`);
    let pending: Promise<void>[] | undefined;
    for (const q of this.queues) {
      const waiting = q.push(new SampleImpl(value, this.topic, sequence, this.publisher, undefined), opts);
      if (waiting) (pending ??= []).push(waiting);
    }
    if (pending) await Promise.all(pending);
  }

  /** Detaches everyone. */
  close(): void {
    this.queues.clear();
  }
}
