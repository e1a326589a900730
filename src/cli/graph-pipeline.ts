/**
 * `plexus graph --pipelines`: the pipelines of a graph, units grouped by collection, each with
 * its placement (main thread, worker, process) and pid, connections drawn between units. Units
 * are found by their settings services (`<path>#settings`, docs/pipeline.md), their streams by
 * their topics (`<path>/<stream>`), connections by the topic edges.
 * @module
 */
import type { Snapshot } from "../graph/registry.js";
import type { Node } from "../node/node.js";
import { settingsService, type SettingsRequest } from "../pipeline/host.js";

/** One unit as the graph shows it. */
interface UnitView {
  path: string;
  label: string;
  /** Its settings now, when they could be read. */
  settings?: object;
}

/** The pipelines of a snapshot: units, the topics that are no unit's stream, arrows, collections. */
export interface PipelinePicture {
  /** Units, by path. */
  units: UnitView[];
  /** Topics in the connections that belong to no unit (a collection's own stream, a global topic). */
  topics: string[];
  /** Arrows between units and topics, labelled with the streams they join. */
  arrows: { from: string; to: string; label?: string }[];
  /** Every collection path (a proper prefix of a unit's path), outermost first. */
  collections: string[];
}

/** The suffix of a unit's settings service (`settingsService` in pipeline/host.ts). */
const SUFFIX = settingsService("");

/** Where a node runs, from the name the pipeline gave it and its pid and thread. */
function placementOf(node: Snapshot["nodes"][number] | undefined): string {
  if (node === undefined) return "?";
  const kind = /\((process|worker) /.exec(node.name)?.[1] ?? "main thread";
  return `${kind}, pid ${node.pid}${node.threadId ? ` thread ${node.threadId}` : ""}`;
}

/** The settings of a unit as a label shows them: `freq=0.5 rate=100`. */
function settingsText(settings: object): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/**
 * Builds the picture of the pipelines in `snap`; `settings` gives the settings of each unit by
 * path (read from its settings service), shown in its label.
 */
export function pipelinePicture(snap: Snapshot, settings: Map<string, object> = new Map()): PipelinePicture {
  const nodes = new Map(snap.nodes.map((n) => [n.id, n]));
  const units = snap.servers
    .filter((s) => s.service.endsWith(SUFFIX))
    .map((s) => {
      const path = s.service.slice(0, -SUFFIX.length);
      const now = settings.get(path);
      const shown = now === undefined || Object.keys(now).length === 0 ? "" : ` ${settingsText(now)}`;
      return { path, label: `${path.split("/").at(-1)} (${placementOf(nodes.get(s.node))})${shown}`, settings: now };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
  const paths = new Set(units.map((u) => u.path));
  /** The unit a topic is a stream of, with the stream's name. */
  const ownerOf = (topic: string): { unit: string; stream: string } | undefined => {
    const i = topic.lastIndexOf("/");
    return i > 0 && paths.has(topic.slice(0, i)) ? { unit: topic.slice(0, i), stream: topic.slice(i + 1) } : undefined;
  };
  const topics = new Set<string>();
  const arrows: PipelinePicture["arrows"] = [];
  for (const e of snap.edges) {
    const from = ownerOf(e.from);
    const to = ownerOf(e.to);
    if (from === undefined && to === undefined) continue; // not a pipeline's
    if (from === undefined) topics.add(e.from);
    if (to === undefined) topics.add(e.to);
    const label = [from?.stream, to?.stream].filter((x) => x !== undefined).join(" → ");
    arrows.push({ from: from ? `unit:${from.unit}` : `topic:${e.from}`, to: to ? `unit:${to.unit}` : `topic:${e.to}`, label: label || undefined });
  }
  const collections = new Set<string>();
  for (const u of units) {
    const parts = u.path.split("/");
    for (let i = 1; i < parts.length; i++) collections.add(parts.slice(0, i).join("/"));
  }
  return { units, topics: [...topics].sort(), arrows, collections: [...collections].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b)) };
}

/** The collection a unit or topic is drawn in: the longest collection path that prefixes it. */
function parentOf(path: string, collections: string[]): string | undefined {
  return collections.filter((c) => path.startsWith(`${c}/`)).sort((a, b) => b.length - a.length)[0];
}

/** Mermaid text: a subgraph per collection. */
export function pipelineMermaid(p: PipelinePicture): string {
  const ids = new Map<string, string>();
  const id = (key: string): string => {
    let v = ids.get(key);
    if (v === undefined) ids.set(key, (v = `${key[0]}${ids.size}`));
    return v;
  };
  const q = (s: string): string => `"${s.replace(/"/g, "#quot;")}"`;
  const lines = ["flowchart LR"];
  const inside = (parent: string | undefined, depth: number): void => {
    const pad = "  ".repeat(depth);
    for (const u of p.units.filter((x) => parentOf(x.path, p.collections) === parent)) lines.push(`${pad}${id(`unit:${u.path}`)}[${q(u.label)}]`);
    for (const t of p.topics.filter((x) => parentOf(x, p.collections) === parent)) lines.push(`${pad}${id(`topic:${t}`)}([${q(t)}])`);
    for (const c of p.collections.filter((x) => parentOf(x, p.collections) === parent)) {
      lines.push(`${pad}subgraph ${id(`collection:${c}`)}[${q(c)}]`);
      inside(c, depth + 1);
      lines.push(`${pad}end`);
    }
  };
  inside(undefined, 1);
  for (const a of p.arrows) lines.push(`  ${id(a.from)} -->${a.label ? `|${q(a.label)}|` : ""} ${id(a.to)}`);
  return `${lines.join("\n")}\n`;
}

/** Graphviz DOT text: a cluster per collection. */
export function pipelineDot(p: PipelinePicture): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = ["digraph pipelines {", "  rankdir=LR;", "  compound=true;"];
  let n = 0;
  const inside = (parent: string | undefined, depth: number): void => {
    const pad = "  ".repeat(depth);
    for (const u of p.units.filter((x) => parentOf(x.path, p.collections) === parent)) lines.push(`${pad}${q(`unit:${u.path}`)} [shape=box, label=${q(u.label)}];`);
    for (const t of p.topics.filter((x) => parentOf(x, p.collections) === parent)) lines.push(`${pad}${q(`topic:${t}`)} [shape=ellipse, label=${q(t)}];`);
    for (const c of p.collections.filter((x) => parentOf(x, p.collections) === parent)) {
      lines.push(`${pad}subgraph cluster_${n++} {`, `${pad}  label=${q(c)};`);
      inside(c, depth + 1);
      lines.push(`${pad}}`);
    }
  };
  inside(undefined, 1);
  for (const a of p.arrows) lines.push(`  ${q(a.from)} -> ${q(a.to)}${a.label ? ` [label=${q(a.label)}]` : ""};`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** Reads the settings of every unit of `snap` through `node` (each within 1 s; a unit that does not answer is left out). */
export async function unitSettings(node: Node, snap: Snapshot): Promise<Map<string, object>> {
  const out = new Map<string, object>();
  const services = [...new Set(snap.servers.filter((s) => s.service.endsWith(SUFFIX)).map((s) => s.service))];
  await Promise.all(
    services.map(async (service) => {
      const client = await node.client<SettingsRequest, object>(service);
      try {
        out.set(service.slice(0, -SUFFIX.length), await client.request({}, { timeout: 1000 }));
      } catch {
        // gone meanwhile, or busy: shown without its settings
      } finally {
        await client.close();
      }
    }),
  );
  return out;
}
