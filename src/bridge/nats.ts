/**
 * The bridge's NATS connection: loading the optional `@nats-io/transport-node` package, the
 * options users give (servers, TLS, credentials), and how NATS's failures become Plexus's typed
 * errors. (Internal: not part of the public API.)
 * @module
 */
import type * as NatsNode from "@nats-io/transport-node";
import { AccessDeniedError, ClosedError, InvalidArgumentError, NoServerError, PeerDeadError, PlexusError, ProtocolError, TimeoutError } from "../errors.js";
import { loadOptionalPeer } from "../util/optional-peer.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { Deferred } from "../util/wait.js";
import type { NatsOptions } from "./types.js";

export type { NatsOptions } from "./types.js";

/** The NATS client package's module. */
export type NatsModule = typeof NatsNode;
/** A connection to a NATS server or cluster. */
export type NatsConnection = NatsNode.NatsConnection;
/** A message received from NATS. */
export type NatsMsg = NatsNode.Msg;
/** A NATS subscription. */
export type NatsSubscription = NatsNode.Subscription;


/** Loads the NATS client package, or rejects with `MissingDependencyError` naming it. */
export function loadNats(): Promise<NatsModule> {
  return loadOptionalPeer<NatsModule>("@nats-io/transport-node", "the NATS bridge");
}

/** The servers of `opts` as a list, each checked to be a `nats://` or `tls://` URL (or `host:port`). */
export function natsServers(opts: NatsOptions): string[] {
  const raw: unknown = opts.servers;
  if (typeof raw !== "string" && !(Array.isArray(raw) && raw.every((s) => typeof s === "string"))) {
    throw new InvalidArgumentError(`the NATS servers must be a URL, a comma-separated list of them or an array of them, got ${raw === undefined ? "nothing" : typeof raw}`);
  }
  const list = typeof raw === "string" ? raw.split(",") : [...(raw as string[])];
  if (list.length === 0) throw new InvalidArgumentError("the NATS bridge needs at least one server URL");
  return list.map((s) => {
    const t = s.trim();
    if (!/^((nats|tls):\/\/)?[^\s/]+(:\d+)?\/?$/.test(t)) throw new InvalidArgumentError(`a NATS server is nats://host:port or tls://host:port, got ${JSON.stringify(s)}`);
    return t;
  });
}

/**
 * Connects to NATS: the client reconnects on its own, for ever, to any server of the cluster
 * (the bridge reports each disconnection and reconnection); resolves once connected.
 */
export async function connectNats(nats: NatsModule, opts: NatsOptions, wait: BlockingOptions = {}): Promise<NatsConnection> {
  checkOptions(wait, "connecting to NATS");
  const servers = natsServers(opts);
  const auth: NatsNode.Authenticator[] = [];
  if (opts.user !== undefined) auth.push(nats.usernamePasswordAuthenticator(opts.user, opts.pass ?? ""));
  if (opts.token !== undefined) auth.push(nats.tokenAuthenticator(opts.token));
  if (opts.nkeySeed !== undefined) auth.push(nats.nkeyAuthenticator(new TextEncoder().encode(opts.nkeySeed)));
  const tls = opts.tls !== undefined ? { ...opts.tls } : servers.some((s) => s.startsWith("tls://")) ? {} : undefined;
  const attempt = nats.connect({
    servers,
    name: opts.name ?? "plexus-bridge",
    ...(auth.length > 0 ? { authenticator: auth.length === 1 ? auth[0] : auth } : {}),
    ...(tls !== undefined ? { tls } : {}),
    timeout: wait.timeout ?? 10_000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    waitOnFirstConnect: false,
    noEcho: true, // a bridge never hears what it sent itself (another bridge of its graph still may: the origin tells)
  });
  const what = `connecting to NATS at ${servers.join(", ")}`;
  const done = new Deferred<NatsConnection>({ signal: wait.signal, what }, undefined);
  attempt.then(
    (nc) => {
      if (!done.resolve(nc)) void nc.close(); // aborted meanwhile
    },
    (err: unknown) => done.reject(natsError(err, what)),
  );
  return done.promise;
}

/** The name of an error's class, for errors of the NATS package (which other copies may define). */
function className(err: unknown): string {
  return err instanceof Error ? (err.name !== "Error" ? err.name : err.constructor.name) : "";
}

/**
 * A NATS failure as a Plexus typed error: no responders -> `NoServerError`, a timeout ->
 * `TimeoutError`, an authorization failure -> `AccessDeniedError`, a closed or draining
 * connection -> `ClosedError`, a failed connection -> `PeerDeadError`, a protocol violation or
 * anything else -> `ProtocolError`; Plexus errors pass through. `what` says what failed.
 */
export function natsError(err: unknown, what: string): PlexusError {
  if (err instanceof PlexusError) return err;
  let e: unknown = err;
  if (className(e) === "RequestError" && (e as { isNoResponders?: () => boolean }).isNoResponders?.() === true) {
    return new NoServerError(`${what}: no responder on NATS`, { cause: err });
  }
  if (className(e) === "RequestError" && e instanceof Error && e.cause !== undefined) e = e.cause;
  const message = e instanceof Error ? e.message : String(e);
  switch (className(e)) {
    case "NoRespondersError":
      return new NoServerError(`${what}: no responder on NATS`, { cause: err });
    case "TimeoutError":
      return new TimeoutError(`${what}: timed out (${message})`, { cause: err });
    case "AuthorizationError":
    case "UserAuthenticationExpiredError":
    case "PermissionViolationError":
      return new AccessDeniedError(`${what}: ${message}`, { cause: err });
    case "ClosedConnectionError":
    case "DrainingConnectionError":
      return new ClosedError(`${what}: the NATS connection is closed`, { cause: err });
    case "ConnectionError":
      return new PeerDeadError(`${what}: ${message}`, { cause: err });
    default: {
      const code = (e as { code?: unknown } | null)?.code;
      if (typeof code === "string" && /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|EPIPE)$/.test(code)) return new PeerDeadError(`${what}: ${message}`, { cause: err });
      if (/authori[sz]ation|authentication/i.test(message)) return new AccessDeniedError(`${what}: ${message}`, { cause: err });
      if (/certificate|self[- ]signed|tls/i.test(message)) return new AccessDeniedError(`${what}: TLS: ${message}`, { cause: err });
      return new ProtocolError(`${what}: ${message}`, { cause: err });
    }
  }
}
