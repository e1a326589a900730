/**
 * `plexus serve` (a GraphServer in the foreground), `plexus start` (the same, in the
 * background), `plexus stop` and `plexus status`. The background server writes a state file
 * (`PLEXUS_STATE_DIR`, default a per-user folder in the temp directory) so `stop` and `status`
 * find it.
 * @module
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { native } from "../native.js";
import { parseAddress } from "../graph/client.js";
import { GraphServer } from "../graph/server.js";
import { isLoopback } from "../net/loopback.js";
import type { Snapshot } from "../graph/registry.js";
import { SystemError } from "../errors.js";
import { bridgeOptions, bridgeSettings, startBridge, type BridgeCliOptions } from "./bridge.js";
import { action, addressOf, CliError, clientTls, connectGraph, Exit, intArg, palette, portArg, readArgFile, usageError, type AddressOptions } from "./common.js";

/** What a background server records about itself. */
export interface DaemonState {
  /** Its process id. */
  pid: number;
  /** `host:port` of its GraphServer. */
  address: string;
  /** URL of its dashboard, if on. */
  dashboard?: string;
  /** When it started (ISO time). */
  startedAt: string;
}

/** The folder of the state file: `PLEXUS_STATE_DIR`, else `<tmp>/plexus-<uid>`. */
export function stateDir(): string {
  return process.env.PLEXUS_STATE_DIR || join(tmpdir(), `plexus-${process.getuid?.() ?? "user"}`);
}

function stateFile(): string {
  return join(stateDir(), "daemon.json");
}

/** The background server's state, if its process is alive (a stale file is removed). */
export function readState(): DaemonState | undefined {
  let state: DaemonState;
  try {
    state = JSON.parse(readFileSync(stateFile(), "utf8")) as DaemonState;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(state.pid) || state.pid <= 0 || !native().processAlive(state.pid)) {
    rmSync(stateFile(), { force: true });
    return undefined;
  }
  return state;
}

interface ServeOptions extends AddressOptions, BridgeCliOptions {
  dashboard?: boolean | string;
  token?: string;
  tlsKey?: string;
  tlsCert?: string;
  stateFile?: boolean;
}

/** The options of `serve` and `start`, checked (a usage error if one is bad) before anything starts. */
function checkServe(opts: ServeOptions): { host: string; port: number; dashPort: number | undefined; tls: { key: Buffer; cert: Buffer } | undefined } {
  const { host, port } = parseAddress(addressOf(opts));
  const dashPort = opts.dashboard === undefined || opts.dashboard === false ? undefined : portArg(opts.dashboard, "--dashboard");
  if ((opts.tlsKey === undefined) !== (opts.tlsCert === undefined)) throw usageError("--tls-key and --tls-cert go together");
  const tls = opts.tlsKey !== undefined && opts.tlsCert !== undefined ? { key: readArgFile(opts.tlsKey, "--tls-key"), cert: readArgFile(opts.tlsCert, "--tls-cert") } : undefined;
  if (opts.nats !== undefined) bridgeSettings(opts, `${host}:${port}`); // checked before anything starts
  return { host, port, dashPort, tls };
}

