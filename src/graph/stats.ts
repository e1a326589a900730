/**
 * What the GraphServer knows about traffic: the counters nodes report (`stats.report`), turned
 * into rates per port and summed per topic and per request/response service for `plexus top`
 * and the dashboard. Pure data.
 * @module
 */
import { ProtocolError } from "../errors.js";
import type { Snapshot } from "./registry.js";

/** A port's rates are taken as zero when it has not reported for this long (ms). */
export const STATS_STALE_MS = 1500;

/** How a subscriber reaches one publisher. */
export interface LinkStats {
  /** Publisher port id. */
  publisher: string;
  /** Subscriber port id. */
  subscriber: string;
  /** Transport of the link. */
  transport: "inproc" | "shm" | "tcp";
}

/** Traffic of one topic. */
export interface TopicStats {
  /** Topic. */
  topic: string;
  /** Publishers on it. */
  publishers: number;
  /** Subscribers on it. */
  subscribers: number;
  /** Messages per second published on it (sum over its publishers). */
  rate: number;
  /** Bytes per second published on it for other threads/processes. */
  bandwidth: number;
  /** Messages per second received by its subscribers (sum). */
  receiveRate: number;
  /** Messages published so far (by the current publishers). */
  messages: number;
  /** Bytes published so far. */
  bytes: number;
  /** Publishes that waited for room (backpressure) so far. */
  waits: number;
  /** Messages dropped for its subscribers so far. */
  drops: number;
  /** Backpressure waits per second now. */
  waitRate: number;
  /** Drops per second now. */
  dropRate: number;
  /** Links of its subscribers, with their transport. */
  links: LinkStats[];
  /** The other graphs (hosts) whose publishers of it a bridge holds here, sorted; empty when none (docs/scale-out.md). */
  remote: string[];
}

/** How a request/response client reaches one server. */
export interface ServiceLinkStats {
  /** Client port id. */
  client: string;
  /** Server port id. */
  server: string;
  /** Transport of the link. */
  transport: "inproc" | "shm" | "tcp";
}

/** Traffic of one request/response service. */
export interface ServiceStats {
  /** Service name. */
  service: string;
  /** Servers of it. */
  servers: number;
  /** Clients of it. */
  clients: number;
  /** Requests per second handled by its servers (sum). */
  rate: number;
  /** Requests per second ended at its clients, answered or failed (sum). */
  callRate: number;
  /** Request bytes per second sent by its clients over shared memory or TCP. */
  bandwidth: number;
  /** Requests handled so far (by the current servers). */
  requests: number;
  /** Failed requests so far, as its clients saw them (remote errors, timeouts, dead servers, no server). */
  errors: number;
  /** Failed requests per second now (clients). */
  errorRate: number;
  /** Requests in flight now (clients). */
  inFlight: number;
  /** Mean round-trip time (ms) of the requests answered in the last report interval, null if none. */
  latency: number | null;
  /** Links of its clients, with their transport. */
  links: ServiceLinkStats[];
  /** The other graphs (hosts) whose servers of it a bridge holds here, sorted; empty when none (docs/scale-out.md). */
  remote: string[];
}

/** The answer of the `stats` request. */
export interface GraphStats {
  /** When it was computed (ms since the epoch). */
  at: number;
  /** One entry per topic of the snapshot. */
  topics: TopicStats[];
  /** One entry per request/response service of the snapshot. */
  services: ServiceStats[];
}

interface PortEntry {
  messages: number;
  bytes: number;
  waits: number;
  drops: number;
  links: { publisher: string; transport: LinkStats["transport"] }[];
  at: number;
  rate: number;
  bandwidth: number;
  waitRate: number;
  dropRate: number;
}

interface RpcEntry {
  requests: number;
  errors: number;
  bytes: number;
  latency: number;
  /** Requests whose round trip `latency` sums (absent from older nodes: all answered ones). */
  timed: number | undefined;
  inFlight: number;
  links: { server: string; transport: LinkStats["transport"] }[];
  at: number;
  rate: number;
  errorRate: number;
  bandwidth: number;
  /** Mean round trip over the last interval (ms), NaN if nothing was answered. */
  meanLatency: number;
  /** Requests answered in the last interval (weight of meanLatency). */
  answered: number;
}

const TRANSPORTS = new Set(["inproc", "shm", "tcp"]);
/** Most ports one report may carry. */
const MAX_PORTS = 10_000;

function count(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ProtocolError(`stats.report: ${what} must be a non-negative number`);
  return v;
}

type RpcReport = [string, Omit<RpcEntry, "at" | "rate" | "errorRate" | "bandwidth" | "meanLatency" | "answered">];

