/**
 * A node's connection to the GraphServer: requests with timeouts, notifications applied and
 * acknowledged in order, and the embedded default (start a server when none is reachable).
 * @module
 */
import type { Socket } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { AccessDeniedError, ClosedError, errorFromWire, InvalidArgumentError, PeerDeadError, PlexusError, ProtocolError, SystemError, systemError, TimeoutError } from "../errors.js";
import { throwIfAborted } from "../util/blocking.js";
import { self } from "./identity.js";
import { CONTROL_SPEC, ControlParser, encodeControl, MsgType, packBody, STATUS_ACCESS_DENIED, unpackBody } from "./protocol.js";
import { encodeHello, readWelcome, refusal, Status } from "../net/handshake.js";
import { readHandshakeFrame } from "../net/exchange.js";
import { NetType } from "../net/frame.js";
import type { PublisherInfo, ServerInfo } from "./registry.js";
import { DEFAULT_GRAPH_PORT, GraphServer } from "./server.js";
import { isLoopback } from "../net/loopback.js";
import { dial } from "../net/dial.js";
import { hostPort } from "../net/listen.js";
import { readOptions } from "../util/options.js";

/** Options of {@link GraphClient.connect} and `connect()`. */
export interface GraphOptions {
  /** The GraphServer: `tcp://host:port`, `tls://host:port` or `host:port` (default: `PLEXUS_GRAPH`, else 127.0.0.1:25978). */
  address?: string;
  /** Access token (required by servers bound off loopback). */
  token?: string;
  /** TLS options for the control connection (servers bound off loopback use TLS). */
  tls?: ConnectionOptions;
  /** Start a GraphServer in this process if none answers on a loopback address (default true). */
  embedded?: boolean;
  /** A name for this node in snapshots. */
  name?: string;
  /** Connect timeout in ms (default 5000). */
  timeout?: number;
  /** Aborts connecting. */
  signal?: AbortSignal;
}

/**
 * Parses a GraphServer address: a URL `tcp://host:port` or `tls://host:port` (the grammar the
 * queue's addresses use too), or the plain `host:port` form (IPv6 as `[::1]:port`). `tls` is
 * true for `tls://`, false for `tcp://`, undefined for the plain form (TLS then follows the
 * `tls` option). Throws `InvalidArgumentError` for anything else.
 */
export function parseAddress(address: string): { host: string; port: number; tls?: boolean } {
  const url = /^([a-z]+):\/\/(.*)$/i.exec(typeof address === "string" ? address : "");
  if (url !== null) {
    const scheme = url[1].toLowerCase();
    if (scheme !== "tcp" && scheme !== "tls") throw new InvalidArgumentError(`unsupported GraphServer address scheme ${JSON.stringify(scheme)} (tcp://, tls://): ${JSON.stringify(address)}`);
    const { host, port } = parseAddress(url[2].replace(/\/$/, ""));
    return { host, port, tls: scheme === "tls" };
  }
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(typeof address === "string" ? address : "");
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`not a GraphServer address (tcp://host:port, tls://host:port or host:port, port 0..65535): ${JSON.stringify(address)}`);
  return { host: m[1], port };
}

/** {@link GraphOptions} once checked: the address parsed, the timeout filled in. */
export interface GraphSettings {
  /** The parsed address. */
  readonly address: { host: string; port: number; tls?: boolean };
  /** Connect timeout (ms). */
  readonly timeout: number;
}

/**
 * Checks every {@link GraphOptions} field for the factory `where` (`connect`,
 * `GraphClient.connect`), before anything is opened.
 */
export function checkGraphOptions(where: string, opts: GraphOptions | undefined): GraphSettings {
  const o = readOptions(where, opts);
  const given = o.string("address", 1);
  let address: { host: string; port: number; tls?: boolean };
  try {
    address = parseAddress(given ?? defaultAddress());
  } catch (err) {
    if (given === undefined) throw err; // PLEXUS_GRAPH: parseAddress's message names it
    throw o.error("address", "tcp://host:port, tls://host:port or host:port (port 0..65535)");
  }
  o.string("token");
  o.object("tls", "an object of TLS options");
  o.bool("embedded", true);
  o.string("name");
  o.signal("signal");
  return { address, timeout: o.timeout("timeout", 5000) };
}

