/**
 * TCP (or TLS) listeners and outgoing connections with the project's error rules: a `listen`
 * failure is a typed error, a connection attempt is bounded by a timeout and an `AbortSignal`.
 * Shared by the tcp transport, the queue server, request/response and the GraphServer client.
 * @internal
 * @module
 */
import { connect as netConnect, createServer as createNetServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type TlsOptions } from "node:tls";
import { AbortError, InvalidArgumentError, systemError, TimeoutError } from "../errors.js";
import { Deferred } from "./wait.js";

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
      throw new InvalidArgumentError(`invalid TLS options: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  } else {
    server = createNetServer(netOpts);
  }
  server.maxConnections = opts.maxConnections;
  const where = opts.host.includes(":") ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, where));
    server.once("error", onError);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  return server;
}

/** Turns a `listen` failure into a typed error. */
function listenError(err: NodeJS.ErrnoException, where: string): Error {
  if (typeof err.errno === "number" && err.code) return systemError(err, "listen", where);
  return new InvalidArgumentError(`cannot listen on ${where}: ${err.message}`, { cause: err });
}

/**
 * True when a failed connection attempt failed in TLS (a certificate refused, a handshake
 * alert, a protocol mismatch) rather than in TCP: callers report it as `AccessDeniedError`.
 */
export function isTlsFailure(err: NodeJS.ErrnoException): boolean {
  return /CERT|SIGNATURE|ALTNAME|SELF_SIGNED|UNABLE_TO|ERR_SSL_|ERR_TLS_|HANDSHAKE/i.test(err.code ?? "") || /alert|certificate/i.test(err.message);
}

/** What {@link dial} needs. */
export interface DialOptions {
  /** TLS client options: a TLS connection when given (host/port targets only). */
  tls?: ConnectionOptions;
  /** Give up after this many ms (`TimeoutError` with `timeoutMessage`). */
  timeout: number;
  /** The error message of a timeout. */
  timeoutMessage: string;
  /** Aborts the attempt (`AbortError`). */
  signal?: AbortSignal;
  /** Makes the error a failed attempt rejects with from the socket's error. */
  onError: (err: NodeJS.ErrnoException) => Error;
}

/**
 * Connects to a Unix socket `path` or a `host`/`port` (TLS when `opts.tls`), and resolves with
 * the socket once connected (TLS: once the handshake is done; TCP sockets get `TCP_NODELAY`).
 * The socket is destroyed when the attempt fails.
 */
export function dial(target: { path: string } | { host: string; port: number }, opts: DialOptions): Promise<Socket> {
  if (opts.signal?.aborted) return Promise.reject(new AbortError("connect aborted", { cause: opts.signal.reason }));
  const isTls = "host" in target && opts.tls !== undefined;
  const socket: Socket =
    "path" in target ? netConnect({ path: target.path }) : isTls ? tlsConnect({ ...opts.tls, host: target.host, port: target.port }) : netConnect({ host: target.host, port: target.port });
  const ready = isTls ? "secureConnect" : "connect";
  const onReady = (): void => {
    if ("host" in target) socket.setNoDelay(true);
    connected.resolve(socket);
  };
  const onError = (e: NodeJS.ErrnoException): void => void connected.reject(opts.onError(e));
  const connected = new Deferred<Socket>({ timeout: opts.timeout, signal: opts.signal, what: "connect", timeoutError: () => new TimeoutError(opts.timeoutMessage) }, undefined, (d) => {
    socket.off(ready, onReady);
    socket.off("error", onError);
    if (d.rejected) socket.destroy();
  });
  socket.once(ready, onReady);
  socket.once("error", onError);
  return connected.promise;
}