/** The `servers` and `clients` of a report, checked (ProtocolError if malformed). */
function parseRpc(body: Record<string, unknown>): RpcReport[] {
  const lists = [body.servers ?? [], body.clients ?? []];
  for (const list of lists) {
    if (!Array.isArray(list) || list.length > MAX_PORTS) throw new ProtocolError("stats.report: servers and clients must be arrays");
  }
  const parsed: RpcReport[] = [];
  for (const list of lists as unknown[][]) {
    for (const item of list) {
      const p = item as Record<string, unknown> | null;
      if (p === null || typeof p !== "object" || typeof p.id !== "string") throw new ProtocolError("stats.report: every port needs an id");
      const links: RpcEntry["links"] = [];
      if (p.links !== undefined) {
        if (!Array.isArray(p.links) || p.links.length > MAX_PORTS) throw new ProtocolError("stats.report: links must be an array");
        for (const l of p.links as Record<string, unknown>[]) {
          if (l === null || typeof l !== "object" || typeof l.server !== "string" || !TRANSPORTS.has(l.transport as string)) {
            throw new ProtocolError("stats.report: a client link needs a server id and a transport");
          }
          links.push({ server: l.server, transport: l.transport as LinkStats["transport"] });
        }
      }
      const e = { requests: count(p.requests, "requests"), errors: count(p.errors, "errors"), bytes: count(p.bytes, "bytes"), latency: count(p.latency, "latency"), timed: p.timed === undefined ? undefined : count(p.timed, "timed"), inFlight: count(p.inFlight, "inFlight"), links };
      parsed.push([p.id, e]);
    }
  }
  return parsed;
}

/** Counters of every port, and their rates. */
export class StatsBook {
  private readonly ports = new Map<string, PortEntry>();
  private readonly rpc = new Map<string, RpcEntry>();

  /**
   * Records one report of a node. `owns(id)` tells whether the port belongs to that node; other
   * ports are ignored (a node cannot speak for another). Throws ProtocolError on a malformed body.
   */
  report(body: Record<string, unknown>, owns: (id: string) => boolean, now = Date.now()): void {
    const rpc = parseRpc(body); // checked before anything is recorded
    const lists = [body.publishers ?? [], body.subscribers ?? []];
    for (const list of lists) {
      if (!Array.isArray(list) || list.length > MAX_PORTS) throw new ProtocolError("stats.report: publishers and subscribers must be arrays");
    }
    for (const list of lists as unknown[][]) {
      for (const item of list) {
        const p = item as Record<string, unknown> | null;
        if (p === null || typeof p !== "object" || typeof p.id !== "string") throw new ProtocolError("stats.report: every port needs an id");
        const messages = count(p.messages, "messages");
        const bytes = count(p.bytes, "bytes");
        const waits = count(p.waits, "waits");
        const drops = count(p.drops, "drops");
        const links: PortEntry["links"] = [];
        if (p.links !== undefined) {
          if (!Array.isArray(p.links) || p.links.length > MAX_PORTS) throw new ProtocolError("stats.report: links must be an array");
          for (const l of p.links as Record<string, unknown>[]) {
            if (l === null || typeof l !== "object" || typeof l.publisher !== "string" || !TRANSPORTS.has(l.transport as string)) {
              throw new ProtocolError("stats.report: a link needs a publisher id and a transport");
            }
            links.push({ publisher: l.publisher, transport: l.transport as LinkStats["transport"] });
          }
        }
        if (!owns(p.id)) continue;
        const prev = this.ports.get(p.id);
        const entry: PortEntry = { messages, bytes, waits, drops, links, at: now, rate: 0, bandwidth: 0, waitRate: 0, dropRate: 0 };
        if (prev && now > prev.at) {
          const dt = (now - prev.at) / 1000;
          entry.rate = Math.max(0, messages - prev.messages) / dt;
          entry.bandwidth = Math.max(0, bytes - prev.bytes) / dt;
          entry.waitRate = Math.max(0, waits - prev.waits) / dt;
          entry.dropRate = Math.max(0, drops - prev.drops) / dt;
        }
        this.ports.set(p.id, entry);
      }
    }
    this.recordRpc(rpc, owns, now);
  }

