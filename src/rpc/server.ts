/**
 * A request/response server: registered with the GraphServer under a service name, it answers
 * clients in its own thread (the value itself), on the host (shared-memory rings) and on other
 * hosts (TCP, TLS). Every request is handled as it arrives: a slow one holds back no other.
 * @module
 */
import { randomBytes } from "node:crypto";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { ClosedError, InvalidArgumentError, ProtocolError, ResourceExhaustedError } from "../errors.js";
import { self } from "../graph/identity.js";
import type { Endpoints } from "../graph/registry.js";
import type { GraphRef } from "../graph/ref.js";
import type { ServerCounters } from "../graph/report.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { PORT_TRANSPORTS } from "../transport/transport.js";
import { MAX_CAPACITY } from "../ring/layout.js";
import { describe, MAX_TIMER_MS, readOptions } from "../util/options.js";
import { closeLinger, DEFAULT_LINGER, Linger, warnDropped, type CloseOptions } from "../util/linger.js";
import { refusePlainTcp } from "../net/loopback.js";
import { bind, hostPort, tlsOptionsError } from "../net/listen.js";
import type { Channel, Releasable } from "./channel.js";
import { acceptShm, acceptTcp, refuse, type OpenOptions } from "./handshake.js";
import { DEFAULT_HEARTBEAT, DEFAULT_PEER_TIMEOUT, Heartbeats } from "./tcp-channel.js";
import { decodeAt } from "../codec/index.js";
import { checkHeader, errorBody, FLAG_RAW, get32, lengthBody, rawBody, RPC_HEADER, RpcType, valueBody } from "./wire.js";

/** The open servers of this thread, by id: a client of any node of the thread calls them directly. */
const inThread = new Map<string, Server>();

/** Answers one request: return the response (or a promise of it); throw to send the client a `RemoteError`. */
export type Handler<Req = unknown, Res = unknown> = (request: Req) => Res | Promise<Res>;

/**
 * Answers one request in place: `bytes` is the request's own memory (shared memory when the
 * client is another process of the host), writable. Change it and return it, or a subarray
 * of it, as the response (nothing = all of it). Valid only until the handler settles.
 */
export type InPlaceHandler = (bytes: Uint8Array) => Uint8Array | void | Promise<Uint8Array | void>;

/** Options of `node.server()`. */
export interface ServerOptions {
  /**
   * In-place mode: requests are bytes (`Uint8Array`), and the handler answers in the request's
   * own memory (see {@link InPlaceHandler}). Clients use `requestInPlace` for a zero-copy answer.
   */
  inPlace?: boolean;
  /** Offer only this transport to clients (tests, benchmarks). */
  transport?: "inproc" | "shm" | "tcp";
  /** Capacity of each response ring in bytes (default 1 MiB; the largest response is half). */
  capacity?: number;
  /** Largest message accepted over TCP (default 64 MiB; larger frames drop the connection before any allocation). */
  maxMessageSize?: number;
  /** Handshake timeout for connecting clients, ms (default 5000). */
  timeout?: number;
  /**
   * Where clients on other hosts (or forced to TCP) connect: `host` (default 127.0.0.1),
   * `port` (default any), `tls` (server key and certificate; required off loopback unless
   * `allowInsecure`), and the connections' liveness: `heartbeat` (write to each client at least
   * this often, a heartbeat when there is nothing else to send; ms, default 1000) and
   * `peerTimeout` (a client silent this long — at least 3 of the heartbeats it announced — is
   * dead: its connection is dropped and what it held freed; ms, default 10000). `false`: no TCP
   * endpoint.
   */
  tcp?: false | { host?: string; port?: number; tls?: TcpTlsOptions; allowInsecure?: boolean; heartbeat?: number; peerTimeout?: number };
  /** Busy-poll this many µs on request rings before sleeping (default 0). */
  spinMicros?: number;
  /**
   * Requests of one connection handled at once, plus its answers waiting to be written, before
   * the server stops reading that connection until they drain (default 256). Bounds the memory
   * a client that never reads its answers (or floods requests) can make the server hold.
   */
  maxConcurrent?: number;
  /** Client connections at once (shm and tcp together); more are refused with `ResourceExhaustedError` (default 1024). */
  maxClients?: number;
  /**
   * `close()` waits this long (ms, default 2000) for the requests being handled to be answered;
   * those still running then are abandoned (their answers dropped), with a process warning
   * (`PLEXUS_LINGER`). `0`: do not wait.
   */
  linger?: number;
}

