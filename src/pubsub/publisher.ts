/**
 * A publisher: one topic, one encode per message, one copy into shared memory whatever the
 * number of subscriber processes, the value itself to subscribers in its own thread.
 * @module
 */
import { ClosedError, InvalidArgumentError, PlexusError, TimeoutError } from "../errors.js";
import type { GraphRef } from "../graph/ref.js";
import { self } from "../graph/identity.js";
import type { Endpoints } from "../graph/registry.js";
import { ShmSender } from "../transport/shm.js";
import { TcpSender } from "../transport/tcp.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import type { Loan } from "../transport/transport.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { Deferred } from "../util/wait.js";
import { DEFAULT_LINGER, Linger, requestedLinger, type CloseOptions } from "../util/linger.js";
import { LocalDelivery } from "./local.js";
import { prepare, RAW_PREFIX, writeRawHeaders, type Prepared } from "./wire.js";
import { checkEncodable } from "../codec/index.js";
import type { PublisherCounters } from "../graph/report.js";
import { MAX_TIMER_MS, readOptions } from "../util/options.js";
import { MAX_CAPACITY } from "../ring/layout.js";
import { MIN_WINDOW } from "../transport/tcp-wire.js";
import { PORT_TRANSPORTS } from "../transport/transport.js";

/** Options of `node.publisher()`. */
export interface PublisherOptions {
  /** Shared-memory ring capacity in bytes (default 4 MiB; the largest message is half). */
  capacity?: number;
  /** Default timeout of `publish` in ms while a blocking subscriber is full (default 5000). */
  timeout?: number;
  /** Offer only this transport to subscribers (tests, benchmarks). */
  transport?: "inproc" | "shm" | "tcp";
  /**
   * Where subscribers on other hosts (or without shared memory) connect: `host` (default
   * 127.0.0.1: this host only), `port` (default any), `tls` (required off loopback unless
   * `allowInsecure`). `false`: no TCP endpoint.
   */
  tcp?: false | { host?: string; port?: number; tls?: TcpTlsOptions; allowInsecure?: boolean };
  /**
   * `close()` waits this long (ms, default 2000) for TCP subscribers to take what was published
   * to them; those that have not (a stopped or stuck process) are then cut off, with a process
   * warning (`PLEXUS_LINGER`). Shared-memory and same-thread subscribers need no wait: what was
   * published stays readable in the ring.
   */
  linger?: number;
}

/** What {@link Publisher.publish} returns when it published in the call (one settled promise, shared). */
const PUBLISHED: Promise<void> = Promise.resolve();

/** A publisher on a topic. `await using pub = await node.publisher("topic")`. */
export class Publisher<T = unknown> implements AsyncDisposable {
  /** Topic. */
  readonly topic: string;
  /** Port id in the graph. */
  readonly id: string;
  /** Counters since creation (reported to the GraphServer for `plexus top` and the dashboard). */
  readonly counters: PublisherCounters = { messages: 0, bytes: 0, waits: 0 };
  private seq = 1;
  private loanOpen = false;
  private closing: Promise<void> | undefined;

  /** @internal */
  constructor(
    topic: string,
    id: string,
    private readonly graph: GraphRef,
    private readonly endpoints: Endpoints,
    private readonly shm: ShmSender | undefined,
    private readonly tcp: TcpSender | undefined,
    /** @internal */ readonly local: LocalDelivery<T>,
    private readonly timeout: number,
    private readonly onClose: () => void,
    /** How long `close()` waits (ms). */
    private readonly linger: number,
  ) {
    this.topic = topic;
    this.id = id;
  }

