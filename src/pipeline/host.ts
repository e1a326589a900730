/**
 * The host of the units of one thread (the main thread, a worker, a child process): one `Node`
 * joined to the graph, a publisher per output and a subscriber per input of each unit, the
 * units' work (handlers, producers, tasks), and their shutdown — inputs drained, work ended,
 * `shutdown()` called, each within a bound.
 * (Internal: not part of the public API.)
 * @module
 */
import { AbortError, ClosedError, UnitError } from "../errors.js";
import { threadId } from "node:worker_threads";
import { connect, type Node } from "../node/node.js";
import { settingsService, type SettingsRequest, type UnitDescription } from "../graph/units.js";
import type { Server } from "../rpc/server.js";
import type { Unit } from "./component.js";
import { readSettings } from "./settings.js";
import type { Input, Output } from "./stream.js";

/** An error as it crosses a thread or process: enough to rebuild it with its stack. */
export interface ErrorInfo {
  /** The error's name. */
  name: string;
  /** Its message. */
  message: string;
  /** Its stack. */
  stack?: string;
  /** Its `code`, if any. */
  code?: string;
}

/** What a host tells its runner while units run. */
export type HostEvent =
  | { t: "error"; path: string; what: string; error: ErrorInfo }
  | { t: "complete"; path: string }
  | { t: "terminate"; path: string };

/** How one unit's shutdown went. */
export interface StopReport {
  /** The unit. */
  path: string;
  /** It did not end its work or return from `shutdown()` within the bound. */
  hung?: boolean;
  /** What its `shutdown()` threw. */
  error?: ErrorInfo;
}

/** Bounds of a unit's shutdown (ms). */
export interface StopBounds {
  /** How long to wait for the unit's inputs to be drained (what upstream units sent, handled). */
  drain: number;
  /** How long the unit's work and `shutdown()` may take. */
  bound: number;
}

/** The description of any thrown value. */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack, code: (err as { code?: unknown }).code === undefined ? undefined : String((err as { code?: unknown }).code) };
  return { name: "Error", message: String(err) };
}

/** What each `UnitError` made by {@link unitError} was made of, to send it to another thread or process. */
const details = new WeakMap<UnitError, { path: string; what: string; error: ErrorInfo }>();

/** `err` as {@link unitError}'s arguments, to rebuild it elsewhere (`path` and "it could not start" for any other error). */
export function failureOf(err: unknown, path: string): { path: string; what: string; error: ErrorInfo } {
  return (err instanceof UnitError ? details.get(err) : undefined) ?? { path, what: "it could not start", error: errorInfo(err) };
}

/** A `UnitError` for the unit `path`, whose cause is the error `info` describes (rebuilt, stack kept). */
export function unitError(path: string, what: string, info: ErrorInfo): UnitError {
  const cause = new Error(info.message);
  Object.defineProperty(cause, "name", { value: info.name });
  if (info.code !== undefined) Object.defineProperty(cause, "code", { value: info.code });
  if (info.stack !== undefined) cause.stack = info.stack;
  const err = new UnitError(path, `${path}: ${what}: ${info.name}: ${info.message}`, { cause });
  if (info.stack !== undefined) err.stack = `${err.name}: ${err.message}\n  caused by: ${info.stack}`;
  details.set(err, { path, what, error: info });
  return err;
}

/** True for what a unit's work throws because it was told to stop (not a failure). */
function stopping(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (err instanceof AbortError || err instanceof ClosedError || (err instanceof Error && err.name === "AbortError"));
}

/** Resolves true when `p` settles within `ms`, false otherwise (its timer is cleared either way). */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), Math.max(0, ms));
    void p.then(
      () => (clearTimeout(t), resolve(true)),
      () => (clearTimeout(t), resolve(true)),
    );
  });
}

/** A running unit. */
interface Run {
  readonly unit: Unit<object>;
  readonly abort: AbortController;
  readonly inputs: Input<unknown>[];
  readonly outputs: Output<unknown>[];
  /** Its work in progress. */
  readonly work: Promise<void>[];
  /** Producers not done yet. */
  producing: number;
  completed: boolean;
  /** Its `initialize()` returned: its `shutdown()` is owed. */
  initialized: boolean;
  stopped: boolean;
  /** Its settings service. */
  settings?: Server;
}

/** The units of one thread. */
export class Host {
  private readonly runs = new Map<string, Run>();
  private begun = false;

