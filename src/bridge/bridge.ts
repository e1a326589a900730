/**
 * The bridge between a Plexus graph and a NATS cluster (docs/scale-out.md): it joins the local
 * graph as a node, exports the local topics and services its export list allows, imports the
 * other graphs' ones its import list allows, and announces its graph so that the others see it.
 * @module
 */
import { Buffer } from "node:buffer";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { InvalidArgumentError, PeerDeadError, PlexusError, ProtocolError } from "../errors.js";
import { connect, type ConnectOptions, type Node } from "../node/index.js";
import { defaultAddress, parseAddress } from "../graph/client.js";
import type { Snapshot } from "../graph/registry.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";
import { Listeners } from "../util/listeners.js";
import { BACKPRESSURE_POLICIES } from "../util/async-queue.js";
import type { BackpressurePolicy } from "../transport/transport.js";
import type { BridgeContext } from "./context.js";
import { readAnnouncement, RemoteHosts, type Announcement, type RemoteHost } from "./discovery.js";
import { envelopes, Kind, label } from "./envelope.js";
import { connectNats, loadNats, natsError, natsServers, type NatsConnection } from "./nats.js";
import { ServiceBridge } from "./services.js";
import { checkPrefix, NameFilter, subjectOf } from "./subjects.js";
import { TopicBridge, type TopicRoles } from "./topics.js";
import { QueueBridge, type QueueBridgeDirection, type QueueBridgeSpec, type QueueBridgeStats } from "./queues.js";
import type { NatsOptions, ServiceCounters, TopicCounters } from "./types.js";

/**
 * How every bridge's node is named in its graph: `plexus-bridge:<prefix>:<graph>:<bridge id>`.
 * Bridges of one graph with the same prefix and graph name share all but the id: they are
 * siblings, and elect which of them sends and which publishes each topic.
 */
export const BRIDGE_NODE = "plexus-bridge";

/** Options of {@link Bridge.start}. */
export interface BridgeOptions extends BlockingOptions {
  /** The NATS cluster: server URL(s) (`nats://host:4222`, `tls://…`, comma-separated), or the full options with TLS and credentials. */
  nats: string | readonly string[] | NatsOptions;
  /** Patterns of the local topics and services sent to NATS (`camera/*`, `sensors/>`, `>`). Default: none. */
  export?: readonly string[];
  /** Patterns of the remote topics and services received from NATS. Default: none. */
  import?: readonly string[];
  /** Patterns never bridged, either way (they win over `export` and `import`). */
  deny?: readonly string[];
  /**
   * This graph's name on NATS: every graph that shares the cluster needs its own. Default: this
   * machine's host name and the GraphServer's port (`host:25978`).
   */
  name?: string;
  /** The first tokens of every subject (default `plexus`): graphs see each other only under the same prefix. */
  prefix?: string;
  /** How the bridge joins the local graph (the GraphServer's `address`, `token`, …), as `connect()` takes it. */
  graph?: ConnectOptions;
  /**
   * The shared-memory ring of each publisher the bridge holds for another graph's topic, in bytes
   * (default 4 MiB; the largest message is half), as `node.publisher()`'s `capacity`.
   */
  capacity?: number;
  /**
   * The largest message bridged, in bytes (default: half the `capacity`); above NATS's
   * `max_payload` messages travel in chunks. Larger ones are dropped and reported
   * (`FrameTooLargeError`) by the bridge that would send them.
   */
  maxMessage?: number;
  /** Bytes held at most for incomplete chunked messages (default 4 × `maxMessage`, at least `maxMessage`). */
  maxPending?: number;
  /**
   * What the bridge's subscribers to exported topics do when NATS cannot keep up (default
   * `drop-oldest`: local publishers never wait for the network; what is dropped shows as a gap
   * on the receiving hosts and in `stats().topics.dropped`). `block` holds local publishers back.
   */
  backpressure?: BackpressurePolicy;
  /**
   * Messages queued per exported topic before that policy applies, and messages from NATS
   * waiting at most per received topic while its local subscribers hold its publisher back (what
   * one read from NATS brings at once does not count)
   * (beyond, they are dropped, counted and reported as `BackpressureError`: NATS cannot be held
   * back). Default 1024.
   */
  queue?: number;
  /**
   * Send the messages of one publisher that wait together as one NATS message, a batch (default
   * true): several times the throughput for small and medium messages, as NATS's per-message
   * costs are paid once. Nothing waits to fill a batch. Turn it off while bridges of an older
   * Plexus, which drop batches as malformed, still receive this graph's topics.
   */
  batch?: boolean;
  /** How long a request forwarded to another host waits for its answer (ms, default 5000). */
  requestTimeout?: number;
  /** Milliseconds between the bridge's announcements (default 1000); a bridge silent for three is gone. */
  announceInterval?: number;
  /** Milliseconds between looks at the local graph for new or gone topics and services (default 250). */
  scanInterval?: number;
  /**
   * Queues through JetStream (docs/scale-out.md, *Queues*): `export` runs a queue server at
   * `url` whose puts go to the queue's stream; `import` puts what the stream holds into the
   * application's queue server at `url`.
   */
  queues?: readonly QueueBridgeSpec[];
}

