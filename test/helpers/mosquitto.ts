/**
 * A real mosquitto broker, started by the tests (and the bench) themselves: a config file in a
 * temp dir (`listener PORT 127.0.0.1`, `allow_anonymous true`, no persistence), a free loopback
 * port, stopped with its process. `PLEXUS_MOSQUITTO` names another binary; the project's
 * `scripts/ensure-system.mjs` installs the distribution's package when it is missing.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";
import type { TestBroker } from "./mqtt-broker.js";
import { startServer, type ServerProcess } from "./server-process.js";

/** The mosquitto binary. */
export const MOSQUITTO = process.env["PLEXUS_MOSQUITTO"] ?? "/usr/sbin/mosquitto";

/** Why mosquitto cannot be started here, or undefined if it can. */
export function mosquittoMissing(): string | undefined {
  return existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed (the Debian package mosquitto; scripts/ensure-system.mjs installs it)`;
}

/** A running mosquitto: a {@link TestBroker} and the pid of its current process. */
export interface MosquittoBroker extends TestBroker {
  /** The broker process's pid (a new one after {@link TestBroker.restart}). */
  readonly pid: number;
}

/** One mosquitto process on `port`; resolves once it accepts connections. */
async function startProcess(dir: string, port: number, extra: readonly string[]): Promise<ServerProcess> {
  const missing = mosquittoMissing();
  if (missing !== undefined) throw new Error(missing);
  const conf = join(dir, "mosquitto.conf");
  // `user`: run as this process's user (mosquitto started by root otherwise switches to its own
  // user, which would also clear the parent-death signal the server helper asks for).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nuser ${userInfo().username}\n${extra.map((l) => `${l}\n`).join("")}`);
  return startServer("mosquitto", MOSQUITTO, ["-c", conf], port, 5000);
}

/**
 * Starts mosquitto on a free loopback port.
 * @param config - more lines for its configuration file (e.g. `max_queued_messages 0`)
 */
export async function mosquitto(config: readonly string[] = []): Promise<MosquittoBroker> {
  const dir = mkdtempSync(join(tmpdir(), "plexus-mosquitto-"));
  let port = 0;
  let current: ServerProcess | undefined;
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
