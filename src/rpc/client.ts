/**
 * A request/response client: links to every server of its service (the value itself in the
 * same thread, shared-memory rings on the host, TCP/TLS across hosts: see links.ts), keeps up to
 * `maxInFlight` requests in flight, sends each to the server with the fewest in flight (ties in
 * turn), and correlates answers by request id, in whatever order they come.
 * @module
 */
import { performance } from "node:perf_hooks"; // the module's, not the global: that one is a getter on every use
import { AbortError, ClosedError, InvalidArgumentError, NoServerError, PeerDeadError, PlexusError, ProtocolError, TimeoutError } from "../errors.js";
import type { ServerInfo } from "../graph/registry.js";
import type { GraphRef } from "../graph/ref.js";
import type { ClientCounters, LinkTransport } from "../graph/report.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { PORT_TRANSPORTS } from "../transport/transport.js";
import { MAX_CAPACITY } from "../ring/layout.js";
import { readOptions } from "../util/options.js";
import { checkOptions, checkTimeout, type BlockingOptions } from "../util/blocking.js";
import { WaitList, whenAborted } from "../util/wait.js";
import type { Channel, Releasable } from "./channel.js";
import type { OpenOptions } from "./handshake.js";
import { answerOf, askLocal, Filler, forget, Mode, openLink, remember, serverName, type Link, type ServerLookup, type Settle } from "./links.js";
import { PendingTable } from "./pending.js";
import { DEFAULT_HEARTBEAT, DEFAULT_PEER_TIMEOUT, Heartbeats } from "./tcp-channel.js";
import { DEFAULT_MAX_MESSAGE, DEFAULT_RPC_CAPACITY, MAX_MESSAGE_SIZE, MIN_RPC_CAPACITY } from "./server.js";
import { checkHeader, get32, rawBody, RPC_HEADER, RpcType, valueBody } from "./wire.js";

export type { ServerLookup } from "./links.js";


/** Options of `node.client()`. */
export interface ClientOptions {
  /** Requests in flight at once, over all servers (default 16); more wait, bounded by their timeout and signal. */
  maxInFlight?: number;
  /**
   * Default timeout of a request, ms (default 5000), including the wait for an in-flight slot;
   * counted from when the request was written (after its encoding), or from when it started
   * waiting for a slot.
   */
  timeout?: number;
  /** Use only this transport (tests, benchmarks); servers that cannot offer it are skipped. */
  transport?: "inproc" | "shm" | "tcp";
  /** Capacity of each request ring in bytes (default 1 MiB; the largest request is half). */
  capacity?: number;
  /** Largest message accepted over TCP (default 64 MiB). */
  maxMessageSize?: number;
  /** TLS settings for servers that serve TLS (e.g. `ca` for a private authority). */
  tls?: TcpTlsOptions;
  /** Connect (handshake) timeout per server, ms (default 5000). */
  connectTimeout?: number;
  /** Busy-poll this many µs on response rings before sleeping (default 0). */
  spinMicros?: number;
  /** tcp links: write at least this often, a heartbeat when there is nothing else to send (ms, default 1000). */
  heartbeat?: number;
  /**
   * tcp links: a server silent this long (ms, default 10000; at least 3 of the heartbeats it
   * announced) is dead — its requests in flight reject with `PeerDeadError` and its link is dropped.
   */
  peerTimeout?: number;
  /**
   * Send only to servers of this graph: not to those a bridge holds for services of other hosts
   * (docs/scale-out.md). Default false.
   */
  localOnly?: boolean;
}

/**
 * The answer of an in-place request: `bytes` is the response where the server left it — in
 * the request's own shared memory, no copy. The server keeps that memory reserved until
 * `release()` (or `using`); release it promptly, the request ring cannot reuse it before.
 */
export interface InPlaceResponse extends Disposable {
  /** The response bytes (writable view; valid until released). */
  readonly bytes: Uint8Array;
  /** Gives the memory back to the ring. Idempotent. */
  release(): void;
}

