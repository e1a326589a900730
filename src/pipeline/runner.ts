/**
 * `run(system)` and `start(system)`: checks the pipeline, joins the graph (starting a GraphServer
 * in this process when none answers), connects the streams' topics, starts a host per placement
 * (this thread, worker threads, child processes), begins the units' work, and shuts everything
 * down in dependency order on a signal, `stop()`, completion or a unit's error.
 * @module
 */
import { pathToFileURL } from "node:url";
import { ClosedError, InvalidArgumentError, NotFoundError, PlexusError, RemoteError, UnitError } from "../errors.js";
import type { BlockingOptions } from "../util/blocking.js";
import { defaultAddress } from "../graph/client.js";
import { connect, type Node } from "../node/node.js";
import { readOptions } from "../util/options.js";
import type { Component, Placement } from "./component.js";
import { reentered } from "./entry.js";
import { settingsService, type SettingsRequest } from "../graph/units.js";
import { unitError, within, type HostEvent, type StopBounds, type StopReport } from "./host.js";
import { LocalHandle, RemoteHandle, type HostHandle } from "./link.js";
import { plan, type Plan } from "./plan.js";

/** Options of {@link run} and {@link start}. */
export interface RunOptions {
  /** The root's name: the first part of every path and topic (default: the system's class name). */
  name?: string;
  /** The GraphServer (default: `PLEXUS_GRAPH`, else 127.0.0.1:25978); one is started in this process when none answers. */
  address?: string;
  /** Placement by path, overriding what the components declare: `{ "SYS/FILTER": "process" }`. */
  placement?: Record<string, Placement>;
  /** Settings by path, over what the components were given: `{ "SYS/LFO": { freq: 0.5 } }`. */
  settings?: Record<string, object>;
  /**
   * Names of the graph nodes of the workers and processes, by the path of the component placed
   * there: what `plexus graph`, `plexus top` and the dashboard call them (default
   * `pipeline <name> (process <path>)`, `pipeline <name> (worker <path>)`).
   */
  names?: Record<string, string>;
  /** Run every unit in this thread, whatever the placements (tests, notebooks). */
  single?: boolean;
  /**
   * The module that builds the system, which workers and child processes import again to find
   * it (default: the program's entry, `process.argv[1]`). A path or a file URL.
   */
  module?: string | URL;
  /** Shut down on SIGINT and SIGTERM (default true). */
  signals?: boolean;
  /** How long each unit may take to end its work and return from `shutdown()` before it is killed (ms, default 5000). */
  shutdownTimeout?: number;
  /** How long to wait, at shutdown, for a unit's inputs to be drained of what upstream units sent (ms, default 1000). */
  drain?: number;
  /** How long workers and processes may take to start (ms, default 30000). */
  startTimeout?: number;
  /** @internal The node of the runner and its thread's units, instead of its own (the testing harness); left open. */
  node?: Node;
}

/** Where one unit runs. */
export interface UnitPlace {
  /** The unit's path. */
  path: string;
  /** Its placement. */
  placement: Placement;
  /** The process it runs in. */
  pid: number;
  /** Its thread (0: the main thread of that process). */
  threadId: number;
}

/** The state of a run. */
export type RunState = "running" | "stopping" | "stopped";

/**
 * A running pipeline: `stop()` shuts it down, `done` settles when it ended — resolved when it
 * stopped normally (completion, `stop()`, a signal), rejected with the `UnitError` of the first
 * unit that failed.
 */
export class Runner implements AsyncDisposable {
  /** Settles when the pipeline ended (see the class). */
  readonly done: Promise<void>;
  private state_: RunState = "running";
  private failure: Error | undefined;
  private finish!: () => void;
  private stopping: Promise<void> | undefined;
  private readonly signalHandler = (): void => {
    if (this.stopping) for (const h of this.hosts) h.kill();
    void this.stop();
  };

  private constructor(
    private readonly plan: Plan,
    private readonly node: Node,
    private readonly ownsNode: boolean,
    private readonly hosts: HostHandle[],
    private readonly hostOf: Map<string, HostHandle>,
    private readonly bounds: StopBounds,
    private readonly signals: boolean,
  ) {
    this.done = new Promise<void>((resolve, reject) => (this.finish = () => (this.failure ? reject(this.failure) : resolve())));
    this.done.catch(() => {}); // observed by whoever awaits it
  }

  /** Where each unit runs. */
  get places(): UnitPlace[] {
    return [...this.hostOf].map(([path, h]) => ({ path, placement: h instanceof LocalHandle ? "main" : (h.label.split(" ")[0] as Placement), ...h.where }));
  }

  /** The state of the run. */
  get state(): RunState {
    return this.state_;
  }

