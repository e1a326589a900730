/**
 * `plexus graph`: the live graph (topics and request/response services) as Mermaid, Graphviz DOT or JSON.
 * @module
 */
import { Command, Option } from "commander";
import type { Snapshot } from "../graph/registry.js";
import type { GraphStats } from "../graph/stats.js";
import { action, connectGraph, joinGraph, type AddressOptions } from "./common.js";
import { describeUnits, pipelineDot, pipelineMermaid, pipelinePicture } from "./graph-pipeline.js";

/** Output formats of `plexus graph`. */
export const GRAPH_FORMATS = ["mermaid", "dot", "json"] as const;

/** The graph as drawn: nodes (processes/threads), topics, services and the arrows between them. */
export interface GraphPicture {
  /** Nodes, with their name. */
  nodes: { id: string; label: string }[];
  /** Topics. */
  topics: string[];
  /** Request/response services. */
  services: string[];
  /**
   * node -> topic (publishes), topic -> node (subscribes, with the link transports), topic ->
   * topic (edge), node -> service (calls: a client, with the link transports), service -> node
   * (serves: a server), another graph's host -> the queue it bridges (offers).
   */
  arrows: { from: string; to: string; kind: "publishes" | "subscribes" | "edge" | "calls" | "serves" | "offers"; label?: string }[];
}

/**
 * Builds the picture. `compact` leaves nodes out: topics, edges and services only, each topic
 * labelled with its publisher and subscriber counts, each service with its server and client
 * counts. Nodes without ports (such as this command) are left out.
 */
