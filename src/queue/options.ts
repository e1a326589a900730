/**
 * Options of queue servers and clients, their defaults and validation, and the URL that picks
 * the backend (`tcp://`, `tls://`, `mqtt://`, `mqtts://`, `grpc://`, `grpcs://`).
 * (Internal: not part of the public API.)
 * @module
 */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError, type PlexusError } from "../errors.js";
import { DEFAULT_LINGER } from "../util/linger.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { MAX_TIMER_MS, optionError, readOptions } from "../util/options.js";
import { IDENTITY_BYTES, MAX_SLOTS } from "./wire.js";

/** How a put is acknowledged. */
export type DeliveryMode = "fast" | "reliable";

/** Every {@link DeliveryMode}: what the `mode` option accepts. */
const DELIVERY_MODES: readonly DeliveryMode[] = ["fast", "reliable"];

/** Options shared by {@link QueueServerOptions} and {@link QueueClientOptions}. */
export interface QueueOptions {
  /**
   * Where to listen or connect: `tcp://host:port`, `tls://host:port`, an MQTT broker
   * `mqtt://host:port/queue-name` (`mqtts://` for MQTT over TLS; `?qos=1` publishes this end's
   * frames at QoS 1 instead of 0, docs/queue.md), or gRPC `grpc://host:port` (`grpcs://` with
   * TLS).
   */
  url: string;
  /**
   * TLS certificate options (`key`/`cert` on a server, `ca` on a client, both for mutual TLS).
   * Given with `tcp://` (or `grpc://`), the connection is TLS all the same.
   */
  tls?: TcpTlsOptions;
  /** Allow plain TCP to or on an address that is not loopback. Without it: `AccessDeniedError`. */
  allowInsecure?: boolean;
  /**
   * Delivery of this end's puts. `fast` (default): acknowledged when the receiver queued the
   * message. `reliable`: acknowledged when the receiver's application released it.
   */
  mode?: DeliveryMode;
  /** Messages in flight (sent, unacknowledged) per peer: default 1 for `reliable`, 16 for `fast`; at most 1024. */
  slots?: number;
  /** Largest message (encoded bytes) this end sends or accepts; default 64 MiB. Larger frames from a peer are refused before any allocation. */
  maxMessage?: number;
  /** Messages held in this end's queue before further ones wait unacknowledged (default 1024). */
  maxQueue?: number;
  /** Bytes held in this end's queue before further messages wait unacknowledged (default 256 MiB). */
  maxQueueBytes?: number;
  /** Puts waiting for a free slot per peer before `put` rejects with `BackpressureError` (default 65536). */
  maxPending?: number;
  /** Default timeout of `put` in ms (default 30000). `get` waits without limit unless given one. */
  timeout?: number;
  /** Idle interval after which a keep-alive is written (ms, default 1000). */
  heartbeat?: number;
  /** A peer is dead after this long without a byte from it (ms, default 5000). */
  peerTimeout?: number;
  /** How long a session outlives its connection, waiting for the peer to reconnect (ms, default 5000). */
  reconnectWindow?: number;
  /**
   * `close()` waits at most this long (ms, default 2000; 0: not at all) for the pending puts to
   * be acknowledged and the peers to hang up after BYE; puts still pending then reject with
   * `ClosedError`, with a process warning (`PLEXUS_LINGER`).
   */
  linger?: number;
}

/** Options of `queue.server`. */
export interface QueueServerOptions extends QueueOptions {
  /** Most clients (sessions) at once (default 1024). */
  maxClients?: number;
  /** A connection must complete its handshake within this time (ms, default 5000). */
  handshakeTimeout?: number;
  /**
   * Sessions with no message either way and nothing pending for this long are ended (BYE with
   * the idle flag); the client reconnects on its next call. Default: never.
   */
  idleTimeout?: number;
  /** Told why a connection was dropped (protocol violation, oversized frame, silence); the server keeps serving. A throw in it is contained. */
  onPeerError?: (err: PlexusError) => void;
}

/** Options of `queue.client`. */
export interface QueueClientOptions extends QueueOptions {
  /**
   * This client's identity: 16 bytes or 32 hex digits (default: random); the server's
   * `msg.peer` for this client. This client object's own reconnections resume its session. A
   * new client object given the identity of another (a process restarted under the identity
   * it had) takes the identity over: it starts a new session, and the old one ends — the
   * server's puts pending toward it reject with `PeerDeadError` (see docs/queue.md, *Sessions*).
   */
  identity?: Uint8Array | string;
  /** Time to connect and complete the handshake, each attempt (ms, default 5000). */
  connectTimeout?: number;
  /** Aborts the first connection attempt. */
  signal?: AbortSignal;
}

/** A parsed queue URL. */
export interface QueueUrl {
  scheme: "tcp" | "tls" | "mqtt" | "mqtts" | "grpc" | "grpcs";
  host: string;
  port: number;
  /** MQTT: the queue's name (the URL path), used in topic names. */
  name: string;
  /** MQTT: the QoS of the messages this end publishes (`?qos=1`; default 0). */
  qos: 0 | 1;
}

/** The schemes of queue URLs. */
const SCHEMES: readonly QueueUrl["scheme"][] = ["tcp", "tls", "mqtt", "mqtts", "grpc", "grpcs"];