  /** @internal Use {@link start}. */
  static async start(system: Component<object>, opts: RunOptions | undefined): Promise<Runner> {
    const o = readOptions("run", opts);
    const name = o.string("name", 1) ?? (system?.constructor?.name || "pipeline");
    const address = o.string("address", 1) ?? defaultAddress();
    const single = o.bool("single", false);
    const signals = o.bool("signals", true);
    const bounds = { bound: o.ms("shutdownTimeout", 5000), drain: o.timeout("drain", 1000) };
    const startTimeout = o.ms("startTimeout", 30_000);
    const placement = o.object("placement", "an object of placements by path");
    const settings = o.object("settings", "an object of settings by path");
    const names = o.object("names", "an object of node names by path");
    const moduleOpt = opts?.module;
    if (moduleOpt !== undefined && typeof moduleOpt !== "string" && !(moduleOpt instanceof URL)) throw o.error("module", "a path or a file URL");
    const p = plan(system, { name, placement, settings, single });
    const remote = p.groups.filter((g) => g.placement !== "main" && g.units.length > 0);
    for (const [path, label] of Object.entries(names ?? {})) {
      if (!remote.some((g) => g.key === path)) throw new NotFoundError(`names: no worker or process is placed at ${JSON.stringify(path)} (placed: ${remote.map((g) => g.key).join(", ") || "none"})`);
      if (typeof label !== "string" || label.length === 0) throw o.error("names", "an object of non-empty node names by path", names);
    }
    let module = "";
    if (remote.length > 0) {
      const m = moduleOpt ?? process.argv[1];
      if (m === undefined) throw new InvalidArgumentError(`run: option "module" is needed to place ${remote[0]?.key} in a ${remote[0]?.placement} (no program entry to re-enter)`);
      module = m instanceof URL ? m.href : m.startsWith("file:") ? m : pathToFileURL(m).href;
    }
    const given = o.object("node");
    const node = given ?? (await connect({ address, name: `pipeline ${name} (runner)` }));
    const hosts: HostHandle[] = [];
    const hostOf = new Map<string, HostHandle>();
    const events: HostEvent[] = [];
    let runner: Runner | undefined;
    const onEvent = (e: HostEvent): void => void (runner ? runner.onEvent(e) : events.push(e));
    const current: Record<string, object> = {};
    for (const [path, c] of p.components) current[path] = c.settings;
    try {
      for (const e of p.edges) await node.connect(e.from, e.to);
      for (const g of p.groups) {
        if (g.units.length === 0) continue;
        const units = g.units.map((u) => p.units.get(u) as NonNullable<ReturnType<typeof p.units.get>>);
        const h = g.placement === "main" ? new LocalHandle(units, node, onEvent) : new RemoteHandle(g.placement, { module, name, group: g.key, units: g.units, settings: current, address, label: names?.[g.key] }, onEvent);
        hosts.push(h);
        for (const u of g.units) hostOf.set(u, h);
      }
      const producers = await opening(hosts, startTimeout);
      runner = new Runner(p, node, given === undefined, hosts, hostOf, bounds, signals);
      runner.awaiting = new Set(producers);
      for (const e of events) runner.onEvent(e);
      runner.watch();
      for (const h of hosts) h.begin();
      if (runner.awaiting.size === 0 && producers.length > 0) void runner.stop();
      return runner;
    } catch (err) {
      await Promise.all(hosts.map((h) => (h.dead ? undefined : within(h.close(), bounds.bound).then(() => h.kill()))));
      await p.edges.reduce((prev, e) => prev.then(() => node.disconnect(e.from, e.to).catch(() => {})), Promise.resolve());
      if (given === undefined) await node.close({ linger: 0 });
      throw err;
    }
  }

  /** Units with producers that have not completed yet. */
  private awaiting = new Set<string>();

  private watch(): void {
    if (this.signals) {
      process.on("SIGINT", this.signalHandler);
      process.on("SIGTERM", this.signalHandler);
    }
    for (const h of this.hosts) {
      void h.ended.then((what) => {
        if (this.stopping === undefined) this.fail(new UnitError(h.label.split(" ")[1] ?? "", `${h.label.split(" ")[1]}: its ${h.label.split(" ")[0]} ${what} while the pipeline ran`));
      });
    }
  }

