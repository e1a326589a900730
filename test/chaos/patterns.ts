/**
 * The chaos patterns: which participants a pattern has, how each is started, and what its
 * ledgers are held to. Pub/sub and request/response over shm, TCP and TLS (the GraphServer runs
 * in the driver); queues in both modes, with fresh identities (a restarted client is a new
 * client) and taken-over ones (a restarted client takes over the identity of the one killed),
 * over TCP, TLS and an MQTT broker (run in the driver).
 */
import { randomBytes } from "node:crypto";
import type { PeerArgs } from "./peer.js";
import type { Promises } from "./verdicts.js";

export type Net = "shm" | "tcp" | "tls" | "mqtt";

export interface Pattern {
  readonly name: string;
  readonly kind: "pubsub" | "rpc" | "queue";
  readonly net: Net;
  readonly mode?: "fast" | "reliable";
  readonly takeover?: boolean;
  readonly promises: Promises;
}

/** Every pattern `npm run chaos` runs by default. */
export function allPatterns(): Pattern[] {
  const out: Pattern[] = [];
  for (const net of ["shm", "tcp", "tls"] as const) {
    out.push({ name: `pubsub-${net}`, kind: "pubsub", net, promises: { resolvedIsReceived: false, gapless: true } });
    out.push({ name: `rpc-${net}`, kind: "rpc", net, promises: { resolvedIsReceived: true, gapless: false } });
  }
  for (const net of ["tcp", "tls", "mqtt"] as const) {
    for (const mode of ["fast", "reliable"] as const) {
      for (const takeover of [false, true]) {
        out.push({
          name: `queue-${mode}-${takeover ? "takeover" : "fresh"}-${net}`,
          kind: "queue",
          net,
          mode,
          takeover,
          // fast mode acknowledges on arrival in the receiver's queue: a receiver killed before its
          // application took the message loses it, and docs/queue.md says so
          promises: { resolvedIsReceived: mode === "reliable", gapless: false },
        });
      }
    }
  }
  return out;
}

/** Where a pattern's participants meet. */
export interface Meeting {
  ledger: string;
  graph: string;
  /** Queue URL (TCP and TLS on a port fixed for the pattern, so a restarted server is found again). */
  queueUrl: string;
  tls: { ca: string; key: string; cert: string };
  rate: number;
  memEvery?: number;
}

/** A role of a pattern and the arguments of its incarnation `n`. */
export interface RoleSpec {
  name: string;
  /** Receives messages (its ledger's `g` lines must grow while it lives). */
  receives: boolean;
  /** Starts operations (answers "settled" to "stop"). */
  sends: boolean;
  args(n: number): PeerArgs;
}

/** The roles of `p`: senders and receivers, two of the kind that is worth killing twice. */
export function rolesOf(p: Pattern, m: Meeting): RoleSpec[] {
  const transport = p.net === "shm" ? "shm" : "tcp";
  const tls = p.net === "tls" ? m.tls : undefined;
  const base = (name: string, n: number): Pick<PeerArgs, "tag" | "ledger" | "rate" | "memEvery" | "tls"> => ({ tag: `${name}.${n}`, ledger: m.ledger, rate: m.rate, memEvery: m.memEvery, tls });
  if (p.kind === "pubsub") {
    const topic = `chaos/${p.name}`;
    return [
      { name: "pub", receives: false, sends: true, args: (n) => ({ ...base("pub", n), role: "pub", graph: m.graph, name: topic, transport }) },
      { name: "sub1", receives: true, sends: false, args: (n) => ({ ...base("sub1", n), role: "sub", graph: m.graph, name: topic, transport }) },
      { name: "sub2", receives: true, sends: false, args: (n) => ({ ...base("sub2", n), role: "sub", graph: m.graph, name: topic, transport }) },
    ];
  }
  if (p.kind === "rpc") {
    const service = `chaos-${p.name}`;
    return [
      { name: "server1", receives: true, sends: false, args: (n) => ({ ...base("server1", n), role: "rpc-server", graph: m.graph, name: service, transport }) },
      { name: "server2", receives: true, sends: false, args: (n) => ({ ...base("server2", n), role: "rpc-server", graph: m.graph, name: service, transport }) },
      { name: "client", receives: false, sends: true, args: (n) => ({ ...base("client", n), role: "rpc-client", graph: m.graph, name: service, transport, inFlight: 8 }) },
    ];
  }
  const identities = [randomBytes(16).toString("hex"), randomBytes(16).toString("hex")];
  const q = (): Pick<PeerArgs, "url" | "mode" | "inFlight"> => ({ url: m.queueUrl, mode: p.mode, inFlight: p.mode === "reliable" ? 2 : 8 });
  return [
    { name: "server", receives: true, sends: true, args: (n) => ({ ...base("server", n), ...q(), role: "q-server" }) },
    ...[0, 1].map(
      (k): RoleSpec => ({
        name: `client${k + 1}`,
        receives: true,
        sends: true,
        args: (n) => ({ ...base(`client${k + 1}`, n), ...q(), role: "q-client", identity: p.takeover ? identities[k] : undefined }),
      }),
    ),
  ];
}
