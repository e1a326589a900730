/**
 * `plexus graph --pipelines`: the picture of the pipelines (dashboard/pipelines.ts: units grouped
 * by collection, each with its placement, pid and settings) as mermaid or DOT text.
 * @module
 */
import { type PipelinePicture } from "../dashboard/pipelines.js";

export { describeUnits, pipelinePicture, type PipelinePicture } from "../dashboard/pipelines.js";

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