  /** @internal Creates the ring (unless `transport: "inproc"`), registers the port. */
  static async create<T>(graph: GraphRef, id: string, topic: string, opts: PublisherOptions | undefined, onClose: (p: Publisher<T>) => void, remote?: string): Promise<Publisher<T>> {
    const o = readOptions("node.publisher", opts);
    // Checked before anything is made: a bad option is one InvalidArgumentError, never a fallback.
    const capacity = o.int("capacity", 4 << 20, MIN_WINDOW, MAX_CAPACITY);
    const timeout = o.timeout("timeout", 5000);
    const transport = o.oneOf("transport", PORT_TRANSPORTS, undefined);
    const t = o.section("tcp", "host, port, tls, allowInsecure");
    const tcpOptions = t && { host: t.string("host", 1), port: t.int("port", 0, 0, 65535), tls: t.object("tls", "an object of certificate options"), allowInsecure: t.bool("allowInsecure", false) };
    const linger = o.number("linger", DEFAULT_LINGER, 0, MAX_TIMER_MS);
    const endpoints: Endpoints = { ...self(), ...(remote !== undefined ? { remote } : {}) };
    let shm: ShmSender | undefined;
    let tcp: TcpSender | undefined;
    if (transport !== "inproc" && transport !== "tcp") {
      try {
        shm = ShmSender.create({ capacity, timeout });
        endpoints.shm = { name: shm.address.name, socket: shm.address.socket };
        await graph.client.request("segment.add", { name: shm.address.name });
      } catch (err) {
        // No shared memory here (no /dev/shm, no room): TCP serves instead. Anything else is thrown.
        await shm?.close();
        shm = undefined;
        delete endpoints.shm;
        if (!(err instanceof PlexusError) || err instanceof InvalidArgumentError || transport === "shm") throw err;
        process.emitWarning(`plexus: no shared memory for the publisher on ${JSON.stringify(topic)} (${err.message}); subscribers fall back to TCP`, {
          code: "PLEXUS_NO_SHM",
        });
      }
    }
    const local = new LocalDelivery<T>(topic, id); // found by this thread's subscribers from now on
    try {
      if (transport !== "inproc" && transport !== "shm" && tcpOptions !== false) {
        tcp = await TcpSender.create({ ...tcpOptions, capacity, timeout, linger });
        tcp.label = `the publisher on ${JSON.stringify(topic)}`;
        endpoints.tcp = { host: tcp.address.host, port: tcp.address.port, tls: tcp.address.tls };
      }
      await graph.client.request("publisher.add", { id, topic, endpoints });
      const ref: { pub?: Publisher<T> } = {};
      ref.pub = new Publisher<T>(topic, id, graph, endpoints, shm, tcp, local, timeout, () => onClose(ref.pub as Publisher<T>), linger);
      return ref.pub;
    } catch (err) {
      local.close();
      await shm?.close();
      await tcp?.close();
      throw err;
    }
  }

  /** Subscribers reached now (in this thread, and processes attached to the ring). */
  get subscribers(): number {
    return this.local.count + (this.shm?.receivers ?? 0) + (this.tcp?.receivers ?? 0);
  }

  /**
   * Resolves with {@link subscribers} once at least `count` (default 1) subscribers are reached:
   * start publishing when the other side is ready, instead of polling `subscribers`. Rejects
   * with `TimeoutError` after `timeout` ms (default: no limit), `AbortError` when `signal`
   * aborts, `ClosedError` if the publisher closes meanwhile. (The count is looked at every 2 ms.)
   */
  async waitForSubscribers(count = 1, opts: BlockingOptions = {}): Promise<number> {
    if (!Number.isInteger(count) || count < 0) throw new InvalidArgumentError(`waitForSubscribers: count must be a non-negative integer, got ${String(count)}`);
    checkOptions(opts, "waitForSubscribers");
    const closed = (): ClosedError => new ClosedError(`publisher on ${JSON.stringify(this.topic)} is closed`);
    if (this.closing) throw closed();
    if (this.subscribers >= count) return this.subscribers;
    const wait = new Deferred<number>(
      {
        timeout: opts.timeout,
        signal: opts.signal,
        what: "waitForSubscribers",
        timeoutError: () => new TimeoutError(`${this.subscribers} of ${count} subscribers on ${JSON.stringify(this.topic)} after ${String(opts.timeout)} ms`),
      },
      undefined,
    );
    const look = setInterval(() => {
      if (this.closing) wait.reject(closed());
      else if (this.subscribers >= count) wait.resolve(this.subscribers);
    }, 2);
    try {
      return await wait.promise;
    } finally {
      clearInterval(look);
    }
  }