/** One client's connection, as the server serves it. */
interface Conn {
  ch: Channel;
  /** Requests of this connection being handled now. */
  handling: number;
}

/** Default ring capacity of request/response channels. */
export const DEFAULT_RPC_CAPACITY = 1 << 20;
/** Default largest message over TCP. */
export const DEFAULT_MAX_MESSAGE = 64 << 20;

/** Smallest ring of a request/response channel. */
export const MIN_RPC_CAPACITY = 4096;
/** Largest message over TCP a client or server can be given. */
export const MAX_MESSAGE_SIZE = 2 ** 31;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  // Bytes first: the usual answer, and no `then` lookup up a typed array's prototype chain.
  if (v instanceof Uint8Array) return false;
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as { then?: unknown }).then === "function";
}

/** A server of a service. `await using server = await node.server("resize", handler)`. */
export class Server implements AsyncDisposable {
  /** Service name. */
  readonly service: string;
  /** Port id in the graph. */
  readonly id: string;
  /** In-place mode. */
  readonly inPlace: boolean;
  private readonly channels = new Set<Channel>();
  private readonly sockets = new Set<Socket>();
  private active = 0;
  private answered = 0;
  /** Traffic counters, reported to the GraphServer by the node (`stats.report`). */
  readonly counters: ServerCounters = { requests: 0, errors: 0, bytes: 0 };
  private idle: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  /** While closing: the wait for the requests being handled. */
  private lingering: Linger | undefined;

  private constructor(
    service: string,
    id: string,
    private readonly graph: GraphRef,
    private readonly handler: Handler<unknown, unknown>,
    private readonly endpoints: Endpoints,
    private readonly listeners: NetServer[],
    private readonly open: OpenOptions,
    private readonly onClose: () => void,
    inPlace: boolean,
    private readonly maxConcurrent: number,
    private readonly maxClients: number,
    private readonly linger: number,
  ) {
    this.service = service;
    this.id = id;
    this.inPlace = inPlace;
  }