/** What the `url` option accepts. */
const URL_FORMS = "a URL such as tcp://127.0.0.1:51966 (tcp://, tls://, mqtt://host:port/name, mqtts://, grpc://, grpcs://)";

/** Parses and checks a queue URL (`where`: the factory, for the error). */
export function parseUrl(url: string, server: boolean, where = ""): QueueUrl {
  const bad = (accepted: string): InvalidArgumentError => optionError(where, "url", accepted, url);
  if (typeof url !== "string") throw bad(URL_FORMS);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(URL_FORMS);
  }
  const scheme = u.protocol.slice(0, -1);
  if (!SCHEMES.includes(scheme as QueueUrl["scheme"])) throw bad(URL_FORMS);
  let host = u.hostname;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") throw bad("a URL with a host");
  const mqtt = scheme === "mqtt" || scheme === "mqtts";
  const port = u.port === "" ? (mqtt ? (scheme === "mqtt" ? 1883 : 8883) : server ? 0 : -1) : Number(u.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (!server && !mqtt && port === 0)) throw bad(`a URL with a port (1..65535${server ? ", or 0 for any" : ""})`);
  const name = decodeURIComponent(u.pathname.replace(/^\/+/, "")) || "plexus";
  if (mqtt && (name.includes("#") || name.includes("+") || name.includes(String.fromCharCode(0)))) throw bad("a URL whose queue name has no MQTT wildcards (#, +)");
  const qos = u.searchParams.get("qos");
  if (qos !== null && (!mqtt || (qos !== "0" && qos !== "1"))) throw bad("a URL whose qos parameter is 0 or 1, on mqtt:// and mqtts:// only (mqtt://host:port/name?qos=1)");
  return { scheme: scheme as QueueUrl["scheme"], host, port, name, qos: qos === "1" ? 1 : 0 };
}

/** Validated settings common to both ends. */
export interface Settings {
  url: QueueUrl;
  tls: TcpTlsOptions | undefined;
  useTls: boolean;
  allowInsecure: boolean;
  reliable: boolean;
  slots: number;
  maxMessage: number;
  maxQueue: number;
  maxQueueBytes: number;
  maxPending: number;
  timeout: number;
  heartbeat: number;
  peerTimeout: number;
  reconnectWindow: number;
  linger: number;
}

/**
 * Checks every option of `queue.server()` (`server` true) or `queue.client()`, before anything
 * is opened, and returns the settings both ends share. The options of one end only (`maxClients`,
 * `identity`, ...) are checked here too; each end reads them itself.
 */
export function settings(opts: QueueOptions, server: boolean): Settings {
  const where = server ? "queue.server" : "queue.client";
  if (opts === undefined) throw new InvalidArgumentError(`${where}: the options { url, ... } are required`);
  const o = readOptions(where, opts);
  const url = parseUrl(opts.url, server, where);
  const reliable = o.oneOf("mode", DELIVERY_MODES, "fast") === "reliable";
  const tls = o.object("tls", "an object of certificate options");
  const checked: Settings = {
    url,
    tls,
    useTls: tls !== undefined || url.scheme === "tls" || url.scheme === "mqtts" || url.scheme === "grpcs",
    allowInsecure: o.bool("allowInsecure", false),
    reliable,
    slots: o.int("slots", reliable ? 1 : 16, 1, MAX_SLOTS),
    maxMessage: o.int("maxMessage", 64 << 20, 16, 0xffffffff),
    maxQueue: o.int("maxQueue", 1024, 1, 2 ** 31 - 1),
    maxQueueBytes: o.int("maxQueueBytes", 256 << 20, 16, Number.MAX_SAFE_INTEGER),
    maxPending: o.int("maxPending", 65536, 0, 2 ** 31 - 1),
    timeout: o.timeout("timeout", 30000),
    heartbeat: o.ms("heartbeat", 1000),
    peerTimeout: o.ms("peerTimeout", 5000),
    reconnectWindow: o.ms("reconnectWindow", 5000),
    linger: o.number("linger", DEFAULT_LINGER, 0, MAX_TIMER_MS),
  };
  if (server) {
    const s = readOptions(where, opts as QueueServerOptions);
    s.int("maxClients", 1024, 1, 65536);
    s.ms("handshakeTimeout", 5000);
    s.ms("idleTimeout", 1);
    s.func("onPeerError");
  } else {
    const c = readOptions(where, opts as QueueClientOptions);
    const identity = (opts as QueueClientOptions).identity;
    if (identity !== undefined) {
      try {
        identityOf(identity);
      } catch {
        throw c.error("identity", `${IDENTITY_BYTES} bytes (a Uint8Array) or ${2 * IDENTITY_BYTES} hex digits`);
      }
    }
    c.timeout("connectTimeout", 5000);
    c.signal("signal");
  }
  return checked;
}

/** A client identity from the option, or a random one. */
export function identityOf(id: Uint8Array | string | undefined): Buffer {
  if (id === undefined) return randomBytes(IDENTITY_BYTES);
  if (typeof id === "string") {
    if (!/^[0-9a-fA-F]{32}$/.test(id)) throw new InvalidArgumentError("identity must be 16 bytes or 32 hex digits");
    return Buffer.from(id, "hex");
  }
  if (!(id instanceof Uint8Array) || id.byteLength !== IDENTITY_BYTES) throw new InvalidArgumentError("identity must be 16 bytes or 32 hex digits");
  return Buffer.from(id);
}
