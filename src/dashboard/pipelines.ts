/**
 * The pipelines of a graph as `plexus graph --pipelines` and the dashboard show them: units
 * grouped by collection, each with its placement (main thread, worker, process), pid and thread,
 * and its settings; arrows between units, through the topics streams were given by name. Units
 * are found by their settings services (`<path>#settings`), which also describe them (where they
 * run, their streams' topics); a unit that did not answer is placed by its node's name and its
 * streams found by their default topics (`<path>/<stream>`).
 * @module
 */
import type { Snapshot } from "../graph/registry.js";
import { unitOfService, settingsService, type SettingsRequest, type UnitDescription } from "../graph/units.js";
import type { Node } from "../node/node.js";

/** One unit as the graph shows it. */
export interface UnitView {
  /** Its path. */
  path: string;
  /** Its name and placement, and its settings when known: `TICK (process, pid 12) interval=20`. */
  label: string;
  /** Where it runs: `main thread, pid 12`, `worker, pid 12 thread 3`, `process, pid 40`. */
  placement: string;
  /** Its settings now, when they could be read. */
  settings?: object;
}

/** The pipelines of a snapshot: units, the topics between them, arrows, collections. */
export interface PipelinePicture {
  /** Units, by path. */
  units: UnitView[];
  /** Topics drawn on their own: given by name to streams, or in connections (a collection's own stream, a global topic). */
  topics: string[];
  /** Arrows between units and topics, labelled with the streams they join. */
  arrows: { from: string; to: string; label?: string }[];
  /** Every collection path (a proper prefix of a unit's path), outermost first. */
  collections: string[];
}

/** Where a unit runs, from its description, else from the name the pipeline gave its node. */
function placementOf(d: UnitDescription | undefined, node: Snapshot["nodes"][number] | undefined): string {
  if (d !== undefined) return `${d.placement === "main" ? "main thread" : d.placement}, pid ${d.pid}${d.threadId ? ` thread ${d.threadId}` : ""}`;
  if (node === undefined) return "?";
  const kind = /\((process|worker) /.exec(node.name)?.[1] ?? (node.threadId ? "worker" : "main thread");
  return `${kind}, pid ${node.pid}${node.threadId ? ` thread ${node.threadId}` : ""}`;
}

/** The settings of a unit as a label shows them: `freq=0.5 rate=100`. */
function settingsText(settings: object): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** Builds the picture of the pipelines in `snap`; `about` gives each unit's description by path (from its settings service). */
export function pipelinePicture(snap: Snapshot, about: Map<string, UnitDescription> = new Map()): PipelinePicture {
  const nodes = new Map(snap.nodes.map((n) => [n.id, n]));
  const seen = new Set<string>();
  const units: UnitView[] = [];
  for (const s of snap.servers) {
    const path = unitOfService(s.service);
    if (path === undefined || seen.has(path)) continue;
    seen.add(path);
    const d = about.get(path);
    const placement = placementOf(d, nodes.get(s.node));
    const shown = d === undefined || Object.keys(d.settings).length === 0 ? "" : ` ${settingsText(d.settings)}`;
    units.push({ path, label: `${path.split("/").at(-1)} (${placement})${shown}`, placement, settings: d?.settings });
  }
  units.sort((a, b) => a.path.localeCompare(b.path));
  // Each topic's streams: by description, else by the default topic `<unit>/<stream>`.
  const byTopic = new Map<string, { unit: string; stream: string; kind: "input" | "output" }[]>();
  const add = (topic: string, v: { unit: string; stream: string; kind: "input" | "output" }): void => void (byTopic.get(topic) ?? byTopic.set(topic, []).get(topic))?.push(v);
  const described = new Set<string>();
  for (const u of units) {
    const d = about.get(u.path);
    if (d === undefined) continue;
    described.add(u.path);
    for (const s of d.streams) add(s.topic, { unit: u.path, stream: s.name, kind: s.kind });
  }
  const paths = new Set(units.map((u) => u.path));
  /** The unit a topic is the default topic of a stream of (its kind unknown without a description). */
  const ownerOf = (topic: string): { unit: string; stream: string } | undefined => {
    const i = topic.lastIndexOf("/");
    const unit = topic.slice(0, i);
    if (i <= 0 || !paths.has(unit)) return undefined;
    const own = (byTopic.get(topic) ?? []).find((x) => x.unit === unit);
    return own ?? (described.has(unit) ? undefined : { unit, stream: topic.slice(i + 1) });
  };
  const topics = new Set<string>();
  const arrows: PipelinePicture["arrows"] = [];
  for (const e of snap.edges) {
    const from = ownerOf(e.from);
    const to = ownerOf(e.to);
    if (from === undefined && to === undefined && !byTopic.has(e.from) && !byTopic.has(e.to)) continue; // not a pipeline's
    if (from === undefined) topics.add(e.from);
    if (to === undefined) topics.add(e.to);
    const label = [from?.stream, to?.stream].filter((x) => x !== undefined).join(" → ");
    arrows.push({ from: from ? `unit:${from.unit}` : `topic:${e.from}`, to: to ? `unit:${to.unit}` : `topic:${e.to}`, label: label || undefined });
  }
  // Streams given a topic by name: drawn through the topic.
  for (const [topic, streams] of byTopic) {
    const named = streams.filter((s) => `${s.unit}/${s.stream}` !== topic);
    if (named.length === 0) continue;
    topics.add(topic);
    for (const s of named) arrows.push(s.kind === "output" ? { from: `unit:${s.unit}`, to: `topic:${topic}`, label: s.stream } : { from: `topic:${topic}`, to: `unit:${s.unit}`, label: s.stream });
  }
  const collections = new Set<string>();
  for (const u of units) {
    const parts = u.path.split("/");
    for (let i = 1; i < parts.length; i++) collections.add(parts.slice(0, i).join("/"));
  }
  return { units, topics: [...topics].sort(), arrows, collections: [...collections].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b)) };
}

/** Reads the description of every unit of `snap` through `node` (each within 1 s; a unit that does not answer is left out). */
export async function describeUnits(node: Node, snap: Snapshot): Promise<Map<string, UnitDescription>> {
  const out = new Map<string, UnitDescription>();
  const paths = [...new Set(snap.servers.map((s) => unitOfService(s.service)).filter((p): p is string => p !== undefined))];
  await Promise.all(
    paths.map(async (path) => {
      const client = await node.client<SettingsRequest, UnitDescription>(settingsService(path));
      try {
        const d = await client.request({ describe: true }, { timeout: 1000 });
        if (typeof d === "object" && d !== null && Array.isArray(d.streams)) out.set(path, d);
      } catch {
        // gone meanwhile, or busy: shown without its description
      } finally {
        await client.close();
      }
    }),
  );
  return out;
}
