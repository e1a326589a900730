/**
 * A Node: one participant of the graph. Owns every port it made, and re-registers them when the
 * GraphServer it used goes away (another one is found or started).
 * @module
 */
import { randomBytes } from "node:crypto";
import { ClosedError, PeerDeadError } from "../errors.js";
import { checkGraphOptions, GraphClient, type GraphOptions } from "../graph/client.js";
import { readOptions } from "../util/options.js";
import { checkTopic, type PublisherInfo, type RemoteGraphInfo, type Snapshot } from "../graph/registry.js";
import type { GraphRef } from "../graph/ref.js";
import { Publisher, type PublisherOptions } from "../pubsub/publisher.js";
import { Subscriber, type SubscriberOptions } from "../pubsub/subscriber.js";
import { STATS_INTERVAL, type StatsReport } from "../graph/report.js";
import { Client, type ClientOptions } from "../rpc/client.js";
import { Server, type Handler, type InPlaceHandler, type ServerOptions } from "../rpc/server.js";
import { requestedLinger, type CloseOptions } from "../util/linger.js";

/** Options of {@link connect}. */
export interface ConnectOptions extends GraphOptions {
  /**
   * When the GraphServer connection is lost, keep trying (every 100 ms, for this many ms) to
   * reach a GraphServer again — starting one here if allowed by `embedded` — and re-register every
   * port and edge of this node. 0 disables it. Default 10000.
   */
  reconnect?: number;
}

/** A participant of the graph: `await using node = await connect()`. */
export class Node implements AsyncDisposable {
  private readonly publishers = new Map<string, Publisher<unknown>>();
  private readonly subscribers = new Map<string, Subscriber<unknown>>();
  private readonly servers = new Map<string, Server>();
  private readonly clients = new Map<string, Client<unknown, unknown>>();
  private readonly edges = new Map<string, { from: string; to: string; persistent: boolean }>();
  private readonly prefix = randomBytes(6).toString("hex");
  private nextPort = 1;
  private closing: Promise<void> | undefined;
  /** The ports whose close may wait (servers, publishers), as they were when the node closed. */
  private lingering: { close(opts?: CloseOptions): Promise<void> }[] = [];
  private recovering: Promise<void> | undefined;
  private inRecovery = false;
  private graph: GraphClient;
  private readonly statsTimer: ReturnType<typeof setInterval>;
  private lastReport = "";

  private constructor(
    graph: GraphClient,
    private readonly opts: ConnectOptions & { readonly reconnect: number },
  ) {
    this.graph = graph;
    this.attach(graph);
    this.statsTimer = setInterval(() => this.reportStats(), STATS_INTERVAL);
    this.statsTimer.unref();
  }

  /** The counters of every port of this node. */
  stats(): StatsReport {
    return {
      publishers: [...this.publishers.values()].map((p) => ({ id: p.id, ...p.counters })),
      subscribers: [...this.subscribers.values()].map((s) => ({ id: s.id, ...s.counters, links: s.transports })),
      servers: [...this.servers.values()].map((s) => ({ id: s.id, ...s.counters, inFlight: s.inFlight })),
      clients: [...this.clients.values()].map((c) => ({ id: c.id, ...c.counters, inFlight: c.inFlight, links: c.transports })),
    };
  }

  /** Sends the counters to the GraphServer when they changed since the last report (one-way, errors ignored). */
  private reportStats(): void {
    if (this.closing || this.inRecovery || (this.publishers.size === 0 && this.subscribers.size === 0 && this.servers.size === 0 && this.clients.size === 0)) return;
    const report = this.stats();
    const text = JSON.stringify(report);
    if (text === this.lastReport) return;
    this.lastReport = text;
    this.graph.request("stats.report", { ...report }).catch(() => (this.lastReport = ""));
  }

  /** @internal Use {@link connect}. */
  static async open(opts: ConnectOptions | undefined): Promise<Node> {
    checkGraphOptions("connect", opts);
    const reconnect = readOptions("connect", opts).timeout("reconnect", 10_000);
    const checked = { ...opts, reconnect };
    return new Node(await GraphClient.connect(checked), checked);
  }

  /** The current GraphServer connection, as this node's ports see it. */
  private readonly ref: GraphRef = Object.defineProperty({} as GraphRef, "client", { get: () => this.graph, enumerable: true });

  /** This node's id in the graph (it changes when the node re-registers with a new GraphServer). */
  get id(): string {
    return this.graph.node;
  }