/** Starts the GraphServer (and the dashboard); resolves once listening, with a stop function. */
async function serve(opts: ServeOptions): Promise<{ state: DaemonState; stop: () => Promise<void> }> {
  const { host, port, dashPort, tls } = checkServe(opts);
  const token = opts.token ?? (process.env.PLEXUS_TOKEN || undefined);
  let server: GraphServer;
  try {
    server = await GraphServer.start({ host, port, token, tls });
  } catch (err) {
    if (err instanceof SystemError && err.errnoName === "EADDRINUSE") throw new CliError(`${host}:${port} is in use (another GraphServer? try \`plexus status\`)`);
    throw err;
  }
  const address = `${host.includes(":") ? `[${host}]` : host}:${server.address.port}`;
  const state: DaemonState = { pid: process.pid, address, startedAt: new Date().toISOString() };
  let closeDashboard: (() => Promise<void>) | undefined;
  if (dashPort !== undefined) {
    const { Dashboard } = await import("../dashboard/server.js");
    // The dashboard's own subscriber (for watched topics) joins over loopback.
    const local = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : address.slice(0, address.lastIndexOf(":"));
    const graphAddress = `${local}:${server.address.port}`;
    const graphTls = tls ? (clientTls() ?? { ca: tls.cert }) : undefined;
    const dash = await Dashboard.start({ source: server, graphAddress, graphToken: token, graphTls, host, port: dashPort, token: isLoopback(host) ? undefined : token });
    state.dashboard = dash.url;
    closeDashboard = () => dash.close();
  }
  let closeBridge: (() => Promise<void>) | undefined;
  if (opts.nats !== undefined) {
    const local = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : address.slice(0, address.lastIndexOf(":"));
    try {
      const settings = bridgeSettings(opts, `${local}:${server.address.port}`);
      // The bridge joins this GraphServer with its own token and certificate.
      const graphTls = tls ? (clientTls() ?? { ca: tls.cert }) : undefined;
      const bridge = await startBridge({ ...settings, graph: { ...settings.graph, token, tls: graphTls } });
      closeBridge = () => bridge.close();
    } catch (err) {
      await closeDashboard?.();
      await server.close();
      throw err;
    }
  }
  return {
    state,
    stop: async () => {
      await closeBridge?.();
      await closeDashboard?.();
      await server.close();
    },
  };
}

/** Adds serve, start, stop and status to `cli`. */
export function addDaemonCommands(cli: Command): void {
  const serveOptions = (c: Command): Command =>
    c
      .option("-a, --address <host:port>", "where to listen (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
      .option("--dashboard [port]", "serve the web dashboard too (default: any free port)")
      .option("--token <token>", "access token nodes and the dashboard must present (required off loopback; default: PLEXUS_TOKEN)")
      .option("--tls-key <file>", "TLS private key (PEM) for the control connection (required off loopback)")
      .option("--tls-cert <file>", "TLS certificate (PEM)");
  bridgeOptions(serveOptions(cli.command("serve")))
    .option("--nats <urls>", "also run a bridge to this NATS cluster (see `plexus bridge`)")
    .description("run a GraphServer in the foreground (Ctrl-C stops it)")
    .addOption(new Option("--state-file", "write the state file for stop/status (used by start)").hideHelp())
    .action(
      action("serve", async (opts: ServeOptions) => {
        const { state, stop } = await serve(opts);
        const c = palette();
        if (opts.stateFile) {
          mkdirSync(stateDir(), { recursive: true, mode: 0o700 });
          const tmp = `${stateFile()}.${process.pid}`;
          writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
          renameSync(tmp, stateFile()); // `start` waits for this file: it appears complete
        }
        console.log(`GraphServer listening on ${c.bold(state.address)}`);
        if (state.dashboard) console.log(`dashboard: ${c.cyan(state.dashboard)}`);
        await new Promise<void>((resolve) => {
          const quit = (): void => resolve();
          process.once("SIGINT", quit);
          process.once("SIGTERM", quit);
        });
        await stop();
        if (opts.stateFile) {
          const current = readStateRaw();
          if (current?.pid === process.pid) rmSync(stateFile(), { force: true });
        }
      }),
    );
  serveOptions(cli.command("start"))
    .description("start a GraphServer in the background and print where it listens")
    .option("--wait <ms>", "how long to wait for it to listen", "10000")
    .action(action("start", async (opts: ServeOptions & { wait: string }) => start(opts)));
  cli
    .command("stop")
    .description("stop the background GraphServer started by `plexus start`")
    .option("--wait <ms>", "how long to wait for it to exit before killing it", "5000")
    .action(
      action("stop", async (opts: { wait: string }) => {
        const wait = intArg(opts.wait, "--wait", 0);
        const state = readState();
        if (state === undefined) throw new CliError("no background GraphServer is running (nothing to stop)", Exit.NoServer);
        process.kill(state.pid, "SIGTERM");
        const until = Date.now() + wait;
        while (native().processAlive(state.pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        if (native().processAlive(state.pid)) process.kill(state.pid, "SIGKILL");
        rmSync(stateFile(), { force: true });
        console.log(`stopped the GraphServer at ${state.address} (pid ${state.pid})`);
      }),
    );
  cli
    .command("status")
    .description("is a GraphServer running? (exit 0: yes, 3: no)")
    .option("-a, --address <host:port>", "ask this GraphServer instead of the background one")
    .option("--json", "print JSON")
    .action(
      action("status", async (opts: AddressOptions & { json?: boolean }) => {
        const state = opts.address === undefined ? readState() : undefined;
        const address = state?.address ?? addressOf(opts);
        const graph = await connectGraph({ address }, "plexus status");
        let snap: Snapshot;
        try {
          snap = await graph.request<Snapshot>("snapshot");
        } finally {
          await graph.close();
        }
        const others = snap.nodes.length - 1; // not counting this command
        const info = { running: true, address, pid: state?.pid ?? null, daemon: state !== undefined, dashboard: state?.dashboard ?? null, nodes: others, topics: snap.topics.length, services: snap.services.length };
        if (opts.json) console.log(JSON.stringify(info));
        else {
          const c = palette();
          console.log(`${c.green("running")}: GraphServer at ${address}${state ? ` (background, pid ${state.pid})` : ""}; ${others} node(s), ${snap.topics.length} topic(s), ${info.services} service(s)`);
          if (state?.dashboard) console.log(`dashboard: ${state.dashboard}`);
        }
      }),
    );
}

function readStateRaw(): DaemonState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(), "utf8")) as DaemonState;
  } catch {
    return undefined;
  }
}