  /** Records the parsed `servers` and `clients` of a report. */
  private recordRpc(parsed: RpcReport[], owns: (id: string) => boolean, now: number): void {
    for (const [id, e] of parsed) {
      if (!owns(id)) continue;
      const prev = this.rpc.get(id);
      const entry: RpcEntry = { ...e, at: now, rate: 0, errorRate: 0, bandwidth: 0, meanLatency: NaN, answered: 0 };
      if (prev && now > prev.at) {
        const dt = (now - prev.at) / 1000;
        entry.rate = Math.max(0, e.requests - prev.requests) / dt;
        entry.errorRate = Math.max(0, e.errors - prev.errors) / dt;
        entry.bandwidth = Math.max(0, e.bytes - prev.bytes) / dt;
        entry.answered = Math.max(0, e.requests - e.errors - (prev.requests - prev.errors));
        const timed = e.timed !== undefined && prev.timed !== undefined ? e.timed - prev.timed : entry.answered;
        if (entry.answered > 0 && timed > 0) entry.meanLatency = Math.max(0, e.latency - prev.latency) / timed;
      }
      this.rpc.set(id, entry);
    }
  }

  /** Forgets ports that are no longer in the graph. */
  prune(alive: (id: string) => boolean): void {
    for (const id of this.ports.keys()) if (!alive(id)) this.ports.delete(id);
    for (const id of this.rpc.keys()) if (!alive(id)) this.rpc.delete(id);
  }

  /** Per-topic and per-service traffic for the ports of `snapshot`. */
  topics(snapshot: Snapshot, now = Date.now()): GraphStats {
    const fresh = (e: PortEntry | undefined): e is PortEntry => e !== undefined;
    const live = (e: PortEntry): boolean => now - e.at <= STATS_STALE_MS;
    const topics = snapshot.topics.map((topic): TopicStats => {
      const t: TopicStats = { topic, publishers: 0, subscribers: 0, rate: 0, bandwidth: 0, receiveRate: 0, messages: 0, bytes: 0, waits: 0, drops: 0, waitRate: 0, dropRate: 0, links: [], remote: [] };
      for (const p of snapshot.publishers) {
        if (p.topic !== topic) continue;
        t.publishers++;
        if (p.endpoints.remote !== undefined && !t.remote.includes(p.endpoints.remote)) t.remote.push(p.endpoints.remote);
        const e = this.ports.get(p.id);
        if (!fresh(e)) continue;
        t.messages += e.messages;
        t.bytes += e.bytes;
        t.waits += e.waits;
        if (live(e)) {
          t.rate += e.rate;
          t.bandwidth += e.bandwidth;
          t.waitRate += e.waitRate;
        }
      }
      for (const s of snapshot.subscribers) {
        if (s.topic !== topic) continue;
        t.subscribers++;
        const e = this.ports.get(s.id);
        if (!fresh(e)) continue;
        t.drops += e.drops;
        if (live(e)) {
          t.receiveRate += e.rate;
          t.dropRate += e.dropRate;
        }
        for (const l of e.links) t.links.push({ publisher: l.publisher, subscriber: s.id, transport: l.transport });
      }
      t.remote.sort();
      return t;
    });
    return { at: now, topics, services: this.services(snapshot, now) };
  }

  /** Per-service traffic. */
  private services(snapshot: Snapshot, now: number): ServiceStats[] {
    const live = (e: RpcEntry): boolean => now - e.at <= STATS_STALE_MS;
    return snapshot.services.map((service): ServiceStats => {
      const v: ServiceStats = { service, servers: 0, clients: 0, rate: 0, callRate: 0, bandwidth: 0, requests: 0, errors: 0, errorRate: 0, inFlight: 0, latency: null, links: [], remote: [] };
      for (const s of snapshot.servers) {
        if (s.service !== service) continue;
        v.servers++;
        if (s.endpoints.remote !== undefined && !v.remote.includes(s.endpoints.remote)) v.remote.push(s.endpoints.remote);
        const e = this.rpc.get(s.id);
        if (e === undefined) continue;
        v.requests += e.requests;
        if (live(e)) v.rate += e.rate;
      }
      let weighted = 0;
      let answered = 0;
      for (const c of snapshot.clients) {
        if (c.service !== service) continue;
        v.clients++;
        const e = this.rpc.get(c.id);
        if (e === undefined) continue;
        v.errors += e.errors;
        v.inFlight += e.inFlight;
        for (const l of e.links) v.links.push({ client: c.id, server: l.server, transport: l.transport });
        if (!live(e)) continue;
        v.callRate += e.rate;
        v.errorRate += e.errorRate;
        v.bandwidth += e.bandwidth;
        if (e.answered > 0 && !Number.isNaN(e.meanLatency)) {
          weighted += e.meanLatency * e.answered;
          answered += e.answered;
        }
      }
      if (answered > 0) v.latency = weighted / answered;
      v.remote.sort();
      return v;
    });
  }
}
