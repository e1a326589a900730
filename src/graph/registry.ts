/**
 * The GraphServer's state: nodes, publishers, subscribers, topic edges, segments; the DAG rules
 * and the upstream computation. Pure data, no I/O, so it is tested on its own.
 * (Internal: not part of the public API.)
 * @module
 */
import { CycleError, InvalidArgumentError, NotFoundError } from "../errors.js";

/** How a publisher can be reached, as registered by its node. */
export interface Endpoints {
  /** Process identity, to decide "same process" (inproc) and "same host" (shm). */
  host: string;
  /** Process id of the publisher's node. */
  pid: number;
  /** `worker_threads.threadId` of the publisher's node. */
  threadId: number;
  /** Shared-memory ring, when the publisher could create one. */
  shm?: { name: string; socket: string };
  /** TCP (or TLS) endpoint. */
  tcp?: { host: string; port: number; tls: boolean };
  /**
   * Set on the ports a bridge holds for another graph (docs/scale-out.md): the name of the graph
   * (host) whose publishers or servers this port stands for. The bridge itself never forwards
   * what such a port carries back out, so no message goes round.
   */
  remote?: string;
}

/** A publisher as subscribers see it. */
export interface PublisherInfo {
  /** Port id. */
  id: string;
  /** Topic it publishes on. */
  topic: string;
  /** Node that owns it. */
  node: string;
  /** Where to reach it. */
  endpoints: Endpoints;
}

/** A node (process or thread) that joined the graph. */
export interface NodeInfo {
  /** Node id. */
  id: string;
  /** Name given by the node (defaults to its pid). */
  name: string;
  /** Host identity. */
  host: string;
  /** Process id. */
  pid: number;
  /** Thread id. */
  threadId: number;
}

/** A topic -> topic edge. */
export interface Edge {
  /** Upstream topic. */
  from: string;
  /** Downstream topic. */
  to: string;
  /** Node that made it, or null when persistent. */
  owner: string | null;
}

/** A subscriber. */
export interface SubscriberInfo {
  /** Port id. */
  id: string;
  /** Topic it subscribes to. */
  topic: string;
  /** Node that owns it. */
  node: string;
}

/** A request/response server of a service, as clients see it. */
export interface ServerInfo {
  /** Port id. */
  id: string;
  /** Service it answers. */
  service: string;
  /** Node that owns it. */
  node: string;
  /** Where to reach it (`shm.socket` is its handshake socket). */
  endpoints: Endpoints;
  /** In-place mode: requests are raw bytes, answered in the same shared memory. */
  inPlace: boolean;
}

/** A request/response client of a service. */
export interface ClientInfo {
  /** Port id. */
  id: string;
  /** Service it calls. */
  service: string;
  /** Node that owns it. */
  node: string;
}

/** Another graph joined to this one through a bridge, as the bridge (node `node`) reports it. */
export interface RemoteGraphInfo {
  /** The bridge's node here. */
  node: string;
  /** The other graph's name. */
  origin: string;
  /** The machines its bridges run on. */
  hostnames: string[];
  /** Topics it offers. */
  topics: string[];
  /** Services it offers. */
  services: string[];
  /** Queues it bridges. */
  queues: string[];
}

/** The whole graph (for the CLI and the dashboard). */
export interface Snapshot {
  /** Nodes. */
  nodes: NodeInfo[];
  /** Every topic that has a port or an edge. */
  topics: string[];
  /** Publishers. */
  publishers: PublisherInfo[];
  /** Subscribers. */
  subscribers: SubscriberInfo[];
  /** Edges. */
  edges: Edge[];
  /** Shared-memory segments registered, per node. */
  segments: { node: string; name: string }[];
  /** Request/response servers. */
  servers: ServerInfo[];
  /** Request/response clients. */
  clients: ClientInfo[];
  /** Every request/response service that has a server or a client, sorted. */
  services: string[];
  /** Other graphs joined to this one through bridges (docs/scale-out.md), as each bridge reports them; one entry per (bridge, graph). */
  remote: RemoteGraphInfo[];
}

/** Topic names: 1..256 characters, no whitespace (which includes no control characters below space). */
const TOPIC = /^\S{1,256}$/;

