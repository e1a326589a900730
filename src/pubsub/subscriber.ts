/**
 * A subscriber: receives from every publisher upstream of its topic, each over the fastest
 * link (the value itself in the same thread, a shared-memory ring on the same host), merged
 * into one async iterable of samples.
 * @module
 */
import { ClosedError, InvalidArgumentError, PlexusError } from "../errors.js";
import type { GraphRef } from "../graph/ref.js";
import { self } from "../graph/identity.js";
import type { PublisherInfo } from "../graph/registry.js";
import { connectShm } from "../transport/shm.js";
import { connectTcp, type TcpTlsOptions } from "../transport/tcp-receiver.js";
import { PORT_TRANSPORTS, type BackpressurePolicy, type Frame, type Receiver } from "../transport/transport.js";
import { RingReceiver } from "../transport/ring-endpoints.js";
import { BACKPRESSURE_POLICIES } from "../util/async-queue.js";
import { readOptions } from "../util/options.js";
import type { BlockingOptions } from "../util/blocking.js";
import { LocalDelivery, whenDelivered } from "./local.js";
import { SampleImpl, SampleQueue, type Sample } from "./sample.js";
import { decodeFrame } from "./wire.js";
import { releasingIterator } from "../util/iterate.js";
import type { LinkTransport, SubscriberCounters } from "../graph/report.js";

/** Microtask turns the pump waits, after a delivery, for the consumer to ask for the next sample. */
const YIELD_TURNS = 16;

/** Options of `node.subscriber()`. */
export interface SubscriberOptions {
  /** What a publisher does when this subscriber is full (default `block`). */
  backpressure?: BackpressurePolicy;
  /** Samples queued before the policy applies (default 16). */
  queue?: number;
  /** Use only this transport (tests, benchmarks); publishers that cannot offer it are skipped. */
  transport?: "inproc" | "shm" | "tcp";
  /** TLS settings for publishers that serve TLS (e.g. `ca` for a private authority). */
  tls?: TcpTlsOptions;
  /** Default timeout of `receive` (ms). */
  timeout?: number;
  /** Busy-poll this many µs before sleeping on shared-memory links (default 0). */
  spinMicros?: number;
  /** Poll briefly before sleeping while messages arrive fast (shared-memory links, default true). */
  adaptiveSpin?: boolean;
  /**
   * Paced streams (a message every 0.5 ms or more, at a steady rate) on shared-memory links:
   * learn the period and poll briefly around each expected arrival instead of sleeping through
   * it: no wake-up between the publisher and this subscriber, for a share of a core (default
   * false; docs/pubsub.md, "Latency").
   */
  anticipate?: boolean;
  /**
   * Receive only from publishers of this graph: not from those a bridge holds for other hosts
   * (docs/scale-out.md). Default false.
   */
  localOnly?: boolean;
}

/** Options of `sub.forEach()`. */
export interface ForEachOptions {
  /**
   * Call the handler in the call that delivers the sample — the publisher's `publish` in this
   * thread, the read of the link from another process — whenever nothing is queued before it:
   * no promise and no turn of the event loop between a publish and its handler, as a NATS or
   * socket callback runs (default false). The handler must not throw into the publisher: a
   * throw (or a rejected promise) closes this subscriber and rejects `forEach`, as always. What
   * comes while the handler runs (it published on its own topic) or while its promise is
   * pending waits, in order, for the handler to be called as usual.
   */
  inline?: boolean;
}

/** The checked options of a subscriber, defaults filled in. */
interface Settings {
  /** What a publisher does when this subscriber is full. */
  readonly backpressure: BackpressurePolicy;
  /** Samples queued before the policy applies. */
  readonly queue: number;
  /** The only transport to use, or any. */
  readonly transport: "inproc" | "shm" | "tcp" | undefined;
  /** TLS settings for publishers that serve TLS. */
  readonly tls: TcpTlsOptions | undefined;
  /** Default timeout of `receive` (undefined: none). */
  readonly timeout: number | undefined;
  /** µs to poll before sleeping on shared-memory links. */
  readonly spinMicros: number;
  /** Adaptive polling on shared-memory links. */
  readonly adaptiveSpin: boolean;
  /** Anticipation of paced streams on shared-memory links. */
  readonly anticipate: boolean;
  /** Skip the publishers a bridge holds for other hosts. */
  readonly localOnly: boolean;
}