  /** True if this process runs the GraphServer it uses (the embedded default). */
  get hostsGraph(): boolean {
    return this.graph.embedded !== undefined;
  }

  /** Creates a publisher on `topic`. */
  publisher<T = unknown>(topic: string, opts: PublisherOptions = {}): Promise<Publisher<T>> {
    return this.makePublisher<T>(topic, opts, undefined);
  }

  /**
   * @internal A publisher a bridge holds for the graph `remote` (docs/scale-out.md): its
   * registration says so, so that no bridge forwards its messages back out.
   */
  remotePublisher<T = unknown>(topic: string, remote: string, opts: PublisherOptions = {}): Promise<Publisher<T>> {
    return this.makePublisher<T>(topic, opts, remote);
  }

  private async makePublisher<T>(topic: string, opts: PublisherOptions, remote: string | undefined): Promise<Publisher<T>> {
    this.checkOpen();
    checkTopic(topic);
    const p = await Publisher.create<T>(this.ref, this.portId("p"), topic, opts, (pub) => this.publishers.delete(pub.id), remote);
    this.publishers.set(p.id, p as Publisher<unknown>);
    return p;
  }

  /** Creates a subscriber on `topic`; it receives from every publisher upstream of `topic`. */
  async subscriber<T = unknown>(topic: string, opts: SubscriberOptions = {}): Promise<Subscriber<T>> {
    this.checkOpen();
    checkTopic(topic);
    const id = this.portId("s");
    const sub = new Subscriber<T>(topic, id, this.ref, opts, () => this.subscribers.delete(id));
    this.subscribers.set(id, sub as Subscriber<unknown>);
    try {
      await sub.register();
    } catch (err) {
      await sub.close();
      throw err;
    }
    return sub;
  }

  /**
   * Serves requests of `service` (see docs/rpc.md): clients in this thread call `handler` with
   * their value itself, other processes of the host reach it over shared-memory rings, other
   * hosts over TCP (TLS). With `{ inPlace: true }` the handler gets the request's own bytes
   * and answers in them ({@link InPlaceHandler}).
   */
  server<Req = unknown, Res = unknown>(service: string, handler: Handler<Req, Res>, opts?: ServerOptions & { inPlace?: false }): Promise<Server>;
  server(service: string, handler: InPlaceHandler, opts: ServerOptions & { inPlace: true }): Promise<Server>;
  server(service: string, handler: Handler<never, unknown> | InPlaceHandler, opts: ServerOptions = {}): Promise<Server> {
    return this.makeServer(service, handler as Handler<unknown, unknown>, opts, undefined);
  }

  /**
   * @internal A server a bridge holds for a service of the graph `remote` (docs/scale-out.md):
   * its registration says so, so that no bridge forwards requests to it back out.
   */
  remoteServer<Req = unknown, Res = unknown>(service: string, remote: string, handler: Handler<Req, Res>, opts: ServerOptions = {}): Promise<Server> {
    return this.makeServer(service, handler as Handler<unknown, unknown>, opts, remote);
  }

  private async makeServer(service: string, handler: Handler<unknown, unknown>, opts: ServerOptions, remote: string | undefined): Promise<Server> {
    this.checkOpen();
    checkTopic(service);
    const id = this.portId("r");
    return Server.create(this.ref, id, service, handler, opts, (s) => this.servers.set(id, s), () => this.servers.delete(id), remote);
  }

