/**
 * Real nats-server processes started by the tests (and the bench) themselves: one server, or a
 * cluster of them (routes on loopback ports, JetStream with a store directory each), each from a
 * configuration file in a temp dir on free loopback ports. `PLEXUS_NATS_SERVER` names another
 * binary; the project's `scripts/ensure-system.mjs` installs the distribution's package when it
 * is missing.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";
import { startServer, type ServerProcess } from "./server-process.js";

/** The nats-server binary. */
export const NATS_SERVER = process.env["PLEXUS_NATS_SERVER"] ?? "/usr/sbin/nats-server";

/** Why nats-server cannot be started here, or undefined if it can. */
export function natsMissing(): string | undefined {
  return existsSync(NATS_SERVER) ? undefined : `${NATS_SERVER} is not installed (the Debian package nats-server; scripts/ensure-system.mjs installs it)`;
}

/** How to start a server. */
export interface NatsOptions {
  /** Enable JetStream (a store directory in the temp dir). */
  jetstream?: boolean;
  /** The server's `max_payload` in bytes (nats-server's default is 1 MiB). */
  maxPayload?: number;
  /** Client authentication. */
  auth?: { user: string; pass: string } | { token: string } | { nkey: string };
  /** TLS for clients (PEM file contents); `verify` asks clients for a certificate signed by `ca`. */
  tls?: { cert: string; key: string; ca: string; verify?: boolean };
  /** More lines for the configuration file. */
  extra?: readonly string[];
}

/** One running nats-server (stoppable and restartable on the same ports and store). */
export interface NatsServer {
  /** `nats://127.0.0.1:port` (`tls://` when TLS is on). */
  readonly url: string;
  /** Its client port. */
  readonly port: number;
  /** The pid of its current process (0 when stopped). */
  readonly pid: number;
  /** Kills it (SIGKILL unless told otherwise); the ports and the store stay for {@link start}. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again after {@link stop}. */
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  close(): Promise<void>;
}

/** A cluster of servers, every one routed to every other. */
export interface NatsCluster {
  /** Its servers. */
  readonly servers: readonly NatsServer[];
  /** Every server's URL. */
  readonly urls: string[];
  /** Stops every server and removes their files. */
  close(): Promise<void>;
}

interface Ports {
  client: number;
  http: number;
  cluster: number;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function config(dir: string, name: string, ports: Ports, opts: NatsOptions, routes: readonly number[] | undefined): string {
  const lines = [`server_name: ${quote(name)}`, `listen: "127.0.0.1:${ports.client}"`, `http: "127.0.0.1:${ports.http}"`];
  if (opts.maxPayload !== undefined) lines.push(`max_payload: ${opts.maxPayload}`);
  if (opts.jetstream) {
    mkdirSync(join(dir, "js"), { recursive: true });
    lines.push(`jetstream { store_dir: ${quote(join(dir, "js"))}, max_memory_store: 268435456, max_file_store: 2147483648 }`);
  }
  if (routes !== undefined) {
    lines.push(`cluster { name: "plexus-test", listen: "127.0.0.1:${ports.cluster}", routes: [${routes.map((p) => quote(`nats-route://127.0.0.1:${p}`)).join(", ")}] }`);
  }
  const auth = opts.auth;
  if (auth !== undefined) {
    if ("user" in auth) lines.push(`authorization { user: ${quote(auth.user)}, password: ${quote(auth.pass)} }`);
    else if ("token" in auth) lines.push(`authorization { token: ${quote(auth.token)} }`);
    else lines.push(`authorization { users: [ { nkey: ${quote(auth.nkey)} } ] }`);
  }
  if (opts.tls !== undefined) {
    for (const [file, pem] of [["cert.pem", opts.tls.cert], ["key.pem", opts.tls.key], ["ca.pem", opts.tls.ca]] as const) writeFileSync(join(dir, file), pem);
    lines.push(`tls { cert_file: ${quote(join(dir, "cert.pem"))}, key_file: ${quote(join(dir, "key.pem"))}, ca_file: ${quote(join(dir, "ca.pem"))}, verify: ${opts.tls.verify === true} }`);
  }
  lines.push(...(opts.extra ?? []));
  return `${lines.join("\n")}\n`;
}

/** GET `http://127.0.0.1:port/path`: the status code, or 0 when nothing answered. */
function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

function makeServer(dir: string, name: string, ports: Ports, opts: NatsOptions, routes: readonly number[] | undefined): NatsServer {
  const conf = join(dir, "nats.conf");
  writeFileSync(conf, config(dir, name, ports, opts, routes));
  let current: ServerProcess | undefined;
  let closed = false;
  const server: NatsServer = {
    url: `${opts.tls ? "tls" : "nats"}://127.0.0.1:${ports.client}`,
    port: ports.client,
    get pid() {
      return current?.alive ? current.pid : 0;
    },
    async start() {
      const missing = natsMissing();
      if (missing !== undefined) throw new Error(missing);
      current = await startServer("nats-server", NATS_SERVER, ["-c", conf], ports.client);
    },
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      await current?.stop(signal);
    },
    async close() {
      if (closed) return;
      closed = true;
      await current?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

async function ports(): Promise<Ports> {
  return { client: await freePort(), http: await freePort(), cluster: await freePort() };
}

/** Starts one nats-server on free loopback ports; resolves once it accepts clients. */
export async function natsServer(opts: NatsOptions = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), "plexus-nats-"));
  const server = makeServer(dir, "n1", await ports(), opts, undefined);
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}

/**
 * Starts `size` nats-servers routed to each other (JetStream on unless `jetstream: false`);
 * resolves once every one reports itself healthy (`/healthz`: with JetStream, its meta group
 * has a leader), so a stream with `size` replicas can be made at once.
 */
export async function natsCluster(size = 3, opts: NatsOptions = {}): Promise<NatsCluster> {
  const all = await Promise.all(Array.from({ length: size }, ports));
  const jsOpts = { jetstream: true, ...opts };
  const servers = all.map((p, i) => makeServer(mkdtempSync(join(tmpdir(), `plexus-nats-${i + 1}-`)), `n${i + 1}`, p, jsOpts, all.filter((q) => q !== p).map((q) => q.cluster)));
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.close()));
  };
  try {
    await Promise.all(servers.map((s) => s.start()));
    const end = Date.now() + 30_000;
    for (const p of all) {
      while ((await httpStatus(p.http, "/healthz")) !== 200) {
        if (Date.now() > end) throw new Error(`the nats-server cluster did not become healthy within 30 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { servers, urls: servers.map((s) => s.url), close };
}