export function picture(snap: Snapshot, stats?: GraphStats, compact = false): GraphPicture {
  const topicId = (t: string): string => `topic:${t}`;
  const arrows: GraphPicture["arrows"] = snap.edges.map((e) => ({ from: topicId(e.from), to: topicId(e.to), kind: "edge" as const }));
  if (compact) {
    const count = (t: string): string => `${snap.publishers.filter((p) => p.topic === t).length} pub, ${snap.subscribers.filter((s) => s.topic === t).length} sub`;
    const ports = (v: string): string => `${snap.servers.filter((s) => s.service === v).length} srv, ${snap.clients.filter((c) => c.service === v).length} cli`;
    return {
      nodes: [],
      topics: snap.topics.map((t) => `${t} (${count(t)})`),
      services: serviceNames(snap).map((v) => `${v} (${ports(v)})`),
      arrows: arrows.map((a) => ({ ...a, from: relabel(a.from, count), to: relabel(a.to, count) })),
    };
  }
  const busy = new Set([...snap.publishers, ...snap.subscribers, ...snap.servers, ...snap.clients].map((p) => p.node));
  const nodes = snap.nodes.filter((n) => busy.has(n.id)).map((n) => ({ id: `node:${n.id}`, label: `${n.name} (pid ${n.pid}${n.threadId ? `, thread ${n.threadId}` : ""})` }));
  // Ports a bridge holds for another graph are drawn as that graph: one node per remote host.
  // Other graphs, also those with nothing held here (yet), as the bridges report them, with their queues.
  const reported = snap.remote ?? [];
  const remotes = [...new Set([...snap.publishers, ...snap.servers].map((p) => p.endpoints.remote).filter((r): r is string => r !== undefined).concat(reported.map((r) => r.origin)))].sort();
  nodes.push(...remotes.map((r) => ({ id: `remote:${r}`, label: `host ${r} (through a bridge)` })));
  for (const r of reported) {
    for (const q of r.queues) {
      const id = `queue:${r.origin}/${q}`;
      if (nodes.some((n) => n.id === id)) continue;
      nodes.push({ id, label: `queue ${q}` });
      arrows.push({ from: `remote:${r.origin}`, to: id, kind: "offers" });
    }
  }
  const owner = (p: { node: string; endpoints: { remote?: string } }): string => (p.endpoints.remote !== undefined ? `remote:${p.endpoints.remote}` : `node:${p.node}`);
  const seen = new Set<string>();
  for (const p of snap.publishers) {
    const key = `${owner(p)}>${p.topic}`;
    if (seen.has(key)) continue;
    seen.add(key);
    arrows.push({ from: owner(p), to: topicId(p.topic), kind: "publishes" });
  }
  const links = new Map<string, Set<string>>();
  for (const t of stats?.topics ?? []) for (const l of t.links) links.set(l.subscriber, (links.get(l.subscriber) ?? new Set()).add(l.transport));
  for (const s of snap.subscribers) {
    const key = `${s.topic}>${s.node}`;
    const transports = [...(links.get(s.id) ?? [])].sort().join("+");
    const existing = arrows.find((a) => a.kind === "subscribes" && `${a.from.slice(6)}>${a.to.slice(5)}` === key);
    if (existing) {
      if (transports) existing.label = [...new Set([...(existing.label ?? "").split("+"), ...transports.split("+")])].filter(Boolean).sort().join("+");
      continue;
    }
    arrows.push({ from: topicId(s.topic), to: `node:${s.node}`, kind: "subscribes", label: transports || undefined });
  }
  const calls = new Map<string, Set<string>>();
  for (const v of stats?.services ?? []) for (const l of v.links) calls.set(l.client, (calls.get(l.client) ?? new Set()).add(l.transport));
  const called = new Map<string, GraphPicture["arrows"][number]>();
  for (const c of snap.clients) {
    const key = `${c.node}>${c.service}`;
    const transports = calls.get(c.id) ?? new Set<string>();
    const a = called.get(key) ?? { from: `node:${c.node}`, to: `service:${c.service}`, kind: "calls" as const };
    if (!called.has(key)) {
      called.set(key, a);
      arrows.push(a);
    }
    const label = [...new Set([...(a.label ?? "").split("+"), ...transports])].filter(Boolean).sort().join("+");
    a.label = label || undefined;
  }
  for (const s of snap.servers) {
    const key = `serves:${s.service}>${owner(s)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    arrows.push({ from: `service:${s.service}`, to: owner(s), kind: "serves" });
  }
  return { nodes, topics: snap.topics, services: serviceNames(snap), arrows };
}

/** The services of a snapshot (with a server or a client), sorted. */
function serviceNames(snap: Snapshot): string[] {
  return snap.services;
}

function relabel(id: string, count: (t: string) => string): string {
  const t = id.slice("topic:".length);
  return `topic:${t} (${count(t)})`;
}

/** Mermaid flowchart text. */
export function toMermaid(p: GraphPicture): string {
  const ids = new Map<string, string>();
  const id = (key: string): string => {
    let v = ids.get(key);
    if (v === undefined) ids.set(key, (v = `${key.startsWith("node:") ? "n" : key.startsWith("remote:") ? "h" : key.startsWith("queue:") ? "q" : key.startsWith("service:") ? "s" : "t"}${ids.size}`));
    return v;
  };
  const q = (s: string): string => `"${s.replace(/"/g, "#quot;")}"`;
  const lines = ["flowchart LR"];
  for (const n of p.nodes) lines.push(`  ${id(n.id)}[${q(n.label)}]`);
  for (const t of p.topics) lines.push(`  ${id(`topic:${t}`)}([${q(t)}])`);
  for (const v of p.services) lines.push(`  ${id(`service:${v}`)}{{${q(v)}}}`);
  for (const a of p.arrows) {
    const arrow = a.kind === "edge" ? "==>" : a.kind === "serves" || a.kind === "offers" ? "-.->" : "-->";
    lines.push(`  ${id(a.from)} ${arrow}${a.label ? `|${a.label}|` : ""} ${id(a.to)}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Graphviz DOT text. */
export function toDot(p: GraphPicture): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = ["digraph plexus {", "  rankdir=LR;"];
  for (const n of p.nodes) lines.push(`  ${q(n.id)} [shape=box, label=${q(n.label)}];`);
  for (const t of p.topics) lines.push(`  ${q(`topic:${t}`)} [shape=ellipse, label=${q(t)}];`);
  for (const v of p.services) lines.push(`  ${q(`service:${v}`)} [shape=hexagon, label=${q(v)}];`);
  for (const a of p.arrows) {
    const attrs = [a.kind === "edge" ? "style=bold" : a.kind === "serves" || a.kind === "offers" ? "style=dashed" : "", a.label ? `label=${q(a.label)}` : ""].filter(Boolean).join(", ");
    lines.push(`  ${q(a.from)} -> ${q(a.to)}${attrs ? ` [${attrs}]` : ""};`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** The `graph` command. */
export function graphCommand(): Command {
  return new Command("graph")
    .description("print the live graph: nodes, topics, publishers, subscribers, edges, request/response services and link transports")
    .addOption(new Option("-f, --format <format>", "output format").choices(GRAPH_FORMATS).default("mermaid"))
    .option("--compact", "topics and edges only (publisher/subscriber counts in the labels)")
    .option("--pipelines", "pipelines only: units grouped by collection, with their placement and pid (docs/pipeline.md)")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("graph", async (opts: AddressOptions & { format: (typeof GRAPH_FORMATS)[number]; compact?: boolean; pipelines?: boolean }) => {
        const graph = await connectGraph(opts, "plexus graph");
        let snap: Snapshot;
        let stats: GraphStats;
        try {
          [snap, stats] = await Promise.all([graph.request<Snapshot>("snapshot"), graph.request<GraphStats>("stats")]);
        } finally {
          await graph.close();
        }
        snap.nodes = snap.nodes.filter((n) => n.id !== graph.node);
        if (opts.pipelines === true) {
          await using node = await joinGraph(opts, "plexus graph");
          const pic = pipelinePicture(snap, await describeUnits(node, snap));
          process.stdout.write(opts.format === "json" ? `${JSON.stringify(pic, null, 2)}\n` : opts.format === "dot" ? pipelineDot(pic) : pipelineMermaid(pic));
          return;
        }
        if (opts.format === "json") {
          process.stdout.write(`${JSON.stringify(opts.compact ? { topics: snap.topics, edges: snap.edges, services: serviceNames(snap) } : { ...snap, stats: stats.topics, serviceStats: stats.services }, null, 2)}\n`);
          return;
        }
        const pic = picture(snap, stats, opts.compact === true);
        process.stdout.write(opts.format === "dot" ? toDot(pic) : toMermaid(pic));
      }),
    );
}
