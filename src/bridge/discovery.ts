/**
 * Discovery: every bridge announces its graph — what it exports — on `<prefix>.h.<graph>` at a
 * fixed interval and when it leaves; every bridge keeps the table of the other graphs it hears
 * from, and forgets a bridge that stays silent for three intervals (docs/scale-out.md,
 * *Discovery*). (Internal: not part of the public API.)
 * @module
 */
import { ProtocolError } from "../errors.js";
import { decode } from "../codec/index.js";
import { Kind, readEnvelope } from "./envelope.js";

/** What a bridge announces. */
export interface Announcement {
  /** The graph's name. */
  origin: string;
  /** The announcing bridge (random, per bridge run). */
  bridge: string;
  /** The machine it runs on. */
  hostname: string;
  /** Its process id. */
  pid: number;
  /** Milliseconds between its announcements. */
  interval: number;
  /** Topics it exports. */
  topics: string[];
  /** Services it exports. */
  services: string[];
  /** Queues it bridges, by name. */
  queues: string[];
  /** Nodes of its graph. */
  nodes: number;
  /** True in the last announcement of a bridge that leaves. */
  leaving: boolean;
}

/** A remote graph, as the bridges announcing it describe it. */
export interface RemoteHost {
  /** The graph's name. */
  origin: string;
  /** The machines its bridges run on. */
  hostnames: string[];
  /** Its bridges (ids). */
  bridges: string[];
  /** Topics exported by any of its bridges. */
  topics: string[];
  /** Services exported by any of its bridges. */
  services: string[];
  /** Queues bridged by any of its bridges. */
  queues: string[];
  /** Nodes of the graph (the largest count announced). */
  nodes: number;
  /** When it was last heard from (ms since the epoch). */
  lastSeen: number;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw new ProtocolError(`an announcement's ${what} must be a list of strings`);
  return v as string[];
}

/** Decodes an announcement (a `ProtocolError` if it is not one). */
export function readAnnouncement(data: Uint8Array): Announcement {
  const e = readEnvelope(data);
  if (e.kind !== Kind.Announce) throw new ProtocolError(`a bridge message of kind ${e.kind} on an announcement subject`);
  const a = decode(e.chunk) as Record<string, unknown> | null;
  if (a === null || typeof a !== "object") throw new ProtocolError("an announcement must be a map");
  const num = (k: string): number => {
    const v = a[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ProtocolError(`an announcement's ${k} must be a non-negative number`);
    return v;
  };
  if (typeof a["bridge"] !== "string" || typeof a["hostname"] !== "string") throw new ProtocolError("an announcement needs bridge and hostname strings");
  return {
    origin: e.origin,
    bridge: a["bridge"],
    hostname: a["hostname"],
    pid: num("pid"),
    interval: Math.max(100, num("interval")),
    topics: strings(a["topics"], "topics"),
    services: strings(a["services"], "services"),
    queues: strings(a["queues"] ?? [], "queues"),
    nodes: num("nodes"),
    leaving: a["leaving"] === true,
  };
}

/** The table of remote graphs. */
export class RemoteHosts {
  private readonly graphs = new Map<string, Map<string, { a: Announcement; seen: number }>>();

  /** Applies an announcement; returns the graph it changed. */
  apply(a: Announcement, now = Date.now()): string {
    let bridges = this.graphs.get(a.origin);
    if (bridges === undefined) {
      bridges = new Map();
      this.graphs.set(a.origin, bridges);
    }
    if (a.leaving) bridges.delete(a.bridge);
    else bridges.set(a.bridge, { a, seen: now });
    if (bridges.size === 0) this.graphs.delete(a.origin);
    return a.origin;
  }

  /** Forgets the bridges silent for three of their intervals (and a second); returns the graphs that changed. */
  expire(now = Date.now()): string[] {
    const changed: string[] = [];
    for (const [origin, bridges] of this.graphs) {
      for (const [id, b] of bridges) {
        if (now - b.seen > 3 * b.a.interval + 1000) {
          bridges.delete(id);
          if (!changed.includes(origin)) changed.push(origin);
        }
      }
      if (bridges.size === 0) this.graphs.delete(origin);
    }
    return changed;
  }

  /** A remote graph, if any bridge of it is known. */
  get(origin: string): RemoteHost | undefined {
    const bridges = this.graphs.get(origin);
    if (bridges === undefined) return undefined;
    const all = [...bridges.values()];
    const union = (f: (a: Announcement) => string[]): string[] => [...new Set(all.flatMap((b) => f(b.a)))].sort();
    return {
      origin,
      hostnames: union((a) => [a.hostname]),
      bridges: [...bridges.keys()],
      topics: union((a) => a.topics),
      services: union((a) => a.services),
      queues: union((a) => a.queues),
      nodes: Math.max(...all.map((b) => b.a.nodes)),
      lastSeen: Math.max(...all.map((b) => b.seen)),
    };
  }

  /** Every remote graph known. */
  list(): RemoteHost[] {
    return [...this.graphs.keys()].sort().map((o) => this.get(o) as RemoteHost);
  }
}
