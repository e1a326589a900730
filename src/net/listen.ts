/**
 * TCP (or TLS) listeners with the project's error rules: a `listen` failure is a typed error
 * (`SystemError` with Node's error as `cause`, `InvalidArgumentError` for unusable TLS options).
 * Used by the tcp transport and the request/response server.
 * (Internal: not part of the public API.)
 * @module
 */
import { createServer as createNetServer, type Server } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import { InvalidArgumentError, systemError } from "../errors.js";

/** What {@link listenTcp} needs. */
export interface ListenOptions {
  /** Address to bind. */
  host: string;
  /** Port (0: any free port). */
  port: number;
  /** Certificate options: a TLS server when given. */
  tls?: TlsOptions;
  /** TCP keep-alive starts after this many ms of silence. */
  keepAliveMs: number;
  /** A TLS handshake must finish within this many ms. */
  handshakeTimeout: number;
  /** Connections accepted at once (the server refuses more). */
  maxConnections: number;
}

/**
 * Creates a TCP or TLS server (`TCP_NODELAY`, keep-alive) and listens. Rejects with
 * `InvalidArgumentError` for unusable TLS options or address, `SystemError` (e.g. `EADDRINUSE`)
 * when the kernel refuses.
 */
export async function listenTcp(opts: ListenOptions): Promise<Server> {
  const netOpts = { noDelay: true, keepAlive: true, keepAliveInitialDelay: opts.keepAliveMs };
  let server: Server;
  if (opts.tls !== undefined) {
    try {
      server = createTlsServer({ ...opts.tls, ...netOpts, handshakeTimeout: opts.handshakeTimeout });
    } catch (err) {
      throw tlsOptionsError(err);
    }
  } else {
    server = createNetServer(netOpts);
  }
  server.maxConnections = opts.maxConnections;
  await bind(server, { host: opts.host, port: opts.port }, hostPort(opts.host, opts.port));
  return server;
}

/** The error for TLS options Node refused (a key it cannot read, ...): an `InvalidArgumentError`, `cause` Node's error. */
export function tlsOptionsError(err: unknown, where = ""): InvalidArgumentError {
  return new InvalidArgumentError(`${where === "" ? "" : `${where}: `}invalid TLS options: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** `host:port`, IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Makes `server` listen on a Unix socket `path` or on `host`/`port`; a failure is a typed error
 * whose message names `what` (the one place every Plexus server binds).
 */
export function bind(server: Server, target: { path: string } | { host: string; port: number }, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, what));
    server.once("error", onError);
    server.listen(target, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/** Turns a `listen` failure into a typed error. */
function listenError(err: NodeJS.ErrnoException, where: string): Error {
  if (typeof err.errno === "number" && err.code) return systemError(err, "listen", where);
  return new InvalidArgumentError(`cannot listen on ${where}: ${err.message}`, { cause: err });
}