  private onEvent(e: HostEvent): void {
    switch (e.t) {
      case "error":
        this.fail(unitError(e.path, e.what, e.error));
        return;
      case "complete":
        if (this.awaiting.delete(e.path) && this.awaiting.size === 0) void this.stop();
        return;
      case "terminate":
        void this.stop();
        return;
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    void this.stop();
  }

  /**
   * Stops the pipeline: every unit, in dependency order (upstream first), has its inputs
   * drained, its work ended and its `shutdown()` called, within `shutdownTimeout` (a unit that
   * takes longer is reported and its worker or process killed); then the workers and processes
   * end. Resolves when everything stopped (`done` says how it went).
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.state_ = "stopping";
    for (const level of this.plan.levels) {
      const byHost = new Map<HostHandle, string[]>();
      for (const path of level) {
        const h = this.hostOf.get(path) as HostHandle;
        if (!h.dead) (byHost.get(h) ?? byHost.set(h, []).get(h))?.push(path);
      }
      await Promise.all(
        [...byHost].map(async ([h, paths]) => {
          const reports: StopReport[] = await Promise.race([h.stop(paths, this.bounds).catch(() => paths.map((path) => ({ path, hung: true }))), h.ended.then(() => [])]);
          for (const r of reports) {
            if (r.error !== undefined) this.failure ??= unitError(r.path, "shutdown() threw", r.error);
            if (r.hung === true) {
              this.failure ??= new UnitError(r.path, `${r.path}: did not shut down within ${this.bounds.bound} ms${h instanceof LocalHandle ? " (it runs in the main thread: left behind)" : `; its ${h.label.split(" ")[0]} (pid ${h.where.pid}) was killed`}`);
              h.kill();
            }
          }
        }),
      );
    }
    await Promise.all(this.hosts.map((h) => (h.dead ? undefined : within(Promise.race([h.close(), h.ended]), this.bounds.bound))));
    for (const h of this.hosts) if (!(h instanceof LocalHandle) && !h.dead) h.kill();
    await Promise.all(this.hosts.map((h) => (h instanceof LocalHandle ? undefined : within(h.ended, 2000))));
    if (this.ownsNode) await this.node.close({ linger: 0 }).catch(() => {});
    else for (const e of this.plan.edges) await this.node.disconnect(e.from, e.to).catch(() => {});
    if (this.signals) {
      process.off("SIGINT", this.signalHandler);
      process.off("SIGTERM", this.signalHandler);
    }
    this.state_ = "stopped";
    this.finish();
  }

  /**
   * Changes some settings of the unit `path` while it runs, wherever it runs: they are checked
   * against its schema (`InvalidArgumentError` if wrong), replace its settings and its
   * `onSettings()` is called. Resolves with the settings now in force. The same service answers
   * `plexus settings` and any node of the graph (docs/pipeline.md).
   */
  async configure(path: string, settings: Record<string, unknown>, opts?: BlockingOptions): Promise<object> {
    if (!this.plan.units.has(path)) throw new NotFoundError(`no unit ${JSON.stringify(path)} in the pipeline (units: ${[...this.plan.units.keys()].join(", ")})`);
    if (this.state_ !== "running") throw new ClosedError(`the pipeline ${this.plan.name} is ${this.state_}`);
    const client = await this.node.client<SettingsRequest, object>(settingsService(path));
    try {
      return await client.request({ set: settings }, { timeout: 5000, ...opts });
    } catch (err) {
      // A refused setting is the unit's InvalidArgumentError, not a remote failure.
      if (err instanceof RemoteError && err.remoteCode === InvalidArgumentError.code) throw new InvalidArgumentError(err.message);
      throw err;
    } finally {
      await client.close();
    }
  }

  /** Stops the pipeline and waits for it (errors of the run stay in `done`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Opens every host, bounded by `ms`; resolves with the units that have producers, or rejects with the first failure. */
async function opening(hosts: HostHandle[], ms: number): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const h = hosts.find((x) => !(x instanceof LocalHandle));
      reject(new UnitError(h?.label.split(" ")[1] ?? "", `${h?.label ?? "a host"} did not start within ${ms} ms`));
    }, ms);
  });
  try {
    const lists = await Promise.race([Promise.all(hosts.map((h) => h.open())), late]);
    return lists.flat();
  } catch (err) {
    throw err instanceof PlexusError ? err : new UnitError("", String(err));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `system` and resolves once every unit runs (their `initialize()` returned), with the
 * {@link Runner}: `await runner.stop()`, `await runner.done`. Rejects with a typed error naming
 * the component when the pipeline is wrong or a unit cannot start, with nothing left running.
 * In a worker or process of a pipeline (which re-enters the program), it never settles: the
 * runner there hosts the units it was given.
 */
export function start(system: Component<object>, opts?: RunOptions): Promise<Runner> {
  if (reentered(system)) return new Promise<never>(() => {});
  return Runner.start(system, opts);
}

/**
 * Runs `system` until it ends: every producer done, a unit's `terminate()`, SIGINT or SIGTERM
 * (resolves), or a unit's error (rejects with its `UnitError`, after everything stopped). See
 * {@link start}.
 */
export async function run(system: Component<object>, opts?: RunOptions): Promise<void> {
  const runner = await start(system, opts);
  await runner.done;
}