/** Checks a topic name. */
export function checkTopic(topic: unknown): string {
  if (typeof topic !== "string" || !TOPIC.test(topic) || [...topic].some((c) => c.charCodeAt(0) < 0x20)) {
    throw new InvalidArgumentError(`a topic is 1..256 characters without spaces or control characters, got ${JSON.stringify(topic)}`);
  }
  return topic;
}

/** The registry. Every mutation returns the subscribers whose upstream set changed. */
export class Registry {
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly publishers = new Map<string, PublisherInfo>();
  private readonly subscribers = new Map<string, SubscriberInfo>();
  private readonly edges = new Map<string, Edge>();
  private readonly segments = new Map<string, Set<string>>();
  private readonly servers = new Map<string, ServerInfo>();
  private readonly clients = new Map<string, ClientInfo>();
  private readonly remotes = new Map<string, RemoteGraphInfo[]>();
  private nextId = 1;

  /**
   * The id for a new port: the one the node proposed (so ports keep their ids when a node
   * re-registers with a new GraphServer) if it is well-formed and free, else a fresh one.
   */
  private id(prefix: string, proposed?: unknown): string {
    if (proposed !== undefined) {
      if (typeof proposed !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(proposed)) throw new InvalidArgumentError(`a port id is 1..64 of [A-Za-z0-9_-], got ${JSON.stringify(proposed)}`);
      if (this.publishers.has(proposed) || this.subscribers.has(proposed) || this.nodes.has(proposed) || this.servers.has(proposed) || this.clients.has(proposed)) throw new InvalidArgumentError(`port id ${proposed} is taken`);
      return proposed;
    }
    return `${prefix}${(this.nextId++).toString(36)}`;
  }

  /** Adds a node. */
  addNode(info: Omit<NodeInfo, "id">): NodeInfo {
    const node = { ...info, id: this.id("n") };
    this.nodes.set(node.id, node);
    return node;
  }

  /** The node with this id. */
  node(id: string): NodeInfo | undefined {
    return this.nodes.get(id);
  }

  /**
   * Removes a node with its ports, its non-persistent edges and its segments. Returns the
   * segment names it had registered (to unlink) and the subscribers to notify.
   */
  removeNode(id: string): { segments: string[]; changed: Map<string, PublisherInfo[]>; services: Map<string, ServerInfo[]> } {
    const before = this.upstreamAll();
    const servicesBefore = this.serversAll();
    for (const [sid, s] of this.servers) if (s.node === id) this.servers.delete(sid);
    for (const [cid, c] of this.clients) if (c.node === id) this.clients.delete(cid);
    this.remotes.delete(id);
    this.nodes.delete(id);
    for (const [pid, p] of this.publishers) if (p.node === id) this.publishers.delete(pid);
    for (const [sid, s] of this.subscribers) if (s.node === id) this.subscribers.delete(sid);
    for (const [key, e] of this.edges) if (e.owner === id) this.edges.delete(key);
    const segments = [...(this.segments.get(id) ?? [])];
    this.segments.delete(id);
    return { segments, changed: this.diff(before), services: this.diffServers(servicesBefore) };
  }

  /** Adds a request/response server; returns the clients of its service to notify. */
  addServer(node: string, service: string, endpoints: Endpoints, inPlace: boolean, id?: unknown): { server: ServerInfo; changed: Map<string, ServerInfo[]> } {
    this.mustHaveNode(node);
    const server: ServerInfo = { id: this.id("r", id), service: checkTopic(service), node, endpoints, inPlace };
    const before = this.serversAll();
    this.servers.set(server.id, server);
    return { server, changed: this.diffServers(before) };
  }

  /** Removes a server of `node`; returns the clients of its service to notify. */
  removeServer(node: string, id: string): Map<string, ServerInfo[]> {
    const server = this.servers.get(id);
    if (server === undefined || server.node !== node) throw new NotFoundError(`no server ${id} of this node`);
    const before = this.serversAll();
    this.servers.delete(id);
    return this.diffServers(before);
  }

  /** Adds a request/response client; returns the servers of its service now. */
  addClient(node: string, service: string, id?: unknown): { client: ClientInfo; servers: ServerInfo[] } {
    this.mustHaveNode(node);
    const client: ClientInfo = { id: this.id("c", id), service: checkTopic(service), node };
    this.clients.set(client.id, client);
    return { client, servers: this.serversOf(client.service) };
  }