/** Checks the options of `node.subscriber()` (all of them, before anything is made). */
function settings(opts: SubscriberOptions | undefined): Settings {
  const o = readOptions("node.subscriber", opts);
  const timeout = opts?.timeout;
  return {
    backpressure: o.oneOf("backpressure", BACKPRESSURE_POLICIES, "block"),
    queue: o.int("queue", 16, 1, 2 ** 31 - 1),
    transport: o.oneOf("transport", PORT_TRANSPORTS, undefined),
    tls: o.object("tls", "an object of certificate options"),
    // undefined stays undefined: receive() then waits without limit
    timeout: timeout === undefined ? undefined : o.timeout("timeout", Infinity),
    spinMicros: o.spin("spinMicros", 0),
    adaptiveSpin: o.bool("adaptiveSpin", true),
    anticipate: o.bool("anticipate", false),
    localOnly: o.bool("localOnly", false),
  };
}

/** A link to one upstream publisher. */
interface Link {
  /** How it is reached. */
  readonly transport: LinkTransport;
  close(): Promise<void>;
}

/** A subscriber on a topic: `for await (const sample of sub)`. */
export class Subscriber<T = unknown> implements AsyncIterable<Sample<T>>, AsyncDisposable {
  /** Topic. */
  readonly topic: string;
  /** Port id in the graph. */
  readonly id: string;
  private readonly queue: SampleQueue<T>;
  private readonly opts: Settings;
  private readonly links = new Map<string, Link>();
  private closing: Promise<void> | undefined;
  private iterating = false;
  private bytes = 0;

  /** @internal */
  constructor(
    topic: string,
    id: string,
    private readonly graph: GraphRef,
    opts: SubscriberOptions | undefined,
    private readonly onClose: () => void,
  ) {
    this.topic = topic;
    this.id = id;
    this.opts = settings(opts);
    this.queue = new SampleQueue<T>(this.opts.queue, this.opts.backpressure);
  }

  /** Ids of the publishers this subscriber is linked to. */
  get publishers(): string[] {
    return [...this.links.keys()];
  }

  /** Counters since creation (reported to the GraphServer for `plexus top` and the dashboard). */
  get counters(): SubscriberCounters {
    return { messages: this.queue.accepted, bytes: this.bytes, drops: this.queue.dropped };
  }

  /** @internal True while a consumer waits for the next sample (everything received so far was taken), or once closed. */
  get idle(): boolean {
    return this.closing !== undefined || this.queue.starved;
  }

  /**
   * @internal A synchronous consumer beside `receive()` (undefined: none): while a `receive()`
   * waits with nothing queued, it is offered each sample in the call that delivers it (a
   * publisher's `publish` in this thread, a link's read); it takes the sample — then releases
   * it — by returning true, else the waiting `receive()` gets it. For a consumer that sends on
   * at once (the NATS bridge): no promise and no turn of the event loop between a publish and its
   * send.
   */
  set taker(fn: ((sample: Sample<T>) => boolean) | undefined) {
    this.queue.taker = fn;
  }

  /** The transport of each link, by publisher id. */
  get transports(): { publisher: string; transport: LinkTransport }[] {
    return [...this.links].map(([publisher, l]) => ({ publisher, transport: l.transport }));
  }

  /** Messages dropped for this subscriber (policy `drop-oldest`) since the last call. */
  takeMissed(): number {
    const n = this.queue.missed;
    this.queue.missed = 0;
    return n;
  }

  /** The next sample if one is queued, else null. */
  tryReceive(): Sample<T> | null {
    if (this.closing) throw new ClosedError("subscriber is closed");
    return this.queue.tryShift();
  }

  /** Waits for the next sample; null once the subscriber is closed. */
  receive(opts: BlockingOptions = {}): Promise<Sample<T> | null> {
    if (this.closing) return Promise.reject(new ClosedError("subscriber is closed"));
    return this.queue.shift({ timeout: opts.timeout ?? this.opts.timeout, signal: opts.signal });
  }