  private constructor(
    private readonly node: Node,
    /** The node is this host's own (closed with it), not the runner's. */
    private readonly ownsNode: boolean,
    /** Where this host runs. */
    private readonly placement: "main" | "worker" | "process",
    private readonly emit: (e: HostEvent) => void,
  ) {}

  /**
   * Makes the ports of `units` and initializes them, on `graph`: the node to use (the runner's,
   * in its thread), or where to join the graph and as what. Rejects with a `UnitError` naming the
   * unit whose ports or `initialize()` failed (after closing everything it made).
   */
  static async open(units: Unit<object>[], graph: Node | { address: string; label: string }, emit: (e: HostEvent) => void, placement: "main" | "worker" | "process" = "main"): Promise<Host> {
    const own = !("publisher" in graph);
    const node = own ? await connect({ address: graph.address, embedded: false, name: graph.label }) : graph;
    const host = new Host(node, own, placement, emit);
    try {
      // Every publisher of the thread before any subscriber (a subscriber links to a publisher
      // of its thread by the value itself in either order; this order just saves the
      // GraphServer telling the subscribers already there about each new publisher).
      for (const unit of units) await host.add(unit, "outputs");
      for (const unit of units) await host.add(unit, "inputs");
      for (const unit of units) await host.add(unit, "initialize");
    } catch (err) {
      await host.close();
      throw err;
    }
    return host;
  }

  /** One step of opening `unit`: its outputs' publishers, its inputs' subscribers, or its settings service and `initialize()`. */
  private async add(unit: Unit<object>, step: "outputs" | "inputs" | "initialize"): Promise<void> {
    let run = this.runs.get(unit.path);
    if (run === undefined) {
      const streams = Object.values(unit).filter((v): v is Input<unknown> | Output<unknown> => typeof v === "object" && v !== null && (v as { owner?: unknown }).owner === unit);
      run = { unit, abort: new AbortController(), inputs: streams.filter((s): s is Input<unknown> => s.kind === "input"), outputs: streams.filter((s): s is Output<unknown> => s.kind === "output"), work: [], producing: 0, completed: false, initialized: false, stopped: false };
      this.runs.set(unit.path, run);
    }
    const r = run;
    try {
      if (step === "outputs") for (const o of r.outputs) o.port = await this.node.publisher(o.topic, { capacity: o.options.capacity, timeout: o.options.timeout });
      else if (step === "inputs") for (const i of r.inputs) i.port = await this.node.subscriber(i.topic, { backpressure: i.options.backpressure, queue: i.options.queue, transport: i.options.transport });
      else {
        r.settings = await this.node.server<SettingsRequest, object>(settingsService(unit.path), (req) => this.changeSettings(r, req));
        const begun = (): boolean => this.begun;
        unit.control = {
          signal: r.abort.signal,
          node: this.node,
          get started() {
            return begun();
          },
          complete: () => this.complete(r),
          terminate: () => this.emit({ t: "terminate", path: unit.path }),
        };
      }
    } catch (err) {
      throw unitError(unit.path, "its ports could not be made", errorInfo(err));
    }
    if (step !== "initialize") return;
    try {
      await unit.initialize();
      r.initialized = true;
    } catch (err) {
      throw unitError(unit.path, "initialize() threw", errorInfo(err));
    }
  }

  /**
   * Answers a settings request: checks the new settings against the unit's schema (a bad one is
   * an `InvalidArgumentError`, which the caller receives as a `RemoteError` of that code),
   * replaces them, calls `onSettings`, and answers with the settings now in force.
   */
  private async changeSettings(run: Run, req: SettingsRequest): Promise<object> {
    const { unit } = run;
    const previous = unit.settings;
    if (req?.describe === true) {
      const streams = [...run.inputs, ...run.outputs].map((s) => ({ name: s.name, kind: s.kind as "input" | "output", topic: s.topic }));
      const description: UnitDescription = { path: unit.path, placement: this.placement, pid: process.pid, threadId, streams, settings: previous };
      return description;
    }
    if (req?.set === undefined) return previous;
    const next = readSettings<object>(unit.path, unit.schema, { ...previous, ...req.set });
    unit.current = next;
    await unit.onSettings(next, previous);
    return next;
  }

  /** The units that have producers (the pipeline ends when all of them completed). */
  get producers(): string[] {
    return [...this.runs.values()].filter((r) => r.unit.work.producers.length > 0).map((r) => r.unit.path);
  }