/** `plexus start`: runs `plexus serve --state-file` detached and waits for its state file. */
async function start(opts: ServeOptions & { wait: string }): Promise<void> {
  checkServe(opts);
  const wait = intArg(opts.wait, "--wait", 0);
  const running = readState();
  if (running) throw new CliError(`a background GraphServer already runs at ${running.address} (pid ${running.pid}); \`plexus stop\` first`);
  mkdirSync(stateDir(), { recursive: true, mode: 0o700 });
  const log = join(stateDir(), "daemon.log");
  const fd = openSync(log, "w", 0o600);
  const args = [fileURLToPath(new URL("./main.js", import.meta.url)), "serve", "--state-file"];
  if (opts.address) args.push("--address", opts.address);
  if (opts.dashboard !== undefined) args.push(opts.dashboard === true ? "--dashboard" : `--dashboard=${String(opts.dashboard)}`);
  if (opts.token) args.push("--token", opts.token);
  if (opts.tlsKey) args.push("--tls-key", opts.tlsKey);
  if (opts.tlsCert) args.push("--tls-cert", opts.tlsCert);
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, NO_COLOR: "1" } });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  child.unref();
  const until = Date.now() + wait;
  while (Date.now() < until) {
    const state = existsSync(stateFile()) ? readStateRaw() : undefined;
    if (state !== undefined && state.pid === child.pid) {
      const c = palette();
      console.log(`GraphServer started in the background (pid ${state.pid}), listening on ${c.bold(state.address)}`);
      if (state.dashboard) console.log(`dashboard: ${c.cyan(state.dashboard)}`);
      console.log(`log: ${log}`);
      return;
    }
    if (exited !== undefined) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  let why = "";
  try {
    why = readFileSync(log, "utf8").trim();
  } catch {
    // no log
  }
  if (exited === undefined && child.pid) process.kill(child.pid, "SIGKILL");
  throw new CliError(`the background GraphServer did not start${why ? `: ${why}` : ""}`);
}
