/**
 * The plan of a run: the components named by path, their checked settings, the topic edges of
 * every connection, the dependency order of the units and where each unit runs. Everything a
 * user can get wrong is refused here, before anything starts, with a typed error naming the
 * component: a cycle (`CycleError`), a connection to a stream of no component or an unknown path
 * in the placement (`NotFoundError`), a bad name, placement, direction or setting
 * (`InvalidArgumentError`).
 * (Internal: not part of the public API.)
 * @module
 */
import { CycleError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { checkTopic } from "../graph/registry.js";
import { describe, enumOption } from "../util/options.js";
import { PLACEMENTS, type Collection, type Component, type Placement, type Unit } from "./component.js";
import { readSettings } from "./settings.js";
import type { Connection, Input, Output, Topic } from "./stream.js";

/** A group of units that run together: in the main thread, or in one worker or process. */
export interface Group {
  /** "main", or the path of the component placed in a worker or process. */
  readonly key: string;
  /** Where it runs. */
  readonly placement: Placement;
  /** The paths of its units. */
  readonly units: string[];
}

/** The checked plan of a run. */
export interface Plan {
  /** The root's name (the first part of every path). */
  readonly name: string;
  /** Every component by path. */
  readonly components: Map<string, Component<object>>;
  /** Every unit by path. */
  readonly units: Map<string, Unit<object>>;
  /** Topic edges, one per connection between two different topics (a connection within one topic needs none). */
  readonly edges: { from: string; to: string }[];
  /** Unit paths by dependency level: sources first. */
  readonly levels: string[][];
  /** Where the units run: the main group first. */
  readonly groups: Group[];
}

/** Options of {@link plan}. */
export interface PlanOptions {
  /** The root's name. */
  name: string;
  /** Placement overrides by path. */
  placement?: Record<string, unknown>;
  /** Everything in the main thread. */
  single?: boolean;
  /** Settings overrides by path (live settings carried to a child, or given to the run). */
  settings?: Record<string, object>;
}

type AnyStream = Input<unknown> | Output<unknown>;

function isComponent(v: unknown): v is Component<object> {
  return typeof v === "object" && v !== null && ((v as { componentKind?: unknown }).componentKind === "unit" || (v as { componentKind?: unknown }).componentKind === "collection");
}

function isStream(v: unknown): v is AnyStream {
  const kind = typeof v === "object" && v !== null ? (v as { kind?: unknown }).kind : undefined;
  return (kind === "input" || kind === "output") && "options" in (v as object);
}

function isTopic(v: unknown): v is Topic<unknown> {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "topic";
}

function isUnit(c: Component<object>): c is Unit<object> {
  return c.componentKind === "unit";
}

/** Names every component and stream under `root` by path, refusing a bad name or a component held twice. */
function name(c: Component<object>, path: string, components: Map<string, Component<object>>): void {
  try {
    checkTopic(path);
  } catch {
    throw new InvalidArgumentError(`pipeline: ${JSON.stringify(path)} is not a valid component path (1..256 characters, no spaces)`);
  }
  if (components.has(path) || [...components.values()].includes(c)) throw new InvalidArgumentError(`pipeline: the component at ${JSON.stringify(path)} is also held elsewhere in the pipeline (use one instance per place)`);
  c.path = path;
  components.set(path, c);
  for (const [key, value] of Object.entries(c)) {
    if (key === "given" || key === "current" || key === "work" || key === "control") continue;
    if (isComponent(value)) {
      if (c.componentKind === "unit") throw new InvalidArgumentError(`${path}: a unit cannot hold components (${key}); use a collection`);
      name(value, `${path}/${key}`, components);
    } else if (isStream(value) && value.owner === undefined) {
      value.owner = c;
      value.name = key;
      value.path = `${path}/${key}`;
    }
  }
}

/** The topic of a connection's end, checking that it belongs to this pipeline and may be used in this direction. */
function endOf(col: Collection<object>, index: number, side: "from" | "to", end: unknown, components: Map<string, Component<object>>): string {
  const where = `${col.path}: connection ${index + 1} (${side})`;
  if (isTopic(end)) {
    try {
      return checkTopic(end.path);
    } catch (err) {
      throw new InvalidArgumentError(`${where}: ${(err as Error).message}`);
    }
  }
  if (!isStream(end)) throw new InvalidArgumentError(`${where} must be an input, an output or a topic, got ${describe(end)}`);
  const owner = end.owner as Component<object> | undefined;
  if (owner === undefined || components.get(owner.path) !== owner) throw new NotFoundError(`${where} is a stream of no component of this pipeline (declare it as a property of a unit or collection the pipeline holds)`);
  const unitEnd = owner.componentKind === "unit";
  if (side === "from" && unitEnd && end.kind === "input") throw new InvalidArgumentError(`${where}: ${end.path} is an input of a unit: it receives, it cannot send`);
  if (side === "to" && unitEnd && end.kind === "output") throw new InvalidArgumentError(`${where}: ${end.path} is an output of a unit: it sends, it cannot receive`);
  return end.topic;
}

/** Finds a cycle in the graph `next` (adjacency by node), as the list of its nodes, or undefined. */
function findCycle(next: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const m of next.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (s === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of next.keys()) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return undefined;
}

/** Builds and checks the plan of running `root`. */
export function plan(root: Component<object>, opts: PlanOptions): Plan {
  if (!isComponent(root)) throw new InvalidArgumentError(`pipeline: the system must be a Unit or a Collection, got ${describe(root)}`);
  const components = new Map<string, Component<object>>();
  name(root, opts.name, components);
  const units = new Map<string, Unit<object>>();
  for (const [path, c] of components) {
    c.current = readSettings(path, c.schema, { ...c.given, ...opts.settings?.[path] });
    if (isUnit(c)) units.set(path, c);
  }
  for (const path of Object.keys(opts.settings ?? {})) if (!components.has(path)) throw new NotFoundError(`pipeline: settings for ${JSON.stringify(path)}, which is no component (components: ${[...components.keys()].join(", ")})`);
  // Connections, as topic edges (a connection from a topic to itself, two streams given the same topic, is no edge).
  const edges: { from: string; to: string }[] = [];
  for (const c of components.values()) {
    if (c.componentKind !== "collection") continue;
    const col = c as Collection<object>;
    const list: Connection[] = col.connections();
    if (!Array.isArray(list)) throw new InvalidArgumentError(`${col.path}: connections() must return an array, got ${describe(list)}`);
    list.forEach((conn, i) => {
      const e = { from: endOf(col, i, "from", conn?.from, components), to: endOf(col, i, "to", conn?.to, components) };
      if (e.from !== e.to && !edges.some((x) => x.from === e.from && x.to === e.to)) edges.push(e);
    });
  }
  // The graph of topics, with each unit's inputs leading to its outputs: it must have no cycle.
  const next = new Map<string, string[]>();
  const add = (a: string, b: string): void => void (next.get(a) ?? next.set(a, []).get(a))?.push(b);
  for (const e of edges) add(e.from, e.to);
  const streamsOf = (u: Unit<object>): AnyStream[] => Object.values(u).filter((v): v is AnyStream => isStream(v) && v.owner === u);
  for (const u of units.values()) {
    const s = streamsOf(u);
    for (const i of s.filter((x) => x.kind === "input")) for (const o of s.filter((x) => x.kind === "output")) add(i.topic, o.topic);
  }
  const cycle = findCycle(next);
  if (cycle) {
    const err = new CycleError(cycle[0] as string, cycle[1] as string);
    err.message = `pipeline ${opts.name}: the connections form a cycle: ${cycle.join(" -> ")}`;
    throw err;
  }
  // Dependency order: a unit comes after every unit upstream of it.
  // (Units whose inputs are on a topic: several when streams are given one topic.)
  const ownersOfInput = new Map<string, string[]>();
  for (const u of units.values()) for (const s of streamsOf(u)) if (s.kind === "input") (ownersOfInput.get(s.topic) ?? ownersOfInput.set(s.topic, []).get(s.topic))?.push(u.path);
  const downstream = new Map<string, Set<string>>();
  for (const u of units.values()) {
    const reached = new Set<string>();
    const seen = new Set<string>();
    const walk = (t: string): void => {
      if (seen.has(t)) return;
      seen.add(t);
      const owners = ownersOfInput.get(t);
      for (const o of owners ?? []) reached.add(o);
      for (const e of edges) if (e.from === t) walk(e.to);
    };
    for (const s of streamsOf(u)) if (s.kind === "output") walk(s.topic);
    downstream.set(u.path, reached);
  }
  const level = new Map<string, number>();
  const levelOf = (p: string): number => {
    let l = level.get(p);
    if (l !== undefined) return l;
    l = 0;
    for (const [q, d] of downstream) if (d.has(p)) l = Math.max(l, levelOf(q) + 1);
    level.set(p, l);
    return l;
  };
  const levels: string[][] = [];
  for (const p of units.keys()) (levels[levelOf(p)] ??= []).push(p);
  // Placement: each unit runs where its nearest placed ancestor (or itself) says.
  const override = new Map<string, Placement>();
  for (const [path, p] of Object.entries(opts.placement ?? {})) {
    if (!components.has(path)) throw new NotFoundError(`placement: no component ${JSON.stringify(path)} in the pipeline (components: ${[...components.keys()].join(", ")})`);
    override.set(path, enumOption(path, p, PLACEMENTS, "main", "placement"));
  }
  const groups = new Map<string, Group>([["main", { key: "main", placement: "main", units: [] }]]);
  for (const u of units.values()) {
    let key = "main";
    let placement: Placement = "main";
    if (opts.single !== true) {
      for (let p = u.path; ; p = p.slice(0, p.lastIndexOf("/"))) {
        const c = components.get(p) as Component<object>;
        const at = override.get(p) ?? c.declaredPlacement;
        if (at !== undefined) {
          placement = at;
          key = at === "main" ? "main" : p;
          break;
        }
        if (!p.includes("/")) break;
      }
    }
    const g = groups.get(key) ?? groups.set(key, { key, placement, units: [] }).get(key);
    g?.units.push(u.path);
  }
  return { name: opts.name, components, units, edges, levels: levels.filter((l) => l !== undefined), groups: [...groups.values()] };
}
