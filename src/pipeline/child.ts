/**
 * The script a worker thread or a child process of a pipeline runs: it waits for its job,
 * re-enters the user's module to find the system (see entry.ts), hosts the units it was given,
 * and answers the runner. A child process ignores Ctrl-C (the runner shuts everything down in
 * order) and ends by itself when the runner is gone, even killed -9: it watches the runner's
 * process by a pidfd (readable as the process exits), and its IPC channel closing too.
 * (Internal: not part of the public API.)
 * @module
 */
import { isMainThread, parentPort } from "node:worker_threads";
import { InvalidArgumentError } from "../errors.js";
import { loadSystem } from "./entry.js";
import { Host, errorInfo, failureOf, unitError, type HostEvent } from "./host.js";
import type { FromHost, ToHost } from "./link.js";
import { plan } from "./plan.js";
import { whenProcessExits } from "../util/process-exit.js";
import type { Unit } from "./component.js";

const send: (m: FromHost) => void = isMainThread ? (m) => process.connected && process.send?.(m) : (m) => parentPort?.postMessage(m);
let host: Host | undefined;
let exiting = false;

/** Ends this thread or process after closing the host (bounded). */
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  setTimeout(() => process.exit(code), 2000).unref();
  void (host?.close() ?? Promise.resolve())
    .catch(() => {})
    .then(() => process.exit(code));
}

async function handle(m: ToHost): Promise<void> {
  switch (m.t) {
    case "open": {
      const { job } = m;
      try {
        const system = await loadSystem(job.module, job.group);
        const p = plan(system, { name: job.name, settings: job.settings, single: true });
        const units = job.units.map((path) => {
          const u = p.units.get(path);
          if (u === undefined) throw unitError(job.group, "no such unit", errorInfo(new InvalidArgumentError(`${job.module} builds a different pipeline here (no unit ${path}): the code before run() must build the same system in every process`)));
          return u;
        });
        host = await Host.open(units as Unit<object>[], { address: job.address, label: job.label ?? `pipeline ${job.name} (${isMainThread ? "process" : "worker"} ${job.group})` }, (event: HostEvent) => send({ t: "event", event }), isMainThread ? "process" : "worker");
        send({ t: "reply", id: m.id, value: host.producers });
      } catch (err) {
        send({ t: "reply", id: m.id, error: failureOf(err, job.group) });
      }
      return;
    }
    case "begin":
      host?.begin();
      return;
    case "stop":
      send({ t: "reply", id: m.id, value: (await host?.stop(m.paths, m.bounds)) ?? [] });
      return;
    case "close":
      await host?.close().catch(() => {});
      host = undefined;
      send({ t: "reply", id: m.id });
      exit(0);
      return;
  }
}

const receive = (m: unknown): void => void handle(m as ToHost);
if (isMainThread) {
  process.on("message", receive);
  process.on("SIGINT", () => {}); // Ctrl-C reaches the whole process group: the runner decides
  process.on("SIGTERM", () => exit(0));
  process.on("disconnect", () => exit(0)); // the runner is gone (even killed -9)
  // The runner's process itself, as it exits (the IPC channel may outlive it, e.g. held by
  // another process): no pidfd here (an old kernel) leaves the channel to tell. A runner gone
  // already (this process was handed to init) leaves it too.
  if (process.ppid > 1) whenProcessExits(process.ppid, () => exit(0));
} else {
  parentPort?.on("message", receive);
}