/** A request in flight (or being set up). */
interface Pending {
  /** Request id. */
  readonly id: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  link: Link;
  mode: Mode;
  deadline: number;
  /** Its timeout (ms), for the message when it passes. */
  timeout: number;
  signal: AbortSignal | undefined;
  /** Stops watching `signal` (see `whenAborted`). */
  unwatch: (() => void) | undefined;
  /** In-place over shm: where the request body was written, for the channel's `ownView` (-1: not there). */
  at: number;
  /** In-place: the request body's size (the answer lies within it). */
  size: number;
  /** In-place over shm: the channel's pin on that memory (-1: none). */
  pin: number;
  /** Ended (answered or failed). */
  settled: boolean;
  /** When it was sent (performance.now()). */
  sentAt: number;
  /** Its round trip is timed (see `ClientCounters.timed`). */
  timed: boolean;
  /** Writing it failed (set up first, then rejected with this). */
  failure: Error | undefined;
}

/** A request's round trip is timed when this many ms passed since the last timed one was sent. */
const TIMING_MS = 1;

/** The options of a call that passed none (checked once, not per call). */
const NO_OPTIONS: BlockingOptions = Object.freeze({});

/** A client of a service: `await using client = await node.client("resize")`. */
export class Client<Req = unknown, Res = unknown> implements AsyncDisposable {
  /** Service name. */
  readonly service: string;
  /** Port id in the graph. */
  readonly id: string;
  private readonly links = new Map<string, Link>();
  /** Links that take requests, for picking. */
  private ready: Link[] = [];
  private readonly pending: PendingTable<Pending>;
  /** Requests waiting for an in-flight slot. */
  private readonly waiters = new WaitList<void>();
  private readonly max: number;
  private readonly timeout: number;
  /** The only transport to use (`transport` option), or any. */
  private readonly transport: "inproc" | "shm" | "tcp" | undefined;
  private readonly open: OpenOptions;
  private readonly localOnly: boolean;
  private turn = 0;
  /** Slots given to waiters whose request has not started yet. */
  private reserved = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private closing: Promise<void> | undefined;
  /** Traffic counters, reported to the GraphServer by the node (`stats.report`). */
  readonly counters: ClientCounters = { requests: 0, errors: 0, bytes: 0, latency: 0, timed: 0 };
  /** When the last timed request was sent (performance.now()). */
  private timedAt = -Infinity;
  /** {@link settle}, for the answers of local links (made once, not per request). */
  private readonly settleLocal: Settle = (id, error, value) => this.settle(id, error, value);

  /** @internal */
  constructor(
    service: string,
    id: string,
    private readonly graph: GraphRef,
    opts: ClientOptions | undefined,
    private readonly local: ServerLookup,
    private readonly onClose: () => void,
  ) {
    this.service = service;
    this.id = id;
    const o = readOptions("node.client", opts);
    this.max = o.int("maxInFlight", 16, 1, 65536);
    this.pending = new PendingTable<Pending>(this.max);
    this.transport = o.oneOf("transport", PORT_TRANSPORTS, undefined);
    this.timeout = o.timeout("timeout", 5000);
    this.localOnly = o.bool("localOnly", false);
    this.open = {
      timeout: o.timeout("connectTimeout", 5000),
      capacity: o.int("capacity", DEFAULT_RPC_CAPACITY, MIN_RPC_CAPACITY, MAX_CAPACITY),
      maxMessage: o.int("maxMessageSize", DEFAULT_MAX_MESSAGE, 64, MAX_MESSAGE_SIZE),
      tls: o.object("tls", "an object of certificate options"),
      spinMicros: o.spin("spinMicros", undefined),
      heartbeats: new Heartbeats(o.ms("heartbeat", DEFAULT_HEARTBEAT), o.ms("peerTimeout", DEFAULT_PEER_TIMEOUT)),
    };
  }

