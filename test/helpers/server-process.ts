/**
 * A real server program started by the tests (and the bench): spawned so that the kernel kills
 * it when this process dies, its stderr kept for error messages, and "started" meaning it accepts
 * connections on its port. Used by the mosquitto and nats-server helpers.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { connect } from "node:net";

/**
 * `setpriv --pdeathsig KILL` (util-linux) makes the kernel kill the server when this process
 * dies, even by SIGKILL (a test runner's timeout), which no exit handler sees.
 */
const SETPRIV = "/usr/bin/setpriv";

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** Resolves once something accepts connections on `port`, rejects when `exited` settles first or after `ms`. */
async function listening(what: string, port: number, exited: Promise<unknown>, log: () => string, ms: number): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const end = Date.now() + ms;
  for (;;) {
    if (gone) throw new Error(`${what} exited before it listened on port ${port}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${what} did not listen on port ${port} within ${ms} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A server process started by {@link startServer}. */
export interface ServerProcess {
  /** Its pid. */
  readonly pid: number;
  /** The last 4 KiB it wrote to stderr. */
  log(): string;
  /** True until it exited. */
  readonly alive: boolean;
  /** Sends `signal` (default SIGKILL) if it still runs, and resolves when it exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Spawns `cmd args` (stdout ignored, stderr kept) and resolves once it accepts connections on
 * loopback `port`; kills it and rejects if it exits first or does not listen within `ms`.
 */
export async function startServer(what: string, cmd: string, args: readonly string[], port: number, ms = 10_000): Promise<ServerProcess> {
  const [file, argv] = existsSync(SETPRIV) ? [SETPRIV, ["--pdeathsig", "KILL", "--", cmd, ...args]] : [cmd, [...args]];
  const proc = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"] });
  running.add(proc);
  let log = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => (log = (log + d).slice(-4096)));
  const exited = once(proc, "exit").finally(() => running.delete(proc));
  try {
    await listening(what, port, exited, () => log, ms);
  } catch (err) {
    proc.kill("SIGKILL");
    await exited;
    throw err;
  }
  return {
    pid: proc.pid as number,
    log: () => log,
    get alive() {
      return proc.exitCode === null && proc.signalCode === null;
    },
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}