  /** @internal Listens (shm handshake socket, TCP) and registers the server. */
  static async create<Req, Res>(
    graph: GraphRef,
    id: string,
    service: string,
    handler: Handler<Req, Res> | InPlaceHandler,
    opts: ServerOptions,
    onOpen: (server: Server) => void,
    onClose: () => void,
    remote?: string,
  ): Promise<Server> {
    if (typeof handler !== "function") throw new InvalidArgumentError(`node.server: the handler must be a function, got ${describe(handler)}`);
    const o = readOptions("node.server", opts);
    const inPlace = o.bool("inPlace", false);
    const transport = o.oneOf("transport", PORT_TRANSPORTS, undefined);
    const section = o.section("tcp", "host, port, tls, allowInsecure, heartbeat, peerTimeout");
    const tcp = section && {
      host: section.string("host", 1) ?? "127.0.0.1",
      port: section.int("port", 0, 0, 65535),
      tls: section.object("tls", "an object of certificate options"),
      allowInsecure: section.bool("allowInsecure", false),
      heartbeat: section.ms("heartbeat", DEFAULT_HEARTBEAT),
      peerTimeout: section.ms("peerTimeout", DEFAULT_PEER_TIMEOUT),
    };
    const open: OpenOptions = {
      timeout: o.timeout("timeout", 5000),
      capacity: o.int("capacity", DEFAULT_RPC_CAPACITY, MIN_RPC_CAPACITY, MAX_CAPACITY),
      maxMessage: o.int("maxMessageSize", DEFAULT_MAX_MESSAGE, 64, MAX_MESSAGE_SIZE),
      spinMicros: o.spin("spinMicros", undefined),
      heartbeats: new Heartbeats(tcp ? tcp.heartbeat : DEFAULT_HEARTBEAT, tcp ? tcp.peerTimeout : DEFAULT_PEER_TIMEOUT),
    };
    const maxConcurrent = o.int("maxConcurrent", 256, 1, 1 << 20);
    const maxClients = o.int("maxClients", 1024, 1, 1 << 20);
    const linger = o.number("linger", DEFAULT_LINGER, 0, MAX_TIMER_MS);
    const endpoints: Endpoints = { ...self(), ...(remote !== undefined ? { remote } : {}) };
    const listeners: NetServer[] = [];
    const ref: { server?: Server } = {};
    try {
      if (transport === undefined || transport === "shm") {
        const name = `plexus-rpc-${process.pid}-${randomBytes(6).toString("hex")}`;
        const socket = `\0${name}`;
        const l = createNetServer((s) => ref.server?.acceptShm(s));
        await bind(l, { path: socket }, "request/response socket");
        listeners.push(l);
        endpoints.shm = { name: `/${name}`, socket };
      }
      if ((transport === undefined || transport === "tcp") && tcp !== false) {
        const t = tcp;
        const host = t.host;
        refusePlainTcp(host, t.tls !== undefined, t.allowInsecure, "serve", "tcp.tls");
        let l: NetServer;
        try {
          l = t.tls ? createTlsServer(t.tls, (s) => ref.server?.acceptTcp(s)) : createNetServer((s) => ref.server?.acceptTcp(s));
        } catch (err) {
          throw tlsOptionsError(err, "node.server");
        }
        l.on("tlsClientError", () => {});
        await bind(l, { host, port: t.port }, hostPort(host, t.port));
        listeners.push(l);
        const addr = l.address();
        endpoints.tcp = { host, port: typeof addr === "object" && addr ? addr.port : 0, tls: t.tls !== undefined };
      }
      for (const l of listeners) l.on("error", () => {});
    } catch (err) {
      for (const l of listeners) l.close();
      throw err;
    }
    const server = new Server(service, id, graph, handler as Handler<unknown, unknown>, endpoints, listeners, open, onClose, inPlace, maxConcurrent, maxClients, linger);
    ref.server = server;
    // Reachable before it is announced: clients of this thread (of any node) link to it during server.add.
    inThread.set(id, server);
    onOpen(server);
    try {
      await server.register();
    } catch (err) {
      await server.close({ linger: 0 });
      throw err;
    }
    return server;
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.active;
  }

  /** Requests answered so far (responses and errors). */
  get served(): number {
    return this.answered;
  }

  /** Clients connected over shm or tcp now. */
  get connections(): number {
    return this.channels.size;
  }

  /** @internal Registers this server again, with the same id (after the GraphServer was replaced). */
  async register(): Promise<void> {
    await this.graph.client.request("server.add", { id: this.id, service: this.service, endpoints: this.endpoints, inPlace: this.inPlace });
  }

  /** @internal The open server `id` of this thread, if it is one (for same-thread links, whatever node made it). */
  static find(id: string): Server | undefined {
    return inThread.get(id);
  }

