/**
 * A request/response client: links to every server of its service (the value itself in the
 * same thread, shared-memory rings on the host, TCP/TLS across hosts), keeps up to
 * `maxInFlight` requests in flight, sends each to the server with the fewest in flight (ties in
 * turn), and correlates answers by request id, in whatever order they come.
 * @module
 */
import { performance } from "node:perf_hooks"; // the module's, not the global: that one is a getter on every use
import { decode } from "../codec/index.js";
import { AbortError, ClosedError, InvalidArgumentError, NoServerError, PeerDeadError, PlexusError, ProtocolError, RemoteError, TimeoutError } from "../errors.js";
import { self } from "../graph/identity.js";
import type { ServerInfo } from "../graph/registry.js";
import type { GraphRef } from "../graph/ref.js";
import type { ClientCounters, LinkTransport } from "../graph/report.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { checkOptions, checkTimeout, type BlockingOptions } from "../util/blocking.js";
import { WaitList, whenAborted } from "../util/wait.js";
import type { Channel, Releasable } from "./channel.js";
import { openShm, openTcp, type OpenOptions } from "./handshake.js";
import { PendingTable } from "./pending.js";
import { DEFAULT_MAX_MESSAGE, DEFAULT_RPC_CAPACITY, intOption, spinOption, transportOption, type Server } from "./server.js";
import { checkHeader, decodeOwned, FLAG_RAW, get32, rawBody, RPC_HEADER, RpcType, valueBody, type Body } from "./wire.js";

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

/** How the answer of a pending request is delivered. */
const enum Mode {
  /** A decoded value (copied out of the ring if it holds buffers). */
  Value,
  /** In-place service, `request()`: the bytes, copied out. */
  Copy,
  /** In-place service, `requestInPlace()`: a view of the shared memory. */
  InPlace,
}

/** One server this client is linked to. */
interface Link {
  readonly server: ServerInfo;
  /** Requests sent here and not answered. */
  inFlight: number;
  /** shm or tcp channel; undefined for a server of this thread. */
  readonly channel: Channel | undefined;
  /** The server itself, when it lives in this thread. */
  readonly local: Server | undefined;
  /** Removed from the graph: no new requests; closed once its requests are answered. */
  draining: boolean;
}

interface Pending {
  /** Request id. */
  readonly id: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  link: Link;
  mode: Mode;
  deadline: number;
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

/** Finds servers of this thread by id (for inproc requests). */
export type ServerLookup = (id: string) => Server | undefined;

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
  private readonly open: OpenOptions;
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