  /** Ids of the servers this client sends to now. */
  get servers(): string[] {
    return this.ready.map((l) => l.server.id);
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** The servers this client is linked to, with the transport of each link. */
  get transports(): { server: string; transport: LinkTransport }[] {
    return this.ready.map((l) => ({ server: l.server.id, transport: l.local !== undefined ? "inproc" : (l.channel as Channel).kind }));
  }

  /**
   * Sends `request` to one server of the service and resolves with its answer (a value you
   * own). Rejects with `NoServerError` at once if no server is reachable, `RemoteError` if the
   * handler threw, `PeerDeadError` if the server died first, `TimeoutError`/`AbortError` per
   * `opts` (the timeout includes waiting for an in-flight slot), `EncodeError` for values that
   * cannot travel. On an in-place service the request must be bytes and the answer is a copy.
   */
  request(request: Req, opts: BlockingOptions = NO_OPTIONS): Promise<Res> {
    return this.submit(request, opts, Mode.Value) as Promise<Res>;
  }

  /**
   * In-place services: sends `bytes` (copied once into the request ring) and resolves with the
   * server's answer in that same memory ({@link InPlaceResponse}: release it). The client never
   * sees that memory while the server owns it. Over TCP or within one thread the answer is
   * ordinary memory (copied over the wire, or the very `bytes` given).
   */
  requestInPlace(bytes: Uint8Array, opts?: BlockingOptions): Promise<InPlaceResponse>;
  /**
   * In-place services, no copy at all: `fill` writes the `size`-byte request straight into the
   * request ring (over shm) and must not keep `bytes` — the view is the server's once `fill`
   * returns. `fill` runs once, when there is room (at once, or later if the ring is full); if it
   * throws, the request rejects with that error.
   */
  requestInPlace(size: number, fill: (bytes: Uint8Array) => void, opts?: BlockingOptions): Promise<InPlaceResponse>;
  requestInPlace(a: Uint8Array | number, b?: BlockingOptions | ((bytes: Uint8Array) => void), c?: BlockingOptions): Promise<InPlaceResponse> {
    if (typeof a === "number") {
      if (!Number.isInteger(a) || a < 0) return Promise.reject(new InvalidArgumentError(`size must be a non-negative integer, got ${a}`));
      if (typeof b !== "function") return Promise.reject(new InvalidArgumentError("requestInPlace(size, fill): fill must be a function"));
      return this.submit(new Filler(a, b), c ?? NO_OPTIONS, Mode.InPlace) as Promise<InPlaceResponse>;
    }
    return this.submit(a, (b as BlockingOptions | undefined) ?? NO_OPTIONS, Mode.InPlace) as Promise<InPlaceResponse>;
  }

  private submit(value: unknown, opts: BlockingOptions, mode: Mode): Promise<unknown> {
    if (this.closing) return Promise.reject(this.closedError());
    let timeout = this.timeout;
    if (opts !== NO_OPTIONS) {
      try {
        checkOptions(opts, "request");
        timeout = checkTimeout(opts.timeout, this.timeout);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    // The fast path reads the clock after the request is written (off the round trip's path).
    if (this.pending.size + this.reserved < this.max && this.waiters.size === 0) return this.start(value, mode, timeout, NaN, opts.signal);
    const deadline = performance.now() + timeout;
    return this.waitSlot(deadline, timeout, opts.signal).then(() => {
      this.reserved--;
      return this.start(value, mode, timeout, deadline, opts.signal);
    });
  }

  /** Waits for an in-flight slot (FIFO). */
  private waitSlot(deadline: number, timeout: number, signal: AbortSignal | undefined): Promise<void> {
    return this.waiters.wait({
      timeout: Number.isFinite(timeout) ? Math.max(0, deadline - performance.now()) : undefined,
      signal,
      what: "request",
      timeoutError: () => new TimeoutError(`service ${JSON.stringify(this.service)}: no in-flight slot within ${timeout} ms (${this.max} requests in flight, option maxInFlight)`),
    });
  }

  /** Picks the server with the fewest requests in flight, starting from a rotating index. */
  private pick(): Link | undefined {
    const ls = this.ready;
    const n = ls.length;
    if (n === 0) return undefined;
    if (n === 1) return ls[0];
    const start = this.turn++ % n;
    let best = ls[start];
    for (let i = 1; i < n; i++) {
      const l = ls[(start + i) % n];
      if (l.inFlight < best.inFlight) best = l;
    }
    return best;
  }

  /**
   * Sends one request: `deadline` (performance.now() time) when it waited for a slot, NaN to
   * count `timeout` from now. The request is written before anything else is done for it —
   * the clock read, its promise, the timer — so that work overlaps the server's. The steps:
   * {@link refusal} (none for a request that can go), {@link write} (channel links), {@link track}
   * (its promise, in the table), {@link stillborn} (failed while it was written),
   * {@link watch} (signal, timer), then {@link collect} (channel links: the answer, in this turn
   * if it comes at once) or {@link askLocal} (local links).
   */
  private start(value: unknown, mode: Mode, timeout: number, deadline: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.closing) return Promise.reject(this.closedError());
    const link = signal?.aborted ? undefined : this.pick();
    const refused = this.refusal(link, value, mode, signal);
    if (refused !== undefined) {
      this.next();
      return Promise.reject(refused);
    }
    const l = link as Link;
    if (l.server.inPlace && mode === Mode.Value) mode = Mode.Copy;
    const p: Pending = { id: this.pending.open(), resolve: noop, reject: noop, link: l, mode, deadline, timeout, signal, unwatch: undefined, at: -1, size: 0, pin: -1, settled: false, sentAt: 0, timed: false, failure: undefined };
    const ch = l.channel;
    // Nothing can answer before this returns: the channel delivers in a later turn.
    if (ch !== undefined) this.write(p, ch, value);
    const promise = this.track(p, timeout);
    const early = this.stillborn(p, signal);
    if (early !== undefined) {
      // Written, but failing at once: its answer will still come, for the channel's reader.
      this.settle(p.id, early);
      ch?.wakeReader();
      return promise;
    }
    this.watch(p, signal);
    if (ch !== undefined) this.collect(p, ch);
    if (l.local !== undefined) askLocal(l.local, p.id, value, mode, this.settleLocal);
    return promise;
  }

  /**
   * Why a request cannot start on `link` (the pick; undefined when `signal` was aborted or no
   * server is there); undefined when it can. A request for no server counts as a failed one.
   */
  private refusal(link: Link | undefined, value: unknown, mode: Mode, signal: AbortSignal | undefined): Error | undefined {
    // Aborted after its wait for a slot ended, before it was sent (an abort listener added now would never fire).
    if (signal?.aborted) return new AbortError("request aborted", { cause: signal.reason });
    if (link === undefined) {
      this.counters.requests++;
      this.counters.errors++;
      return new NoServerError(`no server for ${JSON.stringify(this.service)}${this.transport ? ` over ${this.transport}` : ""}`);
    }
    if (link.server.inPlace) {
      if (!(value instanceof Uint8Array) && !(value instanceof Filler)) return new InvalidArgumentError(`${JSON.stringify(this.service)} is an in-place service: requests are Uint8Arrays`);
    } else if (mode === Mode.InPlace) {
      return new InvalidArgumentError(`${JSON.stringify(this.service)} is not an in-place service: use request()`);
    }
    return undefined;
  }

  /** Writes request `p` on channel `ch`; a failure is kept in `p.failure` (the request fails once it is set up). */
  private write(p: Pending, ch: Channel, value: unknown): void {
    try {
      if (p.mode === Mode.Value) {
        const body = valueBody(value);
        this.counters.bytes += RPC_HEADER + body.size;
        ch.send(RpcType.Request, p.id, 0, body);
      } else {
        const body = value instanceof Filler ? value.body((err) => this.fillFailed(p, err)) : rawBody(value as Uint8Array);
        this.counters.bytes += RPC_HEADER + body.size;
        p.size = body.size;
        ch.send(RpcType.Request, p.id, 0, body, (at, pin) => {
          // (Written late, from the queue, after it timed out: nobody will read it.)
          if (p.settled) return ch.unpin(pin);
          p.at = at;
          p.pin = pin;
        });
      }
    } catch (err) {
      p.failure = err as Error;
    }
  }

  /**
   * After the request was written: reads the clock (its send time, its deadline when it counts
   * from now), makes its promise and puts it in the table.
   */
  private track(p: Pending, timeout: number): Promise<unknown> {
    const now = performance.now();
    p.sentAt = now;
    if (now - this.timedAt >= TIMING_MS) {
      p.timed = true;
      this.timedAt = now;
    }
    if (p.deadline !== p.deadline) p.deadline = now + timeout; // NaN: count from now
    // One shared executor (no closure per request): it only stores the resolvers, read right
    // after the constructor — nothing can run in between (a promise hook that makes a request
    // runs before the executor, and leaves nothing behind that this reads).
    const promise = new Promise<unknown>(captureResolvers);
    p.resolve = capturedResolve;
    p.reject = capturedReject;
    this.pending.set(p);
    p.link.inFlight++;
    return promise;
  }

  /**
   * Why request `p`, now in the table, fails at once: writing it failed, or code that ran while
   * it was written (a `fill`, a getter the encoder read) closed this client or aborted the
   * signal — the request was not in the table yet. Undefined: it goes on.
   */
  private stillborn(p: Pending, signal: AbortSignal | undefined): Error | undefined {
    if (p.failure !== undefined) return p.failure;
    if (this.closing) return this.closedError();
    if (signal?.aborted) return new AbortError("request aborted", { cause: signal.reason });
    return undefined;
  }

  /** Ends request `p` on `signal`'s abort, and at its deadline (the one timer). */
  private watch(p: Pending, signal: AbortSignal | undefined): void {
    if (signal !== undefined) {
      const id = p.id;
      p.unwatch = whenAborted(signal, () => this.settle(id, new AbortError("request aborted", { cause: signal.reason })));
    }
    if (p.deadline < this.timerAt) this.arm(p.deadline);
  }

  /**
   * The answer of `p`, sent on `ch`: the only request in flight waits for it right here, as long
   * as the ring polls (the answer resolves the promise before it is returned). Else — or if the
   * poll brought something else, say the late answer of a request that failed — the channel's
   * reader does.
   */
  private collect(p: Pending, ch: Channel): void {
    if (this.pending.size === 1) ch.poll();
    if (!p.settled) ch.wakeReader();
  }

  /** A `requestInPlace(size, fill)` whose `fill` threw: the request fails (its bytes went anyway, unanswered). */
  private fillFailed(p: Pending, err: Error): void {
    if (this.pending.get(p.id) === p) this.settle(p.id, err);
    else p.failure ??= err; // thrown while the request was being written: failed once it is set up
  }

  /** Ends request `id` with `error` or `value`; frees its slot. */
  private settle(id: number, error: Error | undefined, value?: unknown): void {
    const p = this.pending.get(id);
    if (p !== undefined) this.end(p, error, value);
  }

  /** Ends pending request `p` (still in the table) with `error` or `value`; frees its slot. */
  private end(p: Pending, error: Error | undefined, value?: unknown): void {
    const id = p.id;
    this.pending.delete(id);
    p.settled = true;
    const link = p.link;
    // Nobody reads the request's memory any more (answered and copied out, or unanswered:
    // timed out, aborted, failed — while the server still works on it, its own hold keeps it).
    if (p.pin >= 0) link.channel?.unpin(p.pin);
    link.inFlight--;
    this.counters.requests++;
    if (error !== undefined) this.counters.errors++;
    else if (p.timed) {
      this.counters.latency += performance.now() - p.sentAt;
      this.counters.timed++;
    }
    if (p.unwatch !== undefined) p.unwatch();
    if (error !== undefined) p.reject(error);
    else p.resolve(value);
    if (link.draining && link.inFlight === 0) void link.channel?.close();
    this.next();
  }

  /** Hands free slots to the oldest waiters (reserved until their request starts). */
  private next(): void {
    while (this.waiters.size > 0 && this.pending.size + this.reserved < this.max) {
      this.reserved++;
      this.waiters.wakeOne();
    }
  }

  /** One timer for every pending request: fires at the earliest deadline. */
  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    if (!Number.isFinite(at)) return;
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.min(at - performance.now() + 1, 2 ** 31 - 1)));
    this.timer.unref(); // open links keep the process alive; a stale deadline must not
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let earliest = Infinity;
    for (const p of this.pending.entries()) {
      if (p.deadline <= now) this.settle(p.id, new TimeoutError(`service ${JSON.stringify(this.service)} did not answer within ${p.timeout} ms`));
      else if (p.deadline < earliest) earliest = p.deadline;
    }
    if (earliest < Infinity) this.arm(earliest);
  }

  /** An answer arrived on `link`. */
  private onMessage(link: Link, bytes: Uint8Array, at: number, end: number, frame: Releasable): void {
    let type;
    try {
      type = checkHeader(bytes, at, end);
      if (type === RpcType.Request) throw new ProtocolError(`a server sent message type ${type}`);
    } catch (err) {
      frame.release();
      // A broken server: its requests reject with PeerDeadError (caused by the ProtocolError).
      void link.channel?.fail(err instanceof PlexusError ? err : new ProtocolError("malformed answer", { cause: err }));
      return;
    }
    const id = get32(bytes, at + 8);
    const p = this.pending.get(id);
    if (p === undefined || p.link !== link) {
      frame.release(); // timed out or aborted meanwhile
      return;
    }
    // Answered: whatever the answer, the server is done with the request's memory, and `end`
    // unpins it — unless an in-place answer takes the pin along.
    try {
      const value = answerOf(type, p, link.channel as Channel, bytes, at, end);
      if (type === RpcType.Error) this.end(p, value as Error);
      else this.end(p, undefined, value);
    } catch (err) {
      this.settle(id, err instanceof PlexusError ? err : new ProtocolError("malformed answer", { cause: err }));
    } finally {
      frame.release();
    }
  }

  /** @internal Registers (again, with the same id) and links to the servers there are now. */
  async register(): Promise<void> {
    const { servers } = await this.graph.client.request<{ servers: ServerInfo[] }>("client.add", { id: this.id, service: this.service });
    await this.update(servers);
  }

  /** @internal Applies a new server set: links new servers, drains gone ones. */
  async update(servers: ServerInfo[]): Promise<void> {
    if (this.closing) return;
    const wanted = new Map((this.localOnly ? servers.filter((s) => s.endpoints.remote === undefined) : servers).map((s) => [s.id, s]));
    for (const [id, link] of this.links) {
      if (!wanted.has(id)) this.unlink(link);
    }
    await Promise.all(
      [...wanted.values()]
        .filter((s) => !this.links.has(s.id))
        .map(async (s) => {
          let link: Link | undefined;
          try {
            link = await this.link(s);
          } catch (err) {
            process.emitWarning(`plexus: cannot reach ${serverName(s)}: ${String(err)}`, { code: "PLEXUS_LINK" });
          }
          if (link === undefined) return;
          if (this.closing || this.links.has(s.id)) return void link.channel?.close();
          this.links.set(s.id, link);
          if (link.channel === undefined || !link.channel.closed) this.ready.push(link);
        }),
    );
  }

  /** Opens the fastest link to `s` that both ends allow; a channel link's answers and end come here. */
  private async link(s: ServerInfo): Promise<Link | undefined> {
    const link = await openLink(s, this.transport, this.local, this.open);
    const channel = link?.channel;
    if (link === undefined || channel === undefined) return link;
    channel.onMessage = (bytes, at, end, frame) => this.onMessage(link, bytes, at, end, frame);
    channel.onEnd = (error) => this.lost(link, error);
    channel.start();
    await remember(this.graph, channel);
    return link;
  }

  /** Stops sending to `link`; closes it once its requests are answered. */
  private unlink(link: Link): void {
    this.links.delete(link.server.id);
    this.ready = this.ready.filter((l) => l !== link);
    link.draining = true;
    if (link.inFlight === 0) void link.channel?.close();
  }

  /** A link's channel ended: its pending requests fail at once. */
  private lost(link: Link, error: Error | undefined): void {
    if (this.links.get(link.server.id) === link) this.links.delete(link.server.id);
    this.ready = this.ready.filter((l) => l !== link);
    // Named as the user knows it (the service, the server's process and host), the transport's error as the cause.
    const who = serverName(link.server);
    const why =
      error === undefined
        ? link.draining
          ? new PeerDeadError(`${who} left`)
          : this.closedError()
        : error instanceof PeerDeadError
          ? new PeerDeadError(`${who} died or lost its connection`, { cause: error })
          : new PeerDeadError(`${who} broke its connection: ${error.message}`, { cause: error });
    for (const p of this.pending.entries()) if (p.link === link) this.settle(p.id, why);
    const ch = link.channel;
    if (ch !== undefined) void ch.close().then(() => forget(this.graph, ch));
  }

  /** The error of a request to a closed client. */
  private closedError(): ClosedError {
    return new ClosedError(`client of ${JSON.stringify(this.service)} is closed`);
  }

  /** Leaves the graph; pending requests reject with `ClosedError`. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onClose();
      clearTimeout(this.timer);
      this.waiters.failAll(this.closedError());
      for (const p of this.pending.entries()) this.settle(p.id, this.closedError());
      const links = [...this.links.values()];
      this.links.clear();
      this.ready = [];
      await Promise.all(links.map((l) => l.channel?.close()));
      await this.graph.client.request("client.remove", { id: this.id }).catch(() => {});
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function noop(): void {}

/** The resolvers of the promise made last by {@link captureResolvers}. */
let capturedResolve: (v: unknown) => void = noop;
let capturedReject: (e: Error) => void = noop;

/** The executor of every request's promise. */
function captureResolvers(resolve: (v: unknown) => void, reject: (e: Error) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}