  /**
   * Publishes `value` to every subscriber. Values that cannot be encoded are rejected here with
   * `EncodeError`, whoever is subscribed: with subscribers in other processes the value is
   * encoded (and so checked whole); otherwise it is checked without encoding (the value itself
   * and its first `CHECK_BUDGET` contained values, docs/pubsub.md), and subscribers of this
   * thread receive it itself. Waits (bounded by `timeout`, `signal`) while a blocking
   * subscriber is full.
   */
  publish(value: T, opts?: BlockingOptions): Promise<void> {
    // The usual case, done in this call (nobody makes it wait): no async frame of its own.
    try {
      const now = this.publishNow(value, opts);
      return now === true ? PUBLISHED : this.publishWaiting(value, opts, now);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@link publish} when a subscriber makes it wait, or is reached over TCP; `encoded`: the value, encoded already. */
  private async publishWaiting(value: T, opts: BlockingOptions | undefined, encoded: Prepared | undefined): Promise<void> {
    const shm = this.shm !== undefined && this.shm.receivers > 0 ? this.shm : undefined;
    const tcp = this.tcp !== undefined && this.tcp.receivers > 0 ? this.tcp : undefined;
    // Encoded once, whatever the number of links; without a link that encodes, what the
    // encoding would refuse is refused all the same. A refused value takes no sequence number.
    if (shm || tcp) encoded ??= prepare(value, this.seq);
    else if (encoded === undefined) checkEncodable(value);
    else encoded = undefined; // the ring's readers left meanwhile: checked (encoded), nothing to write
    const seq = this.seq++;
    const counters = this.counters;
    if (encoded) {
      counters.bytes += encoded.size;
      if (shm) {
        // Room now: written in place, nothing allocated; else wait for a loan.
        const at = shm.tryReserve(encoded.size);
        if (at >= 0) writeReserved(shm, at, encoded);
        else {
          counters.waits++;
          writeLoan(await shm.loan(encoded.size, this.waiting(opts)), encoded);
        }
      }
      if (tcp) writeLoan(await tcp.loan(encoded.size, this.waiting(opts)), encoded);
    }
    if (this.local.count > 0) {
      // Room at every subscriber of this thread (the usual case): handed over now, no promise.
      if (this.local.roomNow()) this.local.deliverNow(value, seq);
      else {
        counters.waits++;
        await this.local.deliver(value, seq, this.waiting(opts));
      }
    }
    counters.messages++;
  }

  /**
   * Publishes `value` now if no subscriber makes it wait, without a promise: true once
   * published; false, with nothing published, while a blocking subscriber (in this thread, or
   * over a full shared-memory ring) is full, or when a subscriber is reached over TCP (whose
   * send waits for its window) — then {@link publish} waits for them. Throws as `publish`
   * rejects: `ClosedError`, `EncodeError`, `BackpressureError` (a full `fail` subscriber in
   * this thread: nobody receives the value, not even over shared memory), `InvalidArgumentError`
   * (a loan is open).
   */
  tryPublish(value: T): boolean {
    return this.publishNow(value) === true;
  }

  /**
   * {@link tryPublish}'s work (and `opts` checked, for `publish`): true once published; else
   * nothing is published and what comes back is for the waiting publish — the value encoded
   * already (a full ring), or undefined. A `fail` subscriber of this thread that is full when
   * the publish starts refuses first, before the value is looked at and whatever the other
   * links: nobody receives it.
   */
  private publishNow(value: T, opts?: BlockingOptions): true | Prepared | undefined {
    if (this.closing) throw new ClosedError(`publisher on ${JSON.stringify(this.topic)} is closed`);
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    if (opts !== undefined) checkOptions(opts, "publish");
    const local = this.local.count > 0 ? this.local : undefined;
    if (local !== undefined && !local.roomNow()) return undefined;
    if (this.tcp !== undefined && this.tcp.receivers > 0) return undefined;
    const shm = this.shm !== undefined && this.shm.receivers > 0 ? this.shm : undefined;
    const counters = this.counters;
    if (shm) {
      const encoded = prepare(value, this.seq);
      const at = shm.tryReserve(encoded.size);
      if (at < 0) return encoded;
      writeReserved(shm, at, encoded);
      counters.bytes += encoded.size;
    } else checkEncodable(value);
    const seq = this.seq++;
    if (local !== undefined) local.deliverNow(value, seq);
    counters.messages++;
    return true;
  }

  /** The options of a wait inside `publish` (the publisher's timeout unless `opts` has one). */
  private waiting(opts: BlockingOptions | undefined): BlockingOptions {
    return { timeout: opts?.timeout ?? this.timeout, signal: opts?.signal };
  }

  /**
   * Lends `size` bytes to write a `Uint8Array` message in place: fill `loan.bytes`, then
   * `commit(length?)` publishes it (subscribers receive a `Uint8Array`), `abort()` drops it.
   * When processes subscribe, the bytes are the shared-memory ring itself: no copy at all.
   * Subscribers in this thread receive a copy (the ring space is reused once processes release it).
   */
  async loan(size: number, opts: BlockingOptions = {}): Promise<Loan> {
    if (this.closing) throw new ClosedError(`publisher on ${JSON.stringify(this.topic)} is closed`);
    checkOptions(opts, "loan");
    if (!Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`loan size must be a non-negative integer, got ${size}`);
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    const wait = { timeout: opts.timeout ?? this.timeout, signal: opts.signal };
    this.loanOpen = true;
    let ring: Loan | undefined;
    try {
      // Room is taken now, for same-thread subscribers and in the ring: commit then delivers at once.
      if (this.local.full) this.counters.waits++;
      await this.local.ready(wait);
      const shm = this.shm !== undefined && this.shm.receivers > 0 ? this.shm : undefined;
      if (shm) ring = shm.tryLoan(RAW_PREFIX + size) ?? (this.counters.waits++, await shm.loan(RAW_PREFIX + size, wait));
    } catch (err) {
      this.loanOpen = false;
      throw err;
    }
    const bytes = ring ? ring.bytes.subarray(RAW_PREFIX, RAW_PREFIX + size) : new Uint8Array(size);
    let open = true;
    return {
      bytes,
      commit: (length = size) => {
        if (!open) throw new ClosedError("loan already ended");
        if (!Number.isInteger(length) || length < 0 || length > size) throw new InvalidArgumentError(`commit length must be in 0..${size}`);
        open = this.loanOpen = false;
            const seq = this.seq++;
        const payload = bytes.subarray(0, length);
        if (ring) {
          writeRawHeaders(ring.bytes, seq, length);
          ring.commit(RAW_PREFIX + length);
          this.counters.bytes += RAW_PREFIX + length;
        }
        this.counters.messages++;
        if (this.local.count > 0) this.local.deliverNow((ring ? payload.slice() : payload) as T, seq);
      },
      abort: () => {
        if (!open) return;
        open = this.loanOpen = false;
        ring?.abort();
      },
    };
  }

  /** @internal Registers this publisher again, with the same id (after the GraphServer was replaced). */
  async register(): Promise<void> {
    const client = this.graph.client;
    if (this.shm) await client.request("segment.add", { name: this.shm.address.name });
    await client.request("publisher.add", { id: this.id, topic: this.topic, endpoints: this.endpoints });
  }

  /**
   * Leaves the graph; subscribers receive what was published, then lose this publisher. Waits
   * (at most `linger` ms: the option, or `opts.linger`; 0: not at all) for TCP subscribers to
   * take what was published to them; those still connected then are cut off, with a process
   * warning (`PLEXUS_LINGER`). Idempotent; a later call with a shorter `linger` shortens the wait.
   */
  close(opts?: CloseOptions): Promise<void> {
    let linger: number | undefined;
    try {
      linger = requestedLinger(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closing !== undefined) {
      if (linger !== undefined) void this.tcp?.close({ linger }); // a shorter wait for the TCP subscribers
      return this.closing;
    }
    const ms = linger ?? this.linger;
    this.closing = (async () => {
      this.onClose();
      this.local.close();
      // Leaving the graph is confirmed once every subscriber applied it, which a stopped
      // subscriber process delays (up to the GraphServer's notifyTimeout): waited for at most
      // the linger, like the TCP subscribers, at the same time.
      const left = new Linger(ms);
      void this.graph.client
        .request("port.remove", { id: this.id })
        .catch(() => {}) // the graph is gone: nothing to unregister
        .then(() => left.end());
      await Promise.all([left.ended, this.tcp?.close({ linger: ms })]);
      if (this.shm) {
        await this.shm.close();
        await this.graph.client.request("segment.remove", { name: this.shm.address.name }).catch(() => {});
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Writes `encoded` into the ring memory `shm` reserved at `at`, then publishes it (or drops the reservation). */
function writeReserved(shm: ShmSender, at: number, encoded: Prepared): void {
  try {
    encoded.writeTo(shm.ringBytes, at);
  } catch (err) {
    shm.abortReserved();
    throw err;
  }
  shm.commitReserved(encoded.size);
}

/** Fills a loan with an encoded message and publishes it (or gives it back on failure). */
function writeLoan(loan: Loan, encoded: Prepared): void {
  try {
    encoded.writeTo(loan.bytes);
  } catch (err) {
    loan.abort();
    throw err;
  }
  loan.commit();
}
