/**
 * Outgoing connections with the project's error rules: an attempt is bounded by a timeout and
 * an `AbortSignal`, and a failure is a typed error — {@link connectError} maps what the socket
 * reported, the same way for every protocol (TLS failures are `AccessDeniedError`, the rest
 * `PeerDeadError` with Node's error wrapped as `cause`).
 * (Internal: not part of the public API.)
 * @module
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { AbortError, AccessDeniedError, PeerDeadError, PlexusError, systemError, TimeoutError } from "../errors.js";
import { Deferred } from "../util/wait.js";

/**
 * True when a failed connection attempt failed in TLS (a certificate refused, a handshake
 * alert, a protocol mismatch) rather than in TCP: callers report it as `AccessDeniedError`.
 */
export function isTlsFailure(err: NodeJS.ErrnoException): boolean {
  return /CERT|SIGNATURE|ALTNAME|SELF_SIGNED|UNABLE_TO|ERR_SSL_|ERR_TLS_|HANDSHAKE/i.test(err.code ?? "") || /alert|certificate/i.test(err.message);
}

/**
 * The typed error of a failed connection attempt to `what` (e.g. "the queue server at
 * 127.0.0.1:7000"): `AccessDeniedError` when TLS failed, `PeerDeadError` otherwise ("no … listens"
 * for `ECONNREFUSED`), with Node's error wrapped as a `SystemError` in `cause`.
 */
export function connectError(err: NodeJS.ErrnoException, what: string): PlexusError {
  if (isTlsFailure(err)) return new AccessDeniedError(`TLS with ${what} failed: ${err.message}`, { cause: err });
  const cause = systemError(err, "connect", what);
  if (err.code === "ECONNREFUSED") return new PeerDeadError(`nothing listens for ${what}`, { cause });
  return new PeerDeadError(`${what} cannot be reached: ${err.message}`, { cause });
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
