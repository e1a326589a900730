/**
 * The runner's handle on a {@link Host}: in its own thread (calls), or in a worker thread or a
 * child process (messages over the worker's port or the process's IPC channel). The messages
 * are requests with an id and their answers, plus the host's events.
 * (Internal: not part of the public API.)
 * @module
 */
import { fork, type ChildProcess } from "node:child_process";
import { Worker } from "node:worker_threads";
import { UnitError } from "../errors.js";
import type { Node } from "../node/node.js";
import type { Unit } from "./component.js";
import { childScript } from "./child-path.cjs";
import { Host, unitError, type ErrorInfo, type HostEvent, type StopBounds, type StopReport } from "./host.js";

/** What a worker or child process is told to host. */
export interface Job {
  /** The user's module (a file URL). */
  module: string;
  /** The pipeline's root name. */
  name: string;
  /** The component placed here (`SYS/FILTER`): the group's key. */
  group: string;
  /** The paths of the units to host. */
  units: string[];
  /** The checked settings of every component, by path. */
  settings: Record<string, object>;
  /** The GraphServer. */
  address: string;
  /** The name of the host's graph node, if the run gave one. */
  label?: string;
}

/** Runner -> host. */
export type ToHost =
  | { t: "open"; id: number; job: Job }
  | { t: "begin" }
  | { t: "stop"; id: number; paths: string[]; bounds: StopBounds }
  | { t: "close"; id: number };

/** Host -> runner. */
export type FromHost =
  | { t: "reply"; id: number; value?: unknown; error?: { path: string; what: string; error: ErrorInfo } }
  | { t: "event"; event: HostEvent };

/** The runner's handle on one host. */
export interface HostHandle {
  /** "main thread", "worker SYS/F", "process SYS/F". */
  readonly label: string;
  /** Where it runs: the process id and thread id. */
  readonly where: { pid: number; threadId: number };
  /** Opens the host: the units' ports and `initialize()`; resolves with the units that have producers. */
  open(): Promise<string[]>;
  /** Starts the units' work. */
  begin(): void;
  /** Stops some units. */
  stop(paths: string[], bounds: StopBounds): Promise<StopReport[]>;
  /** Closes the host (its node; the worker or process then ends). */
  close(): Promise<void>;
  /** Ends the worker or process at once (a no-op in the runner's thread). */
  kill(): void;
  /** The worker or process ended (resolves with a description); never for the runner's thread. */
  readonly ended: Promise<string>;
  /** True once it ended. */
  readonly dead: boolean;
}

/** The host in the runner's own thread. */
export class LocalHandle implements HostHandle {
  readonly label = "main thread";
  readonly where = { pid: process.pid, threadId: 0 };
  readonly ended = new Promise<string>(() => {});
  readonly dead = false;
  private host: Host | undefined;

  /** @param units - the units of this thread; @param node - the runner's node, which they use; @param onEvent - where their events go */
  constructor(
    private readonly units: Unit<object>[],
    private readonly node: Node,
    private readonly onEvent: (e: HostEvent) => void,
  ) {}

  /** Opens the host in this thread. */
  async open(): Promise<string[]> {
    this.host = await Host.open(this.units, this.node, this.onEvent);
    return this.host.producers;
  }

  /** Starts the units' work. */
  begin(): void {
    this.host?.begin();
  }

  /** Stops some units. */
  stop(paths: string[], bounds: StopBounds): Promise<StopReport[]> {
    return this.host?.stop(paths, bounds) ?? Promise.resolve([]);
  }

  /** Closes the host's ports (the node is the runner's). */
  async close(): Promise<void> {
    await this.host?.close();
  }

  /** Nothing: the runner's own thread cannot be killed. */
  kill(): void {}
}

/** A host in a worker thread or a child process. */
export class RemoteHandle implements HostHandle {
  readonly label: string;
  readonly where: { pid: number; threadId: number };
  readonly ended: Promise<string>;
  dead = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly send: (m: ToHost) => void;
  private readonly end: () => void;

  /** Starts the worker or process; @param kind - which; @param job - what it hosts; @param onEvent - where its events go */
  constructor(
    kind: "worker" | "process",
    private readonly job: Job,
    onEvent: (e: HostEvent) => void,
  ) {
    this.label = `${kind} ${job.group}`;
    let child: ChildProcess | Worker;
    const onMessage = (m: FromHost): void => {
      if (m.t === "event") return onEvent(m.event);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error !== undefined) p?.reject(unitError(m.error.path, m.error.what, m.error.error));
      else p?.resolve(m.value);
    };
    let ended!: (what: string) => void;
    this.ended = new Promise<string>((resolve) => (ended = resolve));
    const gone = (what: string): void => {
      if (this.dead) return;
      this.dead = true;
      for (const p of this.pending.values()) p.reject(new UnitError(job.group, `${job.group}: its ${kind} ${what}`));
      this.pending.clear();
      ended(what);
    };
    if (kind === "worker") {
      const w = (child = new Worker(childScript(), { stdin: false, argv: process.argv.slice(2) }));
      w.on("message", onMessage);
      w.on("error", (err) => gone(`failed: ${err.message}`));
      w.on("exit", (code) => gone(`(thread ${w.threadId}) exited with code ${code}`));
      this.where = { pid: process.pid, threadId: w.threadId };
      this.send = (m) => w.postMessage(m);
      this.end = () => void w.terminate();
    } else {
      const c = (child = fork(childScript(), process.argv.slice(2), { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] }));
      c.on("message", (m) => onMessage(m as FromHost));
      c.on("error", (err) => gone(`could not be started: ${err.message}`));
      c.on("exit", (code, signal) => gone(`(pid ${c.pid}) exited with ${signal ?? `code ${code}`}`));
      this.where = { pid: c.pid ?? 0, threadId: 0 };
      this.send = (m) => {
        if (c.connected) c.send(m);
      };
      this.end = () => void c.kill("SIGKILL");
    }
    void child;
  }

  private request<T>(m: { t: "open" | "stop" | "close" } & Record<string, unknown>): Promise<T> {
    if (this.dead) return Promise.reject(new UnitError(this.job.group, `${this.job.group}: its ${this.label} has ended`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.send({ ...m, id } as ToHost);
    });
  }

  /** Sends the job; resolves when its units are initialized. */
  open(): Promise<string[]> {
    return this.request<string[]>({ t: "open", job: this.job });
  }

  /** Starts the units' work. */
  begin(): void {
    this.send({ t: "begin" });
  }

  /** Stops some units. */
  stop(paths: string[], bounds: StopBounds): Promise<StopReport[]> {
    return this.request<StopReport[]>({ t: "stop", paths, bounds });
  }

  /** Closes the host; the worker or process then exits. */
  async close(): Promise<void> {
    await this.request<void>({ t: "close" }).catch(() => {});
  }

  /** Kills the worker (terminate) or the process (SIGKILL). */
  kill(): void {
    if (!this.dead) this.end();
  }
}