  /**
   * The callback form: calls `handler` with each sample, one at a time, and releases the sample
   * when the handler returns (or its promise settles). Resolves when the subscriber closes; a
   * handler that throws closes the subscriber and rejects. Not together with iteration. With
   * `inline`, the handler runs in the call that delivers the sample when nothing waits before it
   * ({@link ForEachOptions}).
   */
  async forEach(handler: (sample: Sample<T>) => void | Promise<void>, opts?: ForEachOptions): Promise<void> {
    if (typeof handler !== "function") throw new InvalidArgumentError("forEach: the handler must be a function");
    const inline = readOptions("forEach", opts).bool("inline", false);
    this.claimConsumer("forEach");
    /** The first failure of the handler (the subscriber closes, forEach rejects with it). */
    let failure: { error: unknown } | undefined;
    /** An inline call's promise, not settled yet: what comes meanwhile waits for it. */
    let pending: Promise<void> | undefined;
    /** True from an inline take until its handler returned, and while the loop runs the handler: one call at a time. */
    let running = false;
    const queue = this.queue;
    const fail = (error: unknown): void => {
      failure ??= { error };
      void this.close();
    };
    const call = (s: Sample<T>): void => {
      try {
        const r: unknown = handler(s);
        if (r !== null && (typeof r === "object" || typeof r === "function") && typeof (r as { then?: unknown }).then === "function") {
          pending = Promise.resolve(r as PromiseLike<void>).then(
            () => {
              s.release();
              pending = undefined;
            },
            (err: unknown) => {
              s.release();
              pending = undefined;
              fail(err);
            },
          );
        } else s.release();
      } catch (err) {
        s.release();
        fail(err);
      } finally {
        running = false;
      }
    };
    // Taken in the push; called once the delivery under way in this thread reached every
    // subscriber (at once from a link's read).
    const taker = (s: Sample<T>): boolean => {
      if (running || pending !== undefined || failure !== undefined) return false;
      running = true;
      whenDelivered(() => call(s));
      return true;
    };
    const before = { taker: queue.taker, busy: queue.busy };
    if (inline) {
      queue.taker = taker;
      queue.busy = () => running || pending !== undefined;
    }
    try {
      for (;;) {
        const s = await queue.shift();
        if (s === null) break;
        running = true;
        try {
          if (pending !== undefined) await pending;
          if (failure !== undefined) break;
          await handler(s);
        } catch (err) {
          fail(err);
          break;
        } finally {
          running = false;
          s.release();
        }
      }
    } finally {
      if (inline) {
        queue.taker = before.taker;
        queue.busy = before.busy;
      }
    }
    // An inline call still under way (the subscriber closed meanwhile) settles first.
    while (pending !== undefined) await pending;
    if (failure !== undefined) {
      await this.close();
      throw failure.error;
    }
  }

  private claimConsumer(how: string): void {
    if (this.iterating) throw new InvalidArgumentError(`this subscriber already has a consumer; ${how} cannot be a second one`);
    this.iterating = true;
  }

  /** Iterates samples; each is released when the loop moves on; `break` closes the subscriber. */
  [Symbol.asyncIterator](): AsyncIterator<Sample<T>> {
    this.claimConsumer("iteration");
    return releasingIterator(
      () => this.queue.shift({ timeout: this.opts.timeout }),
      () => this.close(),
    );
  }

  /** @internal Registers (again, with the same id) and links to the publishers upstream now. */
  async register(): Promise<void> {
    const { publishers } = await this.graph.client.request<{ publishers: PublisherInfo[] }>("subscriber.add", { id: this.id, topic: this.topic });
    await this.update(publishers);
  }

  /** @internal Applies a new upstream set: links new publishers, unlinks gone ones. */
  async update(publishers: PublisherInfo[]): Promise<void> {
    if (this.closing) return;
    const wanted = new Map((this.opts.localOnly ? publishers.filter((p) => p.endpoints.remote === undefined) : publishers).map((p) => [p.id, p]));
    for (const [id, link] of this.links) {
      if (!wanted.has(id)) {
        this.links.delete(id);
        await link.close();
      }
    }
    await Promise.all(
      [...wanted.values()]
        .filter((p) => !this.links.has(p.id))
        .map(async (p) => {
          const link = await this.link(p).catch((err: unknown) => {
            process.emitWarning(`plexus: cannot reach publisher ${p.id} on ${JSON.stringify(p.topic)}: ${String(err)}`, { code: "PLEXUS_LINK" });
            return undefined;
          });
          if (link === undefined) return;
          if (this.closing || this.links.has(p.id)) await link.close();
          else this.links.set(p.id, link);
        }),
    );
  }