  /** Removes a client of `node`. */
  removeClient(node: string, id: string): void {
    const client = this.clients.get(id);
    if (client === undefined || client.node !== node) throw new NotFoundError(`no client ${id} of this node`);
    this.clients.delete(id);
  }

  /** The client with this id. */
  client(id: string): ClientInfo | undefined {
    return this.clients.get(id);
  }

  /** Servers of `service`. */
  serversOf(service: string): ServerInfo[] {
    return [...this.servers.values()].filter((s) => s.service === service);
  }

  private serversAll(): Map<string, string> {
    const m = new Map<string, string>();
    for (const c of this.clients.values()) m.set(c.id, this.serversOf(c.service).map((s) => s.id).sort().join(","));
    return m;
  }

  /** Clients whose server set differs from `before`, with their new set. */
  private diffServers(before: Map<string, string>): Map<string, ServerInfo[]> {
    const changed = new Map<string, ServerInfo[]>();
    for (const c of this.clients.values()) {
      const now = this.serversOf(c.service);
      if (before.get(c.id) !== now.map((s) => s.id).sort().join(",")) changed.set(c.id, now);
    }
    return changed;
  }

  /** Adds a publisher. */
  addPublisher(node: string, topic: string, endpoints: Endpoints, id?: unknown): { publisher: PublisherInfo; changed: Map<string, PublisherInfo[]> } {
    this.mustHaveNode(node);
    const publisher: PublisherInfo = { id: this.id("p", id), topic: checkTopic(topic), node, endpoints };
    const before = this.upstreamAll();
    this.publishers.set(publisher.id, publisher);
    return { publisher, changed: this.diff(before) };
  }

  /** Adds a subscriber; returns its current upstream publishers. */
  addSubscriber(node: string, topic: string, id?: unknown): { subscriber: SubscriberInfo; upstream: PublisherInfo[] } {
    this.mustHaveNode(node);
    const subscriber: SubscriberInfo = { id: this.id("s", id), topic: checkTopic(topic), node };
    this.subscribers.set(subscriber.id, subscriber);
    return { subscriber, upstream: this.upstream(subscriber.topic) };
  }

  /** Removes a port of `node`. */
  removePort(node: string, id: string): Map<string, PublisherInfo[]> {
    const port = this.publishers.get(id) ?? this.subscribers.get(id);
    if (port === undefined || port.node !== node) throw new NotFoundError(`no port ${id} of this node`);
    const before = this.upstreamAll();
    this.publishers.delete(id);
    this.subscribers.delete(id);
    return this.diff(before);
  }

  /** Adds `from -> to`; refuses cycles. Adding an existing edge is a no-op. */
  addEdge(node: string, from: string, to: string, persistent: boolean): Map<string, PublisherInfo[]> {
    this.mustHaveNode(node);
    checkTopic(from);
    checkTopic(to);
    const key = `${from}\u0000${to}`;
    if (this.edges.has(key)) return new Map();
    if (from === to || this.reaches(to, from)) throw new CycleError(from, to);
    const before = this.upstreamAll();
    this.edges.set(key, { from, to, owner: persistent ? null : node });
    return this.diff(before);
  }

  /** Removes `from -> to`. */
  removeEdge(from: string, to: string): Map<string, PublisherInfo[]> {
    const key = `${from}\u0000${to}`;
    if (!this.edges.has(key)) throw new NotFoundError(`no edge ${JSON.stringify(from)} -> ${JSON.stringify(to)}`);
    const before = this.upstreamAll();
    this.edges.delete(key);
    return this.diff(before);
  }

  /** Records a shared-memory segment owned by `node` (unlinked if the node dies). */
  addSegment(node: string, name: string): void {
    this.mustHaveNode(node);
    if (typeof name !== "string" || !/^\/plexus-[\w-]{1,200}$/.test(name)) throw new InvalidArgumentError(`not a Plexus segment name: ${JSON.stringify(name)}`);
    let set = this.segments.get(node);
    if (set === undefined) this.segments.set(node, (set = new Set()));
    set.add(name);
  }

