/**
 * A real mosquitto broker, started by the tests (and the bench) themselves: a config file in a
 * temp dir (`listener PORT 127.0.0.1`, `allow_anonymous true`, no persistence), a free loopback
 * port, stopped with its process. `PLEXUS_MOSQUITTO` names another binary; the project's
 * `scripts/ensure-system.mjs` installs the distribution's package when it is missing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";
import type { TestBroker } from "./mqtt-broker.js";

/** The mosquitto binary. */
export const MOSQUITTO = process.env["PLEXUS_MOSQUITTO"] ?? "/usr/sbin/mosquitto";

/** Why mosquitto cannot be started here, or undefined if it can. */
export function mosquittoMissing(): string | undefined {
  return existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed (the Debian package mosquitto; scripts/ensure-system.mjs installs it)`;
}

/**
 * `setpriv --pdeathsig KILL` (util-linux) makes the kernel kill the broker when this process
 * dies, even by SIGKILL (a test runner's timeout), which no exit handler sees.
 */
const SETPRIV = "/usr/bin/setpriv";

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** Resolves once something accepts connections on `port`, rejects when `exited` settles first or after `ms`. */
async function listening(port: number, exited: Promise<unknown>, log: () => string, ms = 5000): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const end = Date.now() + ms;
  for (;;) {
    if (gone) throw new Error(`mosquitto exited before it listened on port ${port}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`mosquitto did not listen on port ${port} within ${ms} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A running mosquitto: a {@link TestBroker} and the pid of its current process. */
export interface MosquittoBroker extends TestBroker {
  /** The broker process's pid (a new one after {@link TestBroker.restart}). */
  readonly pid: number;
}

/** One mosquitto process on `port`; resolves once it accepts connections. */
async function startProcess(dir: string, port: number, extra: readonly string[]): Promise<{ pid: number; stop(): Promise<void> }> {
  const missing = mosquittoMissing();
  if (missing !== undefined) throw new Error(missing);
  const conf = join(dir, "mosquitto.conf");
  // `user`: run as this process's user (mosquitto started by root otherwise switches to its own
  // user, which would also clear the parent-death signal of SETPRIV).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nuser ${userInfo().username}\n${extra.map((l) => `${l}\n`).join("")}`);
  const [cmd, args] = existsSync(SETPRIV) ? [SETPRIV, ["--pdeathsig", "KILL", "--", MOSQUITTO, "-c", conf]] : [MOSQUITTO, ["-c", conf]];
  const proc = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  running.add(proc);
  let log = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => (log = (log + d).slice(-2000)));
  const exited = once(proc, "exit").finally(() => running.delete(proc));
  try {
    await listening(port, exited, () => log);
  } catch (err) {
    proc.kill("SIGKILL");
    await exited;
    throw err;
  }
  return {
    pid: proc.pid as number,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Starts mosquitto on a free loopback port.
 * @param config - more lines for its configuration file (e.g. `max_queued_messages 0`)
 */
export async function mosquitto(config: readonly string[] = []): Promise<MosquittoBroker> {
  const dir = mkdtempSync(join(tmpdir(), "plexus-mosquitto-"));
  let port = 0;
  let current: { pid: number; stop(): Promise<void> } | undefined;
  for (let attempt = 1; current === undefined; attempt++) {
    port = await freePort();
    try {
      current = await startProcess(dir, port, config);
    } catch (err) {
      if (attempt >= 3 || mosquittoMissing() !== undefined) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  let closed = false;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    kind: "mosquitto",
    get pid() {
      return current?.pid ?? 0;
    },
    async restart(downMs = 0) {
      await current?.stop();
      await new Promise((r) => setTimeout(r, downMs));
      current = await startProcess(dir, port, config);
    },
    async close() {
      if (closed) return;
      closed = true;
      await current?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