/** The events of a bridge (`bridge.on(event, listener)`). */
export interface BridgeEvents {
  /** A failure the bridge lives through: garbage on a subject, a gap, a slow consumer, a lost NATS connection. */
  error: PlexusError;
  /** A remote graph was first heard from. */
  "host-join": RemoteHost;
  /** A remote graph left (its last bridge said so, or went silent). */
  "host-leave": string;
  /** The NATS connection dropped; the client reconnects by itself. */
  disconnect: PeerDeadError;
  /** The NATS connection is up again (to `server`). */
  reconnect: { server: string };
}

/** What a bridge has done, for `plexus bridge`, tests and dashboards. */
export interface BridgeStats {
  /** Pub/sub counters. */
  topics: TopicCounters;
  /** Request/response counters. */
  services: ServiceCounters;
  /** Failures reported (the `error` event). */
  errors: number;
  /** The last few failures, newest last. */
  recentErrors: { code: string; message: string; at: number }[];
  /** The NATS server the bridge is connected to now (empty while it reconnects). */
  server: string;
  /** Times the NATS connection dropped. */
  disconnects: number;
  /** Times it came back. */
  reconnects: number;
  /** What this bridge exports now. */
  exports: { topics: string[]; services: string[] };
  /** What it holds for other graphs now. */
  imports: { topics: { origin: string; topic: string }[]; services: { origin: string; service: string }[] };
  /** Each bridged queue's counters, by name and direction. */
  queues: { name: string; direction: QueueBridgeDirection; url: string; stats: QueueBridgeStats }[];
}

/** Checked options. */
interface Settings {
  readonly nats: NatsOptions;
  readonly exports: NameFilter;
  readonly imports: NameFilter;
  readonly name: string | undefined;
  readonly prefix: string;
  readonly capacity: number;
  readonly maxMessage: number;
  readonly maxPending: number;
  readonly backpressure: BackpressurePolicy;
  readonly queue: number;
  readonly batch: boolean;
  readonly requestTimeout: number;
  readonly announceInterval: number;
  readonly scanInterval: number;
}

function settings(opts: BridgeOptions): Settings {
  const o = readOptions("Bridge.start", opts);
  const raw = opts.nats;
  const nats: NatsOptions = typeof raw === "string" || Array.isArray(raw) ? { servers: raw as string | string[] } : (raw as NatsOptions);
  if (nats === undefined || nats === null || typeof nats !== "object") throw new InvalidArgumentError(`Bridge.start: option "nats" must be server URLs or NATS options, got ${String(raw)}`);
  natsServers(nats);
  const deny = o.strings("deny");
  const capacity = o.int("capacity", 4 << 20, 64 << 10, 2 ** 32 - 1);
  const maxMessage = o.int("maxMessage", Math.floor(capacity / 2) - 64, 1024, 2 ** 32 - 1);
  const name = o.string("name", 1);
  if (name !== undefined && (Buffer.byteLength(name) > 255 || /\s/.test(name))) throw o.error("name", "1..255 bytes of UTF-8 without whitespace", name);
  return {
    nats,
    exports: new NameFilter(o.strings("export"), deny),
    imports: new NameFilter(o.strings("import"), deny),
    name,
    prefix: checkPrefix(o.string("prefix", 1) ?? "plexus"),
    maxMessage,
    capacity,
    maxPending: o.int("maxPending", 4 * maxMessage, maxMessage, Number.MAX_SAFE_INTEGER),
    backpressure: o.oneOf("backpressure", BACKPRESSURE_POLICIES, "drop-oldest"),
    queue: o.int("queue", 1024, 1, 2 ** 31 - 1),
    batch: o.bool("batch", true),
    requestTimeout: o.timeout("requestTimeout", 5000),
    announceInterval: o.int("announceInterval", 1000, 100, 600_000),
    scanInterval: o.int("scanInterval", 250, 10, 600_000),
  };
}