  /** A client of `service`: `await client.request(value, { timeout, signal })` (see docs/rpc.md). */
  async client<Req = unknown, Res = unknown>(service: string, opts: ClientOptions = {}): Promise<Client<Req, Res>> {
    this.checkOpen();
    checkTopic(service);
    const id = this.portId("c");
    const client = new Client<Req, Res>(service, id, this.ref, opts, (sid) => Server.find(sid), () => this.clients.delete(id));
    this.clients.set(id, client as Client<unknown, unknown>);
    try {
      await client.register();
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /**
   * Adds the edge `from -> to` to the topic graph: subscribers of `to` also receive what is
   * published on `from` (and upstream of it). Cycles are refused (`CycleError`). The edge goes
   * away with this node unless `persistent`.
   */
  async connect(from: string, to: string, opts: { persistent?: boolean } = {}): Promise<void> {
    this.checkOpen();
    const edge = { from: checkTopic(from), to: checkTopic(to), persistent: readOptions("node.connect", opts).bool("persistent", false) };
    await this.graph.request("edge.add", edge);
    this.edges.set(`${from}\u0000${to}`, edge);
  }

  /** Removes the edge `from -> to`. */
  async disconnect(from: string, to: string): Promise<void> {
    this.checkOpen();
    await this.graph.request("edge.remove", { from, to });
    this.edges.delete(`${from}\u0000${to}`);
  }

  /**
   * @internal What a bridge reports of the other graphs it joins this one to (shown by
   * `plexus graph`, `plexus top` and the dashboard); replaces its last report.
   */
  async reportRemote(graphs: readonly Omit<RemoteGraphInfo, "node">[]): Promise<void> {
    this.checkOpen();
    await this.graph.request("remote.set", { graphs: graphs.map((g) => ({ ...g })) });
  }

  /** The whole graph as the GraphServer sees it. */
  snapshot(): Promise<Snapshot> {
    this.checkOpen();
    return this.graph.request<Snapshot>("snapshot");
  }

  /**
   * Resolves once this node is registered with a GraphServer again after losing it (at once if
   * it never lost it); rejects with `PeerDeadError` if it gave up.
   */
  async ready(): Promise<void> {
    await this.recovering;
  }

  /**
   * Closes every port and leaves the graph. Servers wait for the requests they are handling and
   * publishers for their TCP subscribers, each at most its `linger` (`opts.linger` overrides it
   * for all: 0 waits for nothing); see docs/operations.md, *Closing*. Idempotent; a later call
   * with a shorter `linger` shortens the waits.
   */
  close(opts?: CloseOptions): Promise<void> {
    try {
      requestedLinger(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closing !== undefined) {
      if (opts?.linger !== undefined) for (const port of this.lingering) void port.close(opts);
      return this.closing;
    }
    this.lingering = [...this.servers.values(), ...this.publishers.values()];
    this.closing = (async () => {
      await Promise.all([...this.clients.values()].map((c) => c.close()));
      await Promise.all([...this.servers.values()].map((s) => s.close(opts)));
      clearInterval(this.statsTimer);
      await Promise.all([...this.subscribers.values()].map((s) => s.close()));
      await Promise.all([...this.publishers.values()].map((p) => p.close(opts)));
      await this.recovering?.catch(() => {}); // stops at its next attempt: `closing` is set
      await this.graph.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private portId(kind: string): string {
    return `${kind}${this.prefix}${(this.nextPort++).toString(36)}`;
  }

  private attach(graph: GraphClient): void {
    graph.onNotify = (id: string, publishers: PublisherInfo[]) => this.subscribers.get(id)?.update(publishers);
    graph.onServers = (id, servers) => this.clients.get(id)?.update(servers);
    graph.onClose = (error) => {
      if (error === undefined || this.closing || this.inRecovery) return;
      this.inRecovery = true;
      this.recovering = this.recover(error).finally(() => (this.inRecovery = false));
      this.recovering.catch(() => {}); // observed through ready() and failing graph calls
    };
  }

  /** Finds (or starts) a GraphServer again and re-registers everything this node made. */
  private async recover(cause: Error): Promise<void> {
    const budget = this.opts.reconnect;
    const until = performance.now() + budget;
    while (budget > 0 && !this.closing && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      let graph: GraphClient;
      try {
        graph = await GraphClient.connect({ ...this.opts, timeout: 1000 });
      } catch {
        continue;
      }
      if (this.closing) {
        await graph.close();
        break;
      }
      this.graph = graph;
      this.attach(graph);
      this.lastReport = "";
      try {
        for (const p of this.publishers.values()) await p.register();
        for (const e of this.edges.values()) await graph.request("edge.add", e);
        for (const s of this.subscribers.values()) await s.register();
        for (const s of this.servers.values()) await s.register();
        for (const c of this.clients.values()) await c.register();
        return;
      } catch {
        await graph.close(); // lost again while re-registering: try once more
      }
    }
    throw new PeerDeadError("the GraphServer is gone and no other could be reached", { cause });
  }

  private checkOpen(): void {
    if (this.closing) throw new ClosedError("node is closed");
  }
}

/**
 * Joins the graph: connects to the GraphServer (`opts.address`, `PLEXUS_GRAPH`, or
 * 127.0.0.1:25978), starting one in this process if none answers on loopback.
 */
export function connect(opts: ConnectOptions = {}): Promise<Node> {
  return Node.open(opts);
}