/** The GraphServer address this process uses by default. */
export function defaultAddress(): string {
  return process.env.PLEXUS_GRAPH || `127.0.0.1:${DEFAULT_GRAPH_PORT}`;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Called with a subscriber's new upstream set; the server waits until it resolves. */
export type NotifyHandler = (subscriber: string, publishers: PublisherInfo[]) => Promise<void> | void;

/** A connection to a GraphServer. */
export class GraphClient {
  /** This node's id, given by the server. */
  readonly node: string;
  /** The server this process started, if it started one (embedded default). */
  readonly embedded: GraphServer | undefined;
  /** Called with each upstream change of this node's subscribers. */
  onNotify: NotifyHandler = () => {};
  /** Called with each change of the server set of this node's request/response clients. */
  onServers: (client: string, servers: ServerInfo[]) => Promise<void> | void = () => {};
  /** Called once when the connection ends (`error` is undefined after `close()`). */
  onClose: (error: Error | undefined) => void = () => {};
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private notifyChain: Promise<void> = Promise.resolve();
  private lost: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly parser: ControlParser,
    node: string,
    embedded: GraphServer | undefined,
    private readonly timeout: number,
  ) {
    this.node = node;
    this.embedded = embedded;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.onSocketClose());
  }

  /**
   * Connects to the GraphServer at `address`; if none answers on a loopback address and
   * `embedded` is not false, starts one in this process first (another process may win that
   * race: then this one connects to the winner).
   */
  static async connect(opts: GraphOptions = {}): Promise<GraphClient> {
    const { address: parsed, timeout } = checkGraphOptions("GraphClient.connect", opts);
    throwIfAborted(opts.signal, "connect");
    const { host, port } = parsed;
    // tls:// asks for TLS (the system's CAs unless `tls` says more); tcp:// for plain TCP
    if (parsed.tls === true && opts.tls === undefined) opts = { ...opts, tls: {} };
    if (parsed.tls === false && opts.tls !== undefined) throw new InvalidArgumentError(`the address ${opts.address} says tcp:// but TLS options were given (use tls://)`);
    let embedded: GraphServer | undefined;
    let socket: Socket;
    try {
      socket = await open(host, port, opts, timeout);
    } catch (err) {
      const refused = err instanceof SystemError && err.errnoName === "ECONNREFUSED";
      if (!refused || opts.embedded === false || opts.tls !== undefined || !isLoopback(host)) throw err; // an embedded server speaks plain TCP
      try {
        embedded = await GraphServer.start({ host, port });
        embedded.unref();
      } catch (startErr) {
        const inUse = startErr instanceof SystemError && startErr.errnoName === "EADDRINUSE";
        if (!inUse) throw startErr;
      }
      socket = await open(host, port, opts, timeout);
    }
    const parser = new ControlParser();
    const id = self();
    const where = `the GraphServer at ${host}:${port}`;
    socket.write(encodeHello(CONTROL_SPEC, 0, packBody({ ...id, name: opts.name ?? `pid ${id.pid}`, token: opts.token })));
    let welcome: Record<string, unknown>;
    let rest: Buffer;
    try {
      const answer = await readHandshakeFrame(socket, { type: NetType.Welcome, what: where, timeout, signal: opts.signal, server: { spec: CONTROL_SPEC, peer: hostPort(host, port) } });
      rest = answer.rest;
      const w = readWelcome(CONTROL_SPEC, answer.header, answer.payload, where);
      if (w.status !== Status.Ok) {
        throw refusal(CONTROL_SPEC, w, where, { protocolStatus: (s, reason) => (s === STATUS_ACCESS_DENIED ? new AccessDeniedError(`${where} refused this node: ${reason}`) : undefined) });
      }
      welcome = unpackBody(w.body);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    if (typeof welcome.node !== "string") throw new ProtocolError("welcome without a node id");
    const client = new GraphClient(socket, parser, welcome.node, embedded, timeout);
    if (rest.length > 0) client.onData(rest); // (the server writes nothing unasked: normally empty)
    socket.resume();
    return client;
  }

  /** Sends a request; resolves with its result or rejects with the server's typed error. */
  request<T = unknown>(op: string, args: Record<string, unknown> = {}, timeout = this.timeout): Promise<T> {
    if (this.closed) return Promise.reject(this.lost ?? new ClosedError("the graph connection is closed"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`${op}: no answer from the GraphServer within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(encodeControl(MsgType.Request, id, { ...args, op }));
    });
  }

  /** Leaves the graph (the server removes this node's ports and edges). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once("close", () => resolve());
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 1000).unref();
    });
    await this.embedded?.close();
  }

  private onData(chunk: Buffer): void {
    let messages;
    try {
      messages = this.parser.push(chunk);
    } catch {
      this.socket.destroy();
      return;
    }
    for (const m of messages) {
      if (m.type === MsgType.Response) {
        const p = this.pending.get(m.id);
        if (p === undefined) continue;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.body.ok === true) p.resolve(m.body.result);
        else p.reject(remoteError(m.body));
      } else if (m.type === MsgType.Notify && typeof m.body.client === "string") {
        const client = m.body.client;
        const servers = m.body.servers;
        if (!Array.isArray(servers)) continue;
        this.notifyChain = this.notifyChain
          .then(() => this.onServers(client, servers as ServerInfo[]))
          .catch(() => {})
          .then(() => {
            if (!this.socket.destroyed) this.socket.write(encodeControl(MsgType.NotifyAck, m.id, {}));
          });
      } else if (m.type === MsgType.Notify) {
        const subscriber = m.body.subscriber;
        const publishers = m.body.publishers;
        if (typeof subscriber !== "string" || !Array.isArray(publishers)) continue;
        // Apply in order, then acknowledge.
        this.notifyChain = this.notifyChain
          .then(() => this.onNotify(subscriber, publishers as PublisherInfo[]))
          .catch(() => {})
          .then(() => {
            if (!this.socket.destroyed) this.socket.write(encodeControl(MsgType.NotifyAck, m.id, {}));
          });
      }
    }
  }

  private onSocketClose(): void {
    const error = this.closed ? undefined : new PeerDeadError("the GraphServer connection was lost");
    this.closed = true;
    this.lost = error;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error ?? new ClosedError("the graph connection is closed"));
    }
    this.pending.clear();
    this.onClose(error);
  }
}

/** Rebuilds a typed error from a server response: the class of its code. */
function remoteError(body: Record<string, unknown>): PlexusError {
  return errorFromWire(body.code, typeof body.message === "string" ? body.message : "GraphServer error");
}

/** Opens the TCP (or TLS) control connection. */
function open(host: string, port: number, opts: GraphOptions, timeout: number): Promise<Socket> {
  return dial(
    { host, port },
    {
      tls: opts.tls,
      timeout,
      timeoutMessage: `no GraphServer answered at ${host}:${port} within ${timeout} ms`,
      signal: opts.signal,
      onError: (e) => systemError(e, "connect", `GraphServer at ${host}:${port}`),
    },
  );
}
