/**
 * `plexus graph`: the live topic graph as Mermaid, Graphviz DOT or JSON.
 * @module
 */
import { Command, Option } from "commander";
import type { Snapshot } from "../graph/registry.js";
import type { GraphStats } from "../graph/stats.js";
import { action, connectGraph, type AddressOptions } from "./common.js";

/** Output formats of `plexus graph`. */
export const GRAPH_FORMATS = ["mermaid", "dot", "json"] as const;

/** The graph as drawn: nodes (processes/threads), topics and the arrows between them. */
export interface GraphPicture {
  /** Nodes, with their name. */
  nodes: { id: string; label: string }[];
  /** Topics. */
  topics: string[];
  /** node -> topic (publishes), topic -> node (subscribes, with the link transports), topic -> topic (edge). */
  arrows: { from: string; to: string; kind: "publishes" | "subscribes" | "edge"; label?: string }[];
}

/**
 * Builds the picture. `compact` leaves nodes out: topics and edges only, each topic labelled
 * with its publisher and subscriber counts. Nodes without ports (such as this command) are left out.
 */
export function picture(snap: Snapshot, stats?: GraphStats, compact = false): GraphPicture {
  const topicId = (t: string): string => `topic:${t}`;
  const arrows: GraphPicture["arrows"] = snap.edges.map((e) => ({ from: topicId(e.from), to: topicId(e.to), kind: "edge" as const }));
  if (compact) {
    const count = (t: string): string => `${snap.publishers.filter((p) => p.topic === t).length} pub, ${snap.subscribers.filter((s) => s.topic === t).length} sub`;
    return { nodes: [], topics: snap.topics.map((t) => `${t} (${count(t)})`), arrows: arrows.map((a) => ({ ...a, from: relabel(a.from, count), to: relabel(a.to, count) })) };
  }
  const busy = new Set([...snap.publishers.map((p) => p.node), ...snap.subscribers.map((s) => s.node)]);
  const nodes = snap.nodes.filter((n) => busy.has(n.id)).map((n) => ({ id: `node:${n.id}`, label: `${n.name} (pid ${n.pid}${n.threadId ? `, thread ${n.threadId}` : ""})` }));
  const seen = new Set<string>();
  for (const p of snap.publishers) {
    const key = `${p.node}>${p.topic}`;
    if (seen.has(key)) continue;
    seen.add(key);
    arrows.push({ from: `node:${p.node}`, to: topicId(p.topic), kind: "publishes" });
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
  return { nodes, topics: snap.topics, arrows };
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
    if (v === undefined) ids.set(key, (v = `${key.startsWith("node:") ? "n" : "t"}${ids.size}`));
    return v;
  };
  const q = (s: string): string => `"${s.replace(/"/g, "#quot;")}"`;
  const lines = ["flowchart LR"];
  for (const n of p.nodes) lines.push(`  ${id(n.id)}[${q(n.label)}]`);
  for (const t of p.topics) lines.push(`  ${id(`topic:${t}`)}([${q(t)}])`);
  for (const a of p.arrows) {
    const arrow = a.kind === "edge" ? "==>" : "-->";
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
  for (const a of p.arrows) {
    const attrs = [a.kind === "edge" ? "style=bold" : "", a.label ? `label=${q(a.label)}` : ""].filter(Boolean).join(", ");
    lines.push(`  ${q(a.from)} -> ${q(a.to)}${attrs ? ` [${attrs}]` : ""};`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** The `graph` command. */
export function graphCommand(): Command {
  return new Command("graph")
    .description("print the live topic graph: nodes, topics, publishers, subscribers, edges and link transports")
    .addOption(new Option("-f, --format <format>", "output format").choices(GRAPH_FORMATS).default("mermaid"))
    .option("--compact", "topics and edges only (publisher/subscriber counts in the labels)")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("graph", async (opts: AddressOptions & { format: (typeof GRAPH_FORMATS)[number]; compact?: boolean }) => {
        const graph = await connectGraph(opts, "plexus graph");
        let snap: Snapshot;
        let stats: GraphStats;
        try {
          [snap, stats] = await Promise.all([graph.request<Snapshot>("snapshot"), graph.request<GraphStats>("stats")]);
        } finally {
          await graph.close();
        }
        snap.nodes = snap.nodes.filter((n) => n.id !== graph.node);
        if (opts.format === "json") {
          process.stdout.write(`${JSON.stringify(opts.compact ? { topics: snap.topics, edges: snap.edges } : { ...snap, stats: stats.topics }, null, 2)}\n`);
          return;
        }
        const pic = picture(snap, stats, opts.compact === true);
        process.stdout.write(opts.format === "dot" ? toDot(pic) : toMermaid(pic));
      }),
    );
}