  /** Starts the units' work: handlers, producers, tasks. */
  begin(): void {
    if (this.begun) return;
    this.begun = true;
    for (const run of this.runs.values()) {
      const { unit, abort } = run;
      const { signal } = abort;
      const fail = (what: string) => (err: unknown) => {
        if (!stopping(err, signal)) this.emit({ t: "error", path: unit.path, what, error: errorInfo(err) });
      };
      for (const { input, handler } of unit.work.handlers) {
        const sub = input.port;
        if (sub === undefined) continue;
        input.consumed = true;
        // Nothing around the handler: one call per message, as a hand-written forEach (whether
        // the input is drained is read from the subscriber: its consumer waits for a sample).
        run.work.push(sub.forEach((s) => handler(s.value)).catch(fail(`its handler of ${input.name} threw`)));
      }
      for (const { output, producer } of unit.work.producers) {
        run.producing++;
        run.work.push(
          (async () => {
            for await (const value of producer(signal)) {
              if (signal.aborted) break;
              await output.publish(value); // (bounded by the output's timeout; downstream units still run while this one stops)
            }
          })()
            .catch(fail(`its producer of ${output.name} threw`))
            .finally(() => {
              if (--run.producing === 0) this.complete(run);
            }),
        );
      }
      for (const task of unit.work.tasks) run.work.push(Promise.resolve().then(() => task(signal)).catch(fail("a task threw")));
    }
  }

  /** The unit completed (its producers returned, or it said so): its work is told to stop, the runner is told once. */
  private complete(run: Run): void {
    if (run.completed) return;
    run.completed = true;
    if (run.producing > 0) run.abort.abort(new AbortError(`${run.unit.path} completed`));
    this.emit({ t: "complete", path: run.unit.path });
  }

  /** Shuts the units `paths` down, together, and reports how each went. */
  stop(paths: string[], bounds: StopBounds): Promise<StopReport[]> {
    return Promise.all(paths.map((p) => this.stopUnit(p, bounds)));
  }

  private async stopUnit(path: string, { drain, bound }: StopBounds): Promise<StopReport> {
    const run = this.runs.get(path);
    if (run === undefined || run.stopped) return { path };
    run.stopped = true;
    const until = performance.now() + bound;
    run.abort.abort(new AbortError(`${path} is shutting down`));
    await this.drained(run.inputs, drain);
    for (const i of run.inputs) await i.port?.close();
    if (!(await within(Promise.all(run.work), until - performance.now()))) return { path, hung: true };
    let error: unknown;
    const shut = Promise.resolve().then(() => run.unit.shutdown());
    if (!(await within(shut.catch((e: unknown) => void (error = e)), until - performance.now()))) return { path, hung: true };
    await run.settings?.close({ linger: 0 });
    for (const o of run.outputs) await o.port?.close({ linger: Math.max(0, Math.min(500, until - performance.now())) });
    for (const s of [...run.inputs, ...run.outputs]) s.port = undefined;
    return error === undefined ? { path } : { path, error: errorInfo(error) };
  }

  /**
   * Resolves when every consumed input is drained: its consumer waiting for a sample (nothing
   * queued, nothing being handled) and nothing new received, for two looks 10 ms apart, or
   * after `ms`.
   */
  private async drained(inputs: Input<unknown>[], ms: number): Promise<void> {
    const consumed = inputs.filter((i) => i.consumed);
    const until = performance.now() + ms;
    let last = -1;
    let quiet = 0;
    while (consumed.length > 0 && performance.now() < until) {
      const received = consumed.reduce((n, i) => n + (i.port?.counters.messages ?? 0), 0);
      const busy = consumed.some((i) => i.port !== undefined && !i.port.idle);
      quiet = !busy && received === last ? quiet + 1 : 0;
      if (quiet >= 2) return;
      last = received;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Closes every port left (and the node, if it is the host's own). Units initialized and not
   * shut down yet (a start that failed elsewhere, the runner gone) are shut down first, together,
   * within 2 s.
   */
  async close(): Promise<void> {
    const owed = [...this.runs.values()].filter((r) => r.initialized && !r.stopped).map((r) => r.unit.path);
    if (owed.length > 0) await this.stop(owed, { drain: 0, bound: 2000 });
    for (const run of this.runs.values()) {
      run.abort.abort(new AbortError(`${run.unit.path} is shutting down`));
      await run.settings?.close({ linger: 0 });
      for (const s of [...run.inputs, ...run.outputs]) {
        await s.port?.close({ linger: 0 });
        s.port = undefined;
      }
    }
    if (this.ownsNode) await this.node.close({ linger: 0 });
  }

}