  /** @internal A request from a client of this thread: the value itself, no encoding. */
  call(value: unknown): Promise<unknown> {
    if (this.closing) return Promise.reject(new ClosedError(`server of ${JSON.stringify(this.service)} is closed`));
    this.active++;
    const settle = (): void => this.settled();
    let result: unknown;
    try {
      result = this.handler(value);
    } catch (err) {
      settle();
      this.counters.errors++;
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const done = (v: unknown): unknown => {
      settle();
      if (!this.inPlace) return v;
      try {
        return checkInPlace(v, value as Uint8Array);
      } catch (err) {
        this.counters.errors++;
        throw err;
      }
    };
    if (isThenable(result)) return Promise.resolve(result).then(done, (err: unknown) => {
      settle();
      this.counters.errors++;
      throw err;
    });
    try {
      return Promise.resolve(done(result));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private settled(): void {
    this.active--;
    this.answered++;
    this.counters.requests++;
    if (this.active === 0) this.idle?.();
  }

  private acceptShm(socket: Socket): void {
    if (this.closing) return void socket.destroy();
    if (this.full(socket)) return;
    this.sockets.add(socket);
    socket.on("error", () => socket.destroy());
    acceptShm(socket, this.open).then(
      (ch) => this.serve(ch, socket),
      (err: unknown) => {
        this.sockets.delete(socket);
        refuse(socket, err);
      },
    );
  }

  private acceptTcp(socket: Socket): void {
    if (this.closing) return void socket.destroy();
    if (this.full(socket)) return;
    this.sockets.add(socket);
    socket.on("error", () => socket.destroy());
    acceptTcp(socket, this.open).then(
      (ch) => this.serve(ch, socket),
      (err: unknown) => {
        this.sockets.delete(socket);
        refuse(socket, err);
      },
    );
  }

  /** Refuses `socket` (true) when `maxClients` connections are open or opening. */
  private full(socket: Socket): boolean {
    if (this.channels.size + this.sockets.size < this.maxClients) return false;
    socket.on("error", () => socket.destroy());
    refuse(socket, new ResourceExhaustedError(`the server of ${JSON.stringify(this.service)} has ${this.maxClients} clients (maxClients)`));
    return true;
  }

  /** Serves one client's channel until it ends. */
  private serve(ch: Channel, socket: Socket): void {
    this.sockets.delete(socket);
    if (this.closing) return void ch.close();
    this.channels.add(ch);
    ch.onEnd = () => {
      this.channels.delete(ch);
      void ch.close().then(() => {
        if (ch.segment !== undefined) void this.graph.client.request("segment.remove", { name: ch.segment }).catch(() => {});
      });
    };
    // The GraphServer unlinks the response ring if this process dies before closing it.
    if (ch.segment !== undefined) void this.graph.client.request("segment.add", { name: ch.segment }).catch(() => {});
    const conn: Conn = { ch, handling: 0 };
    ch.onDrain = () => this.relieve(conn);
    ch.onMessage = (bytes, at, end, frame) => {
      this.onMessage(conn, bytes, at, end, frame);
      if (ch.congested || conn.handling + ch.backlog >= this.maxConcurrent) ch.pause(); // resumed by relieve()
    };
    ch.start();
  }

  /** Reads a paused connection again once its load is under the limit. */
  private relieve(conn: Conn): void {
    if (conn.ch.paused && !conn.ch.congested && conn.handling + conn.ch.backlog < this.maxConcurrent) conn.ch.resume();
  }

  private onMessage(conn: Conn, bytes: Uint8Array, at: number, end: number, frame: Releasable): void {
    const { ch } = conn;
    let type;
    try {
      type = checkHeader(bytes, at, end);
      if (type !== RpcType.Request) throw new ProtocolError(`a client sent message type ${type}`);
    } catch {
      // Not a request at all: this client is broken. Drop it; the others are served on.
      frame.release();
      void ch.close();
      return;
    }
    const id = get32(bytes, at + 8);
    const raw = (bytes[at + 5] & FLAG_RAW) !== 0;
    this.counters.bytes += end - at;
    let body: Uint8Array | undefined;
    let arg: unknown;
    try {
      if (this.inPlace) {
        if (!raw) throw new ProtocolError(`${JSON.stringify(this.service)} is an in-place service: requests are raw bytes`);
        arg = body = bytes.subarray(at + RPC_HEADER, end);
      } else {
        if (raw) throw new ProtocolError(`${JSON.stringify(this.service)} is not an in-place service: requests are encoded values`);
        arg = decodeAt(bytes, at + RPC_HEADER, end);
      }
    } catch (err) {
      frame.release();
      this.counters.requests++;
      this.counters.errors++;
      this.reply(ch, id, err);
      return;
    }
    this.active++;
    conn.handling++;
    let result: unknown;
    try {
      result = this.handler(arg);
    } catch (err) {
      this.finish(conn, id, true, err, body, frame);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (v) => this.finish(conn, id, false, v, body, frame),
        (err: unknown) => this.finish(conn, id, true, err, body, frame),
      );
    } else {
      this.finish(conn, id, false, result, body, frame);
    }
  }

  /**
   * Sends the answer of request `id`, then does the bookkeeping (after the answer is written:
   * it overlaps the client's work) and releases the request — an in-place answer too: it lies in
   * the client's own request ring, where the client's writer keeps it until the client is done.
   */
  private finish(conn: Conn, id: number, failed: boolean, value: unknown, body: Uint8Array | undefined, frame: Releasable): void {
    const ch = conn.ch;
    if (!ch.closed) {
      try {
        if (failed) ch.send(RpcType.Error, id, 0, errorBody(value));
        else if (!this.inPlace) ch.send(RpcType.Response, id, 0, valueBody(value));
        else {
          const request = body as Uint8Array; // in-place requests always keep their body
          // The whole request back (the usual case) needs no check; a typed array's byteOffset,
          // byteLength and buffer getters cost more than the rest of the answer together.
          const out = value === request ? request : checkInPlace(value, request);
          if (ch.kind === "shm") {
            // The answer stays where it is: tell the client where.
            if (out === request) ch.send(RpcType.InPlace, id, 0, lengthBody(request.length));
            else ch.send(RpcType.InPlace, id, out.byteOffset - request.byteOffset, lengthBody(out.byteLength));
          } else {
            ch.send(RpcType.Response, id, 0, rawBody(out));
          }
        }
      } catch (err) {
        if (!failed) this.counters.errors++;
        this.reply(ch, id, err);
      }
    }
    this.settled();
    conn.handling--;
    if (failed) this.counters.errors++;
    frame.release();
    this.relieve(conn);
  }

  /** Sends an error answer, if the channel still can. */
  private reply(ch: Channel, id: number, err: unknown): void {
    try {
      ch.send(RpcType.Error, id, 0, errorBody(err));
    } catch {
      // the channel ended: nobody to tell
    }
  }

  /**
   * Leaves the graph (clients stop sending here), waits for the requests being handled — at most
   * `linger` ms (the option, or `opts.linger`; 0: not at all), after which their answers are
   * dropped, with a process warning (`PLEXUS_LINGER`) — then closes every connection. Idempotent;
   * a later call with a shorter `linger` shortens the wait.
   */
  close(opts?: CloseOptions): Promise<void> {
    let ms: number;
    try {
      ms = closeLinger(opts, this.linger);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closing !== undefined) {
      this.lingering?.shorten(ms);
      return this.closing;
    }
    this.closing = (async () => {
      this.onClose();
      if (inThread.get(this.id) === this) inThread.delete(this.id);
      // One linger for the whole close: leaving the graph (confirmed once every client applied
      // it, which a stopped client process delays), then the requests being handled.
      const linger = (this.lingering = new Linger(ms));
      const left = this.graph.client.request("server.remove", { id: this.id }).catch(() => {}); // not registered (yet): nothing to undo
      await Promise.race([left, linger.ended]);
      for (const l of this.listeners) l.close();
      for (const s of this.sockets) s.destroy();
      if (this.active === 0) linger.end();
      else {
        this.idle = () => linger.end();
        await linger.ended;
        if (this.active > 0) {
          warnDropped(`the server of ${JSON.stringify(this.service)} closed with ${this.active === 1 ? "1 request" : `${this.active} requests`} still being handled after the linger of ${linger.ms} ms; ${this.active === 1 ? "its answer is" : "their answers are"} dropped`);
        }
      }
      await Promise.all([...this.channels].map((c) => c.close()));
      this.channels.clear();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The response of an in-place handler: `bytes` itself (nothing returned) or a view inside it. */
function checkInPlace(value: unknown, bytes: Uint8Array): Uint8Array {
  if (value === undefined) return bytes;
  if (
    value instanceof Uint8Array &&
    value.buffer === bytes.buffer &&
    value.byteOffset >= bytes.byteOffset &&
    value.byteOffset + value.byteLength <= bytes.byteOffset + bytes.byteLength
  ) {
    return value;
  }
  throw new InvalidArgumentError("an in-place handler must return the request's bytes or a subarray of them (or nothing)");
}

