/**
 * A publisher: one topic, one encode per message, one copy into shared memory whatever the
 * number of subscriber processes, the value itself to subscribers in its own thread.
 * @module
 */
import { ClosedError, PlexusError } from "../errors.js";
import type { GraphClient } from "../graph/client.js";
import { self } from "../graph/identity.js";
import type { Endpoints } from "../graph/registry.js";
import { ShmSender } from "../transport/shm.js";
import type { Loan } from "../transport/transport.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { LocalDelivery } from "./local.js";
import { prepare } from "./wire.js";

/** Options of `node.publisher()`. */
export interface PublisherOptions {
  /** Shared-memory ring capacity in bytes (default 4 MiB; the largest message is half). */
  capacity?: number;
  /** Default timeout of `publish` in ms while a blocking subscriber is full (default 5000). */
  timeout?: number;
  /** Offer only this transport to subscribers (tests, benchmarks). */
  transport?: "inproc" | "shm";
}

/** A publisher on a topic. `await using pub = await node.publisher("topic")`. */
export class Publisher<T = unknown> implements AsyncDisposable {
  /** Topic. */
  readonly topic: string;
  /** Port id in the graph. */
  readonly id: string;
  private seq = 1;
  private closing: Promise<void> | undefined;

  /** @internal */
  constructor(
    topic: string,
    id: string,
    private readonly graph: GraphClient,
    private readonly shm: ShmSender | undefined,
    /** @internal */ readonly local: LocalDelivery<T>,
    private readonly timeout: number,
    private readonly onClose: () => void,
  ) {
    this.topic = topic;
    this.id = id;
  }

  /** @internal Creates the ring (unless `transport: "inproc"`), registers the port. */
  static async create<T>(graph: GraphClient, topic: string, opts: PublisherOptions, onClose: (p: Publisher<T>) => void): Promise<Publisher<T>> {
    const id = self();
    const endpoints: Endpoints = { ...id };
    let shm: ShmSender | undefined;
    if (opts.transport !== "inproc") {
      try {
        shm = ShmSender.create({ capacity: opts.capacity ?? 4 << 20, timeout: opts.timeout });
        endpoints.shm = { name: shm.address.name, socket: shm.address.socket };
        await graph.request("segment.add", { name: shm.address.name });
      } catch (err) {
        if (!(err instanceof PlexusError) || opts.transport === "shm") throw err;
        process.emitWarning(`plexus: no shared memory for publisher on ${JSON.stringify(topic)} (${err.message}); other processes cannot subscribe over shm`, {
          code: "PLEXUS_NO_SHM",
        });
        await shm?.close();
        shm = undefined;
        delete endpoints.shm;
      }
    }
    try {
      const { publisher } = await graph.request<{ publisher: string }>("publisher.add", { topic, endpoints });
      const ref: { pub?: Publisher<T> } = {};
      ref.pub = new Publisher<T>(topic, publisher, graph, shm, new LocalDelivery<T>(topic, publisher), opts.timeout ?? 5000, () => onClose(ref.pub as Publisher<T>));
      return ref.pub;
    } catch (err) {
      await shm?.close();
      throw err;
    }
  }

  /** Subscribers reached now (in this thread, and processes attached to the ring). */
  get subscribers(): number {
    return this.local.count + (this.shm?.receivers ?? 0);
  }

  /**
   * Publishes `value` to every subscriber. Values that cannot be encoded are rejected here
   * (`EncodeError`), not at the receivers. Waits (bounded by `timeout`, `signal`) while a
   * blocking subscriber is full.
   */
  async publish(value: T, opts: BlockingOptions = {}): Promise<void> {
    if (this.closing) throw new ClosedError(`publisher on ${JSON.stringify(this.topic)} is closed`);
    checkOptions(opts, "publish");
    const seq = this.seq++;
    const shm = this.shm;
    if (shm !== undefined && shm.receivers > 0) {
      const encoded = prepare(value, seq);
      const loan: Loan = await shm.loan(encoded.size, { timeout: opts.timeout ?? this.timeout, signal: opts.signal });
      try {
        encoded.writeTo(loan.bytes);
      } catch (err) {
        loan.abort();
        throw err;
      }
      loan.commit();
    }
    if (this.local.count > 0) await this.local.deliver(value, seq, { timeout: opts.timeout ?? this.timeout, signal: opts.signal });
  }

  /** Leaves the graph; subscribers receive what was published, then lose this publisher. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onClose();
      this.local.close();
      try {
        await this.graph.request("port.remove", { id: this.id });
      } catch {
        // the graph is gone: nothing to unregister
      }
      if (this.shm) {
        await this.shm.close();
        await this.graph.request("segment.remove", { name: this.shm.address.name }).catch(() => {});
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