  /** Opens the fastest link to `p` that both ends allow. */
  private async link(p: PublisherInfo): Promise<Link | undefined> {
    const me = self();
    const forced = this.opts.transport;
    const sameThread = p.endpoints.host === me.host && p.endpoints.pid === me.pid && p.endpoints.threadId === me.threadId;
    if (sameThread && (forced === undefined || forced === "inproc")) {
      // Any node's publisher of this thread, even one whose creation is still waiting for the
      // GraphServer's answer (which comes after this subscriber linked to it).
      const local = LocalDelivery.find(p.id);
      if (local) return this.attachLocal(local);
    }
    if (p.endpoints.host === me.host && p.endpoints.shm && (forced === undefined || forced === "shm")) {
      const rx = await connectShm({ kind: "shm", ...p.endpoints.shm }, {
        backpressure: this.opts.backpressure,
        spinMicros: this.opts.spinMicros,
        adaptiveSpin: this.opts.adaptiveSpin,
        anticipate: this.opts.anticipate,
      });
      return this.pump(p, rx, "shm");
    }
    if (p.endpoints.tcp && (forced === undefined || forced === "tcp")) {
      const rx = await connectTcp({ kind: "tcp", ...p.endpoints.tcp }, { backpressure: this.opts.backpressure, tls: this.opts.tls });
      return this.pump(p, rx, "tcp");
    }
    return undefined;
  }

  private attachLocal(local: LocalDelivery<unknown>): Link {
    const detach = local.attach(this.queue as SampleQueue<unknown>);
    return { transport: "inproc", close: async () => void detach() };
  }

  /** Moves frames from a transport receiver into the queue (decoded, views released with the sample). */
  private pump(p: PublisherInfo, rx: Receiver, transport: LinkTransport): Link {
    let stopped = false;
    const stop = new AbortController(); // ends a push waiting for room in a full queue
    // A ring is read without a promise when a frame is ready. It is polled (its spin budget:
    // adaptive, only while messages come faster than a wake-up, or `spinMicros`) only while
    // the consumer waits for a sample: polling blocks the thread, and while the consumer still
    // has work (the answer the peer waits for) it would only delay what it polls for. Otherwise
    // the pump sleeps until the publisher rings. TCP links just wait.
    const ring = rx instanceof RingReceiver ? rx : undefined;
    const queue = this.queue;
    const pushOptions = { signal: stop.signal };
    // The ring (or socket) already applies this subscriber's policy to the publisher: a full
    // queue here only holds the link back, so a `fail` subscriber is never cut off.
    const policy = this.opts.backpressure === "fail" ? "block" : this.opts.backpressure;
    const done = (async () => {
      try {
        for (;;) {
          let frame: Frame | null = null;
          if (ring) {
            frame = queue.starved ? ring.trySpinReceive() : ring.tryReceive();
            frame ??= await ring.sleepReceive();
          } else frame = await rx.receive();
          if (frame === null || stopped) {
            frame?.release();
            break;
          }
          const bytes = frame.bytes;
          this.bytes += bytes.length;
          let sample: Sample<T>;
          try {
            const { sequence, value } = decodeFrame(bytes);
            sample = new SampleImpl(value as T, p.topic, sequence, p.id, frame);
          } catch (err) {
            frame.release();
            if (err instanceof PlexusError) continue; // a malformed frame: skip it, keep serving
            throw err;
          }
          const taken = queue.taken;
          const waiting = queue.push(sample, pushOptions, policy);
          if (waiting) await waiting;
          else if (ring && queue.taken !== taken) {
            // A taker sent it on in the push: let what it left for a microtask (the NATS client's
            // socket write) run before the poll below blocks the thread.
            await undefined;
          } else if (ring && !queue.starved) {
            // Let the consumer handle what it has (and send what it sends) until it asks for
            // more: a few microtask turns cover the usual chains (resolve -> iterator -> loop
            // body -> next) without a trip round the event loop. Then the poll above is worth it.
            for (let i = 0; i < YIELD_TURNS && !queue.starved; i++) await undefined;
          }
          const skipped = rx.takeMissed(); // a leaky ring reader skipped some
          if (skipped > 0) {
            this.queue.missed += skipped;
            this.queue.dropped += skipped;
          }
        }
      } catch {
        // the publisher died or left: the graph will tell us to unlink it
      }
    })();
    return {
      transport,
      close: async () => {
        stopped = true;
        stop.abort();
        await rx.close();
        await done;
      },
    };
  }

  /** Leaves the graph and every link; queued samples are released. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onClose();
      this.queue.clear();
      await Promise.all([...this.links.values()].map((l) => l.close()));
      this.links.clear();
      await this.graph.client.request("port.remove", { id: this.id }).catch(() => {});
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