  /** @internal */
  constructor(
    service: string,
    id: string,
    private readonly graph: GraphRef,
    private readonly opts: ClientOptions,
    private readonly local: ServerLookup,
    private readonly onClose: () => void,
  ) {
    this.service = service;
    this.id = id;
    this.max = intOption("maxInFlight", opts.maxInFlight, 16, 1, 65536);
    this.pending = new PendingTable<Pending>(this.max);
    transportOption(opts.transport);
    this.timeout = checkTimeout(opts.timeout, 5000);
    this.open = {
      timeout: checkTimeout(opts.connectTimeout, 5000),
      capacity: intOption("capacity", opts.capacity, DEFAULT_RPC_CAPACITY, 4096, 1 << 30),
      maxMessage: intOption("maxMessageSize", opts.maxMessageSize, DEFAULT_MAX_MESSAGE, 64, 2 ** 31),
      tls: opts.tls,
      spinMicros: spinOption(opts.spinMicros),
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
    if (this.closing) return Promise.reject(new ClosedError(`client of ${JSON.stringify(this.service)} is closed`));
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
      timeoutError: () => new TimeoutError(`request to ${JSON.stringify(this.service)}: no in-flight slot within ${timeout} ms`),
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
   * the clock read, its promise, the timer — so that work overlaps the server's.
   */
  private start(value: unknown, mode: Mode, timeout: number, deadline: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.closing) return Promise.reject(new ClosedError(`client of ${JSON.stringify(this.service)} is closed`));
    if (signal?.aborted) {
      // Aborted after its wait for a slot ended, before it was sent (an abort listener added now would never fire).
      this.next();
      return Promise.reject(new AbortError("request aborted", { cause: signal.reason }));
    }
    const link = this.pick();
    if (link === undefined) {
      this.next();
      this.counters.requests++;
      this.counters.errors++;
      return Promise.reject(new NoServerError(`no server for ${JSON.stringify(this.service)}${this.opts.transport ? ` over ${this.opts.transport}` : ""}`));
    }
    if (link.server.inPlace) {
      if (!(value instanceof Uint8Array) && !(value instanceof Filler)) {
        this.next();
        return Promise.reject(new InvalidArgumentError(`${JSON.stringify(this.service)} is an in-place service: requests are Uint8Arrays`));
      }
      if (mode === Mode.Value) mode = Mode.Copy;
    } else if (mode === Mode.InPlace) {
      this.next();
      return Promise.reject(new InvalidArgumentError(`${JSON.stringify(this.service)} is not an in-place service: use request()`));
    }
    const p: Pending = { id: this.pending.open(), resolve: noop, reject: noop, link, mode, deadline, signal, unwatch: undefined, at: -1, size: 0, pin: -1, settled: false, sentAt: 0, timed: false, failure: undefined };
    const id = p.id;
    const ch = link.channel;
    if (ch !== undefined) {
      // Nothing can answer before this returns: the channel delivers in a later turn.
      try {
        if (mode === Mode.Value) {
          const body = valueBody(value);
          this.counters.bytes += RPC_HEADER + body.size;
          ch.send(RpcType.Request, id, 0, body);
        } else {
          const body = value instanceof Filler ? value.body((err) => this.fillFailed(p, err)) : rawBody(value as Uint8Array);
          this.counters.bytes += RPC_HEADER + body.size;
          p.size = body.size;
          ch.send(RpcType.Request, id, 0, body, (at, pin) => {
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
    const now = performance.now();
    p.sentAt = now;
    if (now - this.timedAt >= TIMING_MS) {
      p.timed = true;
      this.timedAt = now;
    }
    if (deadline !== deadline) p.deadline = deadline = now + timeout; // NaN: count from now
    // One shared executor (no closure per request): it only stores the resolvers, read right
    // after the constructor — nothing can run in between (a promise hook that makes a request
    // runs before the executor, and leaves nothing behind that this reads).
    const promise = new Promise<unknown>(captureResolvers);
    p.resolve = capturedResolve;
    p.reject = capturedReject;
    this.pending.set(p);
    link.inFlight++;
    // Written, but failing at once: its answer will still come, for the channel's reader.
    if (p.failure !== undefined) {
      this.settle(id, p.failure);
      ch?.wakeReader();
      return promise;
    }
    // Code that ran while the request was written (a `fill`, a getter the encoder read) may
    // have closed this client or aborted the signal: the request was not in the table yet.
    if (this.closing) {
      this.settle(id, new ClosedError(`client of ${JSON.stringify(this.service)} is closed`));
      ch?.wakeReader();
      return promise;
    }
    if (signal?.aborted) {
      this.settle(id, new AbortError("request aborted", { cause: signal.reason }));
      ch?.wakeReader();
      return promise;
    }
    if (signal !== undefined) {
      p.unwatch = whenAborted(signal, () => this.settle(id, new AbortError("request aborted", { cause: signal.reason })));
    }
    if (deadline < this.timerAt) this.arm(deadline);
    if (ch !== undefined) {
      // The only request in flight: wait for its answer right here, as long as the ring polls
      // (the answer resolves the promise before it is returned). Else — or if the poll brought
      // something else, say the late answer of a request that failed — the channel's reader does.
      if (this.pending.size === 1) ch.poll();
      if (!p.settled) ch.wakeReader();
    }
    if (link.local !== undefined) {
      if (value instanceof Filler) {
        const bytes = new Uint8Array(value.size);
        try {
          value.fill(bytes);
        } catch (err) {
          this.settle(id, err instanceof Error ? err : new Error(String(err)));
          return promise;
        }
        value = bytes;
      }
      link.local.call(value).then(
        (v) => this.settle(id, undefined, mode === Mode.InPlace ? new InPlaceAnswer(v as Uint8Array) : mode === Mode.Copy ? (v as Uint8Array).slice() : v),
        (err: unknown) => this.settle(id, toRemote(err)),
      );
    }
    return promise;
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
      if (p.deadline <= now) this.settle(p.id, new TimeoutError(`request to ${JSON.stringify(this.service)}: no answer within the timeout`));
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
    const ch = link.channel as Channel;
    if (p === undefined || p.link !== link) {
      frame.release(); // timed out or aborted meanwhile
      return;
    }
    const raw = (bytes[at + 5] & FLAG_RAW) !== 0;
    // Answered: whatever the answer, the server is done with the request's memory, and `end`
    // unpins it — unless an in-place answer takes the pin along.
    try {
      if (type === RpcType.Error) {
        const e = decode(bytes.subarray(at + RPC_HEADER, end)) as { code?: unknown; name?: unknown; message?: unknown } | null;
        const remote = new RemoteError(
          typeof e?.message === "string" ? e.message : "the remote handler failed",
          typeof e?.code === "string" ? e.code : undefined,
          typeof e?.name === "string" ? e.name : undefined,
        );
        this.end(p, remote);
      } else if (type === RpcType.Response) {
        let value: unknown;
        if (p.mode === Mode.Value) {
          if (raw) throw new ProtocolError("raw answer to an encoded request");
          value = decodeOwned(bytes, at + RPC_HEADER, end);
        } else {
          if (!raw) throw new ProtocolError("encoded answer to an in-place request");
          const copy = bytes.slice(at + RPC_HEADER, end);
          value = p.mode === Mode.Copy ? copy : new InPlaceAnswer(copy);
        }
        this.end(p, undefined, value);
      } else {
        const aux = get32(bytes, at + 12);
        const length = end - at === RPC_HEADER + 4 ? get32(bytes, at + RPC_HEADER) : -1;
        const out = p.at < 0 || length < 0 || aux + length > p.size ? undefined : ch.ownView(p.at + aux, length);
        if (out === undefined) throw new ProtocolError("in-place answer outside the request");
        if (p.mode === Mode.Copy) {
          this.end(p, undefined, out.slice());
        } else {
          const pin = p.pin;
          p.pin = -1;
          this.end(p, undefined, new InPlaceAnswer(out, ch, pin));
        }
      }
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
    const wanted = new Map(servers.map((s) => [s.id, s]));
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
            process.emitWarning(`plexus: cannot reach server ${s.id} of ${JSON.stringify(s.service)}: ${String(err)}`, { code: "PLEXUS_LINK" });
          }
          if (link === undefined) return;
          if (this.closing || this.links.has(s.id)) return void link.channel?.close();
          this.links.set(s.id, link);
          if (link.channel === undefined || !link.channel.closed) this.ready.push(link);
        }),
    );
  }

  /** Opens the fastest link to `s` that both ends allow. */
  private async link(s: ServerInfo): Promise<Link | undefined> {
    const me = self();
    const forced = this.opts.transport;
    const sameThread = s.endpoints.host === me.host && s.endpoints.pid === me.pid && s.endpoints.threadId === me.threadId;
    if (sameThread && (forced === undefined || forced === "inproc")) {
      const server = this.local(s.id);
      if (server) return { server: s, inFlight: 0, channel: undefined, local: server, draining: false };
    }
    let channel: Channel | undefined;
    if (s.endpoints.host === me.host && s.endpoints.shm && (forced === undefined || forced === "shm")) {
      channel = await openShm(s.endpoints.shm.socket, this.open);
    } else if (s.endpoints.tcp && (forced === undefined || forced === "tcp")) {
      channel = await openTcp(s.endpoints.tcp, this.open);
    }
    if (channel === undefined) return undefined;
    const link: Link = { server: s, inFlight: 0, channel, local: undefined, draining: false };
    channel.onMessage = (bytes, at, end, frame) => this.onMessage(link, bytes, at, end, frame);
    channel.onEnd = (error) => this.lost(link, error);
    // The GraphServer unlinks the request ring if this process dies before closing it.
    const segment = channel.segment;
    if (segment !== undefined) await this.graph.client.request("segment.add", { name: segment }).catch(() => {});
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
    const why =
      error === undefined
        ? link.draining
          ? new PeerDeadError(`server ${link.server.id} of ${JSON.stringify(this.service)} left`)
          : new ClosedError(`client of ${JSON.stringify(this.service)} is closed`)
        : error instanceof PeerDeadError
          ? error
          : new PeerDeadError(`server ${link.server.id} of ${JSON.stringify(this.service)} is gone`, { cause: error });
    for (const p of this.pending.entries()) if (p.link === link) this.settle(p.id, why);
    const ch = link.channel;
    if (ch !== undefined) void ch.close().then(() => forget(this.graph, ch));
  }

  /** Leaves the graph; pending requests reject with `ClosedError`. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onClose();
      clearTimeout(this.timer);
      this.waiters.failAll(new ClosedError(`client of ${JSON.stringify(this.service)} is closed`));
      for (const p of this.pending.entries()) this.settle(p.id, new ClosedError(`client of ${JSON.stringify(this.service)} is closed`));
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

/** A request written in place by the caller's `fill`. */
class Filler {
  constructor(
    readonly size: number,
    readonly fill: (bytes: Uint8Array) => void,
  ) {}

  /** The body: runs `fill` on the ring's bytes; a throw goes to `onError` (the bytes go anyway, unanswered). */
  body(onError: (err: Error) => void): Body {
    return {
      size: this.size,
      flags: FLAG_RAW,
      writeTo: (target, at) => {
        try {
          this.fill(target.subarray(at, at + this.size));
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)));
        }
      },
    };
  }
}

/** Tells the GraphServer a closed channel's segment is gone (bookkeeping only). */
export function forget(graph: GraphRef, ch: Channel): void {
  const segment = ch.segment;
  if (segment !== undefined) void graph.client.request("segment.remove", { name: segment }).catch(() => {});
}

/** An in-place answer; `release` (which works detached too) unpins its memory in `ch`'s request ring. */
class InPlaceAnswer implements InPlaceResponse {
  readonly release: () => void;
  constructor(
    readonly bytes: Uint8Array,
    ch?: Channel,
    pin = -1,
  ) {
    let released = false;
    this.release = () => {
      if (released) return;
      released = true;
      ch?.unpin(pin);
    };
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/** A handler error of a server in this thread, as a client sees it. */
function toRemote(err: unknown): Error {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  return new RemoteError(
    typeof e?.message === "string" ? e.message : String(err),
    typeof e?.code === "string" ? e.code : undefined,
    typeof e?.name === "string" ? e.name : undefined,
    { cause: err },
  );
}