/** The numeric part of a node id (`n1a` -> 46), to order nodes by when they joined. */
function joined(nodeId: string): number {
  const n = parseInt(nodeId.slice(1), 36);
  return Number.isNaN(n) ? Infinity : n;
}

/**
 * A running bridge: `await using bridge = await Bridge.start({ nats: "nats://host:4222",
 * export: ["camera/>"], import: [">"] })`.
 */
export class Bridge implements AsyncDisposable {
  /** This graph's name on NATS. */
  readonly name: string;
  /** This bridge's id (random, per run), as its announcements and its node's name carry it. */
  readonly id: string;
  private readonly listeners = new Listeners<BridgeEvents>("a bridge", ["error", "host-join", "host-leave", "disconnect", "reconnect"]);
  private readonly remote = new RemoteHosts();
  private readonly topics: TopicBridge;
  private readonly services: ServiceBridge;
  private readonly queues: QueueBridge[] = [];
  private readonly ctx: BridgeContext;
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly errors: BridgeStats["recentErrors"] = [];
  private errorCount = 0;
  private disconnects = 0;
  private reconnects = 0;
  /** Of the sibling bridges that export a topic, the one that joined the graph first sends it: topic -> its node. */
  private senders = new Map<string, string>();
  /** Of the sibling bridges that hold a publisher for a remote topic, the one that joined first publishes it: graph, topic -> its node. */
  private receivers = new Map<string, string>();
  /** True if this bridge joined its graph first of its siblings: it publishes the remote topics nobody holds yet. */
  private primary = false;
  /** The ids of the sibling bridges (their announcements carry this graph's name too). */
  private siblings = new Set<string>();
  /** Bridge ids heard announcing this graph's name that were not siblings (another graph uses the name). */
  private readonly impostors = new Map<string, boolean>();
  /** Graphs that said they left, and when: their late messages are dropped. */
  private readonly left = new Map<string, number>();
  /** Who sends and receives what (`version` moves whenever `receivers`, `primary` or `left` do). */
  private readonly roles: Omit<TopicRoles, "version"> & { version: number };
  /** Graphs announced and not left, as the events told. */
  private readonly joined = new Set<string>();
  private readonly reconciling = new Map<string, Promise<void>>();
  private online = true;
  private whenOnline: { promise: Promise<void>; resolve: () => void } | undefined;
  private nodes = 0;
  /** What was last reported to the GraphServer of the other graphs (and to which node id). */
  private reported = "";
  private scanning: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly node: Node,
    private readonly nc: NatsConnection,
    ctx: Omit<BridgeContext, "report" | "online" | "connected">,
    private readonly opts: Settings,
    id: string,
  ) {
    this.id = id;
    this.name = ctx.origin;
    const online = (): boolean => this.online || this.closing !== undefined;
    this.ctx = { ...ctx, report: (err) => this.report(err), online, connected: () => (online() ? Promise.resolve() : this.offline().promise) };
    this.roles = {
      sends: (t) => this.senders.get(t) === this.node.id,
      receives: (o, t) => {
        const r = this.receivers.get(`${o}\u0000${t}`);
        return r !== undefined ? r === this.node.id : this.primary;
      },
      accepts: (o) => {
        const at = this.left.get(o);
        return at === undefined || Date.now() - at > 3 * this.opts.announceInterval + 1000;
      },
      version: 0,
    };
    this.topics = new TopicBridge(
      this.ctx,
      node,
      { exports: opts.exports, imports: opts.imports, capacity: opts.capacity, maxMessage: opts.maxMessage, maxPending: opts.maxPending, backpressure: opts.backpressure, queue: opts.queue, batch: opts.batch },
      this.roles,
    );
    this.services = new ServiceBridge(this.ctx, node, { exports: opts.exports, imports: opts.imports, maxMessage: opts.maxMessage, requestTimeout: opts.requestTimeout });
  }

  /**
   * Joins the local graph (starting an embedded GraphServer if none runs, as `connect()` does)
   * and the NATS cluster, and starts bridging. Rejects with `MissingDependencyError` when
   * `@nats-io/transport-node` is not installed, `InvalidArgumentError` for bad options,
   * `PeerDeadError` / `AccessDeniedError` / `TimeoutError` / `AbortError` when NATS cannot be
   * reached, refuses the credentials or TLS, or the wait ends.
   */
  static async start(opts: BridgeOptions): Promise<Bridge> {
    if (opts === null || typeof opts !== "object") throw new InvalidArgumentError("Bridge.start: options with at least `nats` are required");
    const s = settings(opts);
    checkOptions(opts, "Bridge.start");
    const nats = await loadNats();
    const origin = s.name ?? `${hostname()}:${parseAddress(opts.graph?.address ?? defaultAddress()).port}`;
    label(origin, "the graph's name");
    const id = randomBytes(8).toString("hex");
    const node = await connect({ ...opts.graph, name: `${BRIDGE_NODE}:${s.prefix}:${origin}:${id}` });
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats(nats, { name: `${BRIDGE_NODE}:${origin}`, ...s.nats }, { timeout: opts.timeout, signal: opts.signal });
      const bridge = new Bridge(node, nc, { nats, nc, prefix: s.prefix, origin }, s, id);
      try {
        for (const spec of opts.queues ?? []) bridge.queues.push(await QueueBridge.start(bridge.ctx, spec, { timeout: opts.timeout, signal: opts.signal }));
        await bridge.begin();
      } catch (err) {
        await bridge.close();
        throw err;
      }
      return bridge;
    } catch (err) {
      await nc?.close().catch(() => {});
      await node.close({ linger: 0 });
      throw err;
    }
  }

  private async begin(): Promise<void> {
    this.loops.push(this.watchStatus());
    const hosts = this.nc.subscribe(`${this.ctx.prefix}.h.>`);
    this.loops.push(this.hear(hosts));
    await this.scan(); // elects first: a bridge that joins a running graph neither sends nor publishes twice
    this.topics.start();
    this.announce();
    this.timers.push(
      setInterval(() => void this.scan(), this.opts.scanInterval),
      setInterval(() => {
        this.announce();
        const now = Date.now();
        for (const origin of this.remote.expire(now)) void this.reconcile(origin);
        // Graphs heard from but never announced (or no longer), silent for three intervals: what is held for them goes.
        for (const origin of this.topics.silentOrigins(now - 3 * this.opts.announceInterval - 1000)) if (this.remote.get(origin) === undefined) void this.reconcile(origin);
        for (const [origin, at] of this.left) {
          if (now - at <= 3 * this.opts.announceInterval + 1000) continue;
          this.left.delete(origin);
          this.roles.version++;
        }
        this.reportRemote();
      }, this.opts.announceInterval),
    );
  }

  /** Tells the GraphServer what the other graphs offer (for `plexus graph`, `plexus top`, the dashboard), when it changed. */
  private reportRemote(): void {
    const graphs = this.remote.list().map((h) => ({ origin: h.origin, hostnames: h.hostnames, topics: h.topics, services: h.services, queues: h.queues }));
    const text = `${this.node.id}\u0000${JSON.stringify(graphs)}`;
    if (text === this.reported || this.closing) return;
    this.reported = text;
    this.node.reportRemote(graphs).catch(() => (this.reported = "")); // the GraphServer is away: told again next time
  }

  /** The promise exports wait on while NATS is disconnected. */
  private offline(): { promise: Promise<void>; resolve: () => void } {
    if (this.whenOnline === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.whenOnline = { promise, resolve };
    }
    return this.whenOnline;
  }

  private setOnline(online: boolean): void {
    this.online = online;
    if (online && this.whenOnline !== undefined) {
      this.whenOnline.resolve();
      this.whenOnline = undefined;
    }
  }

  /** Calls `listener` on each `event` ({@link BridgeEvents}). */
  on<E extends keyof BridgeEvents & string>(event: E, listener: (arg: BridgeEvents[E]) => void): this {
    this.listeners.on(event, listener);
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off<E extends keyof BridgeEvents & string>(event: E, listener: (arg: BridgeEvents[E]) => void): this {
    this.listeners.off(event, listener);
    return this;
  }

  /** The other graphs on the cluster, as their bridges announce them. */
  hosts(): RemoteHost[] {
    return this.remote.list();
  }

  /** Counters and what is bridged now. */
  stats(): BridgeStats {
    return {
      topics: { ...this.topics.counters },
      services: { ...this.services.counters },
      errors: this.errorCount,
      recentErrors: [...this.errors],
      server: this.nc.isClosed() ? "" : this.nc.getServer(),
      disconnects: this.disconnects,
      reconnects: this.reconnects,
      exports: { topics: this.topics.exports.sort(), services: this.services.exports.sort() },
      imports: { topics: this.topics.imports, services: this.services.imports },
      queues: this.queues.map((q) => ({ name: q.name, direction: q.direction, url: q.url, stats: q.stats() })),
    };
  }

  private report(err: PlexusError): void {
    this.errorCount++;
    this.errors.push({ code: err.code, message: err.message, at: Date.now() });
    if (this.errors.length > 20) this.errors.shift();
    this.listeners.emit("error", err);
  }

  /** Looks at the local graph: what to export, and which topics this bridge sends for its graph. */
  private scan(): Promise<void> {
    this.scanning ??= (async () => {
      try {
        let snap = await this.node.snapshot();
        const before = this.topics.exports.sort().join("\u0000");
        const topics = new Set(snap.publishers.filter((p) => p.endpoints.remote === undefined && this.opts.exports.passes(p.topic)).map((p) => p.topic));
        const services = new Set(snap.servers.filter((s) => s.endpoints.remote === undefined && this.opts.exports.passes(s.service)).map((s) => s.service));
        await this.topics.setExports(topics);
        await this.services.setExports(services);
        if (this.topics.exports.sort().join("\u0000") !== before) snap = await this.node.snapshot(); // see the new subscribers at once
        this.elect(snap);
      } catch (err) {
        if (!this.closing) this.report(err instanceof PlexusError ? err : new ProtocolError("looking at the local graph failed", { cause: err }));
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /**
   * Elects, among the sibling bridges (same prefix and graph name), the one that sends each
   * exported topic (the first to join of those exporting it) and the one that publishes each
   * remote topic here (the first to join of those holding a publisher for it; the first sibling
   * of all for a topic nobody holds yet).
   */
  private elect(snap: Snapshot): void {
    this.nodes = snap.nodes.length;
    const mine = `${BRIDGE_NODE}:${this.ctx.prefix}:${this.ctx.origin}:`;
    const siblings = new Map(snap.nodes.filter((n) => n.name.startsWith(mine)).map((n) => [n.id, joined(n.id)]));
    this.siblings = new Set(snap.nodes.filter((n) => n.name.startsWith(mine)).map((n) => n.name.slice(mine.length)));
    const me = siblings.get(this.node.id);
    const first = <K>(entries: Iterable<[K, string]>): Map<K, string> => {
      const out = new Map<K, string>();
      for (const [k, node] of entries) {
        const at = siblings.get(node);
        if (at === undefined) continue;
        const best = out.get(k);
        if (best === undefined || at < (siblings.get(best) as number)) out.set(k, node);
      }
      return out;
    };
    const wasPrimary = this.primary;
    const before = this.receivers;
    this.primary = me === undefined || [...siblings.values()].every((at) => at >= me);
    this.senders = first(snap.subscribers.map((s): [string, string] => [s.topic, s.node]));
    this.roles.version++;
    this.receivers = first(snap.publishers.filter((p) => p.endpoints.remote !== undefined).map((p): [string, string] => [`${p.endpoints.remote}\u0000${p.topic}`, p.node]));
    const takenOver: { origin: string; topic: string }[] = [];
    for (const [key, node] of this.receivers) {
      const was = before.get(key);
      if (node === this.node.id && (was !== undefined ? was !== this.node.id : !wasPrimary)) {
        const [origin, topic] = key.split("\u0000");
        takenOver.push({ origin, topic });
      }
    }
    this.topics.elected(takenOver);
    for (const [id, reported] of this.impostors) {
      if (this.siblings.has(id)) this.impostors.delete(id);
      else if (!reported) {
        this.impostors.set(id, true);
        this.report(new InvalidArgumentError(`another graph on NATS calls itself ${JSON.stringify(this.ctx.origin)} (bridge ${id}): each graph needs its own name (the bridge's \`name\` option); their messages are taken for this graph's own and dropped`));
      }
    }
  }

  /** Publishes this bridge's announcement (and its last one, `leaving`, when it closes). */
  private announce(leaving = false): void {
    const a: Omit<Announcement, "origin"> = {
      bridge: this.id,
      hostname: hostname(),
      pid: process.pid,
      interval: this.opts.announceInterval,
      // Every topic this bridge exports, whether it sends it now or a sibling does: a failover
      // between siblings changes nothing for the other graphs.
      topics: leaving ? [] : this.topics.exports,
      services: leaving ? [] : this.services.exports,
      queues: leaving ? [] : [...new Set(this.queues.map((q) => q.name))],
      nodes: this.nodes,
      leaving,
    };
    try {
      const [payload] = envelopes(Kind.Announce, { origin: label(this.ctx.origin, "the graph's name"), port: new Uint8Array(0) }, 0, a, 1 << 20, 1 << 20);
      this.nc.publish(subjectOf(this.ctx.prefix, "h", this.ctx.origin), payload);
    } catch (err) {
      this.report(natsError(err, "announcing this graph"));
    }
  }

  /** Takes the other bridges' announcements. */
  private async hear(sub: AsyncIterable<{ data: Uint8Array }>): Promise<void> {
    for await (const m of sub) {
      let a: Announcement;
      try {
        a = readAnnouncement(m.data);
      } catch (err) {
        this.report(err instanceof PlexusError ? err : new ProtocolError("a malformed announcement", { cause: err }));
        continue;
      }
      if (a.origin === this.ctx.origin) {
        // A sibling, or another graph that uses this graph's name (told at the next election).
        if (a.bridge !== this.id && !this.siblings.has(a.bridge) && !this.impostors.has(a.bridge)) this.impostors.set(a.bridge, false);
        continue;
      }
      this.remote.apply(a);
      if (a.leaving && this.remote.get(a.origin) === undefined) {
        this.left.set(a.origin, Date.now());
        this.roles.version++;
      } else if (!a.leaving && this.left.delete(a.origin)) this.roles.version++;
      await this.reconcile(a.origin);
    }
  }

  /** Brings the ports held for `origin` in line with what its bridges announce: one update at a time per graph. */
  private reconcile(origin: string): Promise<void> {
    const next = (this.reconciling.get(origin) ?? Promise.resolve()).then(() => this.update(origin));
    this.reconciling.set(origin, next);
    void next.finally(() => {
      if (this.reconciling.get(origin) === next) this.reconciling.delete(origin);
    });
    return next;
  }

  private async update(origin: string): Promise<void> {
    if (this.closing) return;
    const host = this.remote.get(origin);
    if (host !== undefined && !this.joined.has(origin)) {
      this.joined.add(origin);
      this.listeners.emit("host-join", host);
    }
    try {
      if (host === undefined) {
        await this.topics.dropImports(origin);
        await this.services.dropImports(origin);
        if (this.joined.delete(origin)) this.listeners.emit("host-leave", origin);
        this.reportRemote();
        return;
      }
      const topics = new Set(host.topics.filter((t) => this.opts.imports.passes(t)));
      const services = new Set(host.services.filter((s) => this.opts.imports.passes(s)));
      await this.topics.dropImports(origin, topics);
      await this.services.dropImports(origin, services);
      await Promise.all([...topics].map((t) => this.topics.importPublisher(origin, t).catch(() => {})));
      await Promise.all([...services].map((s) => this.services.importService(origin, s)));
      this.reportRemote();
    } catch (err) {
      this.report(err instanceof PlexusError ? err : new ProtocolError(`updating what is held for ${origin} failed`, { cause: err }));
    }
  }

  /** Turns the NATS client's status events into the bridge's events. */
  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case "disconnect": {
          this.disconnects++;
          this.setOnline(false);
          const err = new PeerDeadError(`the connection to NATS server ${s.server} dropped; reconnecting`);
          this.listeners.emit("disconnect", err);
          this.report(err);
          break;
        }
        case "reconnect":
          this.reconnects++;
          this.setOnline(true);
          this.listeners.emit("reconnect", { server: s.server });
          this.announce();
          break;
        case "error":
          this.report(natsError(s.error, "the NATS connection"));
          break;
        default:
          break;
      }
    }
  }

  /**
   * Stops bridging: announces that it leaves, stops taking from NATS, closes its ports in the
   * local graph (subscribers there lose the remote publishers) and its NATS connection.
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.setOnline(true); // exports waiting for NATS end
      await this.scanning;
      // Nothing is sent after the announcement that this bridge leaves.
      await this.topics.stopExports();
      await this.services.close();
      await Promise.all(this.queues.map((q) => q.close()));
      this.announce(true);
      await this.topics.close();
      // Out of the graph at once: a sibling that takes over what this bridge published sees it leave now.
      await this.node.close({ linger: 0 });
      await this.nc.drain().catch(() => this.nc.close());
      await Promise.allSettled(this.loops);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
