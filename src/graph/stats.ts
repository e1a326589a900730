/**
 * What the GraphServer knows about traffic: the counters nodes report (`stats.report`), turned
 * into rates per port and summed per topic for `plexus top` and the dashboard. Pure data.
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
}

/** The answer of the `stats` request. */
export interface GraphStats {
  /** When it was computed (ms since the epoch). */
  at: number;
  /** One entry per topic of the snapshot. */
  topics: TopicStats[];
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

const TRANSPORTS = new Set(["inproc", "shm", "tcp"]);
/** Most ports one report may carry. */
const MAX_PORTS = 10_000;

function count(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ProtocolError(`stats.report: ${what} must be a non-negative number`);
  return v;
}

/** Counters of every port, and their rates. */
export class StatsBook {
  private readonly ports = new Map<string, PortEntry>();

  /**
   * Records one report of a node. `owns(id)` tells whether the port belongs to that node; other
   * ports are ignored (a node cannot speak for another). Throws ProtocolError on a malformed body.
   */
  report(body: Record<string, unknown>, owns: (id: string) => boolean, now = Date.now()): void {
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
  }

  /** Forgets ports that are no longer in the graph. */
  prune(alive: (id: string) => boolean): void {
    for (const id of this.ports.keys()) if (!alive(id)) this.ports.delete(id);
  }

  /** Per-topic traffic for the ports of `snapshot`. */
  topics(snapshot: Snapshot, now = Date.now()): GraphStats {
    const fresh = (e: PortEntry | undefined): e is PortEntry => e !== undefined;
    const live = (e: PortEntry): boolean => now - e.at <= STATS_STALE_MS;
    const topics = snapshot.topics.map((topic): TopicStats => {
      const t: TopicStats = { topic, publishers: 0, subscribers: 0, rate: 0, bandwidth: 0, receiveRate: 0, messages: 0, bytes: 0, waits: 0, drops: 0, waitRate: 0, dropRate: 0, links: [] };
      for (const p of snapshot.publishers) {
        if (p.topic !== topic) continue;
        t.publishers++;
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
      return t;
    });
    return { at: now, topics };
  }
}