  /** Forgets a segment (closed by its owner). */
  removeSegment(node: string, name: string): void {
    this.segments.get(node)?.delete(name);
  }

  /** The subscriber with this id. */
  subscriber(id: string): SubscriberInfo | undefined {
    return this.subscribers.get(id);
  }

  /** Publishers upstream of `topic`: on it, or on any topic with a path of edges to it. */
  upstream(topic: string): PublisherInfo[] {
    const topics = this.ancestors(topic);
    return [...this.publishers.values()].filter((p) => topics.has(p.topic));
  }

  /** The whole graph. */
  snapshot(): Snapshot {
    const topics = new Set<string>();
    for (const p of this.publishers.values()) topics.add(p.topic);
    for (const s of this.subscribers.values()) topics.add(s.topic);
    for (const e of this.edges.values()) topics.add(e.from).add(e.to);
    return {
      nodes: [...this.nodes.values()],
      topics: [...topics].sort(),
      publishers: [...this.publishers.values()],
      subscribers: [...this.subscribers.values()],
      edges: [...this.edges.values()],
      segments: [...this.segments].flatMap(([node, names]) => [...names].map((name) => ({ node, name }))),
      servers: [...this.servers.values()],
      clients: [...this.clients.values()],
      services: [...new Set([...this.servers.values(), ...this.clients.values()].map((p) => p.service))].sort(),
      remote: [...this.remotes.values()].flat(),
    };
  }

  /**
   * Replaces what the bridge `node` reports of the other graphs it joins this one to (an
   * `InvalidArgumentError` for a malformed list; at most 1024 graphs, each list at most 4096 names).
   */
  setRemote(node: string, graphs: unknown): void {
    this.mustHaveNode(node);
    const names = (v: unknown, what: string): string[] => {
      if (!Array.isArray(v) || v.length > 4096 || v.some((s) => typeof s !== "string" || s.length > 1024)) throw new InvalidArgumentError(`remote.set: ${what} must be a list of at most 4096 names`);
      return v as string[];
    };
    if (!Array.isArray(graphs) || graphs.length > 1024) throw new InvalidArgumentError("remote.set: graphs must be a list of at most 1024 graphs");
    const list = graphs.map((g: unknown): RemoteGraphInfo => {
      const r = g as Record<string, unknown> | null;
      if (r === null || typeof r !== "object" || typeof r["origin"] !== "string" || r["origin"].length === 0 || r["origin"].length > 255) throw new InvalidArgumentError("remote.set: each graph needs an origin of 1..255 characters");
      return { node, origin: r["origin"], hostnames: names(r["hostnames"] ?? [], "hostnames"), topics: names(r["topics"] ?? [], "topics"), services: names(r["services"] ?? [], "services"), queues: names(r["queues"] ?? [], "queues") };
    });
    if (list.length === 0) this.remotes.delete(node);
    else this.remotes.set(node, list);
  }

  private mustHaveNode(node: string): void {
    if (!this.nodes.has(node)) throw new NotFoundError(`unknown node ${node}`);
  }

  /** `topic` and every topic with a path to it. */
  private ancestors(topic: string): Set<string> {
    const seen = new Set([topic]);
    const stack = [topic];
    while (stack.length) {
      const t = stack.pop() as string;
      for (const e of this.edges.values()) {
        if (e.to === t && !seen.has(e.from)) {
          seen.add(e.from);
          stack.push(e.from);
        }
      }
    }
    return seen;
  }

  /** True if there is a path `from` ->* `to`. */
  private reaches(from: string, to: string): boolean {
    return this.ancestors(to).has(from);
  }

  private upstreamAll(): Map<string, string> {
    const m = new Map<string, string>();
    for (const s of this.subscribers.values()) m.set(s.id, this.upstream(s.topic).map((p) => p.id).sort().join(","));
    return m;
  }

  /** Subscribers whose upstream set differs from `before`, with their new set. */
  private diff(before: Map<string, string>): Map<string, PublisherInfo[]> {
    const changed = new Map<string, PublisherInfo[]>();
    for (const s of this.subscribers.values()) {
      const now = this.upstream(s.topic);
      if (before.get(s.id) !== now.map((p) => p.id).sort().join(",")) changed.set(s.id, now);
    }
    return changed;
  }
}
