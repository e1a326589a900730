/**
 * The GraphServer: registry of nodes, topics, ports and edges; tells subscribers when their
 * upstream publishers change and waits until they applied it; frees what dead nodes held.
 * @module
 */
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import { timingSafeEqual } from "node:crypto";
import { AccessDeniedError, errorToWire, ProtocolError } from "../errors.js";
import { encodeRefusal, encodeWelcome, readHello, Status } from "../net/handshake.js";
import { bind, hostPort, tlsOptionsError } from "../net/listen.js";
import { native } from "../native.js";
import { hostId } from "./identity.js";
import { isLoopback } from "../net/loopback.js";
import { CONTROL_SPEC, ControlParser, encodeControl, MsgType, packBody, STATUS_ACCESS_DENIED, unpackBody, type ControlMessage } from "./protocol.js";
import { Registry, type Endpoints, type PublisherInfo, type ServerInfo, type Snapshot } from "./registry.js";
import { StatsBook, type GraphStats } from "./stats.js";
import { readOptions } from "../util/options.js";

/** Default control address. */
export const DEFAULT_GRAPH_PORT = 25978;

/** Options of {@link GraphServer.start}. */
export interface GraphServerOptions {
  /** Address to bind (default 127.0.0.1). Anything but loopback requires `tls` and `token`. */
  host?: string;
  /** Port (default 25978; 0 = any free port). */
  port?: number;
  /** TLS options (`key`, `cert`, `ca`, ...): the control connection is then TLS. */
  tls?: TlsOptions;
  /** Access token every node must present. Required off loopback. */
  token?: string;
  /** How long to wait for a subscriber to apply a change (ms, default 5000). */
  notifyTimeout?: number;
}

/** The shortest access token (characters). */
export const MIN_TOKEN = 8;

/** A node must send its HELLO within this time (ms). */
const HANDSHAKE_TIMEOUT = 5000;

/** One node's control connection. */
class Session {
  node: string | undefined;
  readonly parser = new ControlParser();
  readonly acks = new Map<number, () => void>();

  constructor(readonly socket: Socket) {}

  send(type: MsgType.Response | MsgType.Notify, id: number, body: Record<string, unknown>): void {
    if (!this.socket.destroyed) this.socket.write(encodeControl(type, id, body));
  }
}

/** The GraphServer. `await using server = await GraphServer.start()`. */
export class GraphServer implements AsyncDisposable {
  private readonly registry = new Registry();
  private readonly book = new StatsBook();
  private readonly sessions = new Set<Session>();
  private readonly byNode = new Map<string, Session>();
  private notifySeq = 1;
  private closing: Promise<void> | undefined;
  /** Where the server listens. */
  readonly address: { host: string; port: number; tls: boolean };

  private constructor(
    private readonly server: Server,
    private readonly opts: { readonly token: string | undefined; readonly notifyTimeout: number },
    address: { host: string; port: number; tls: boolean },
  ) {
    this.address = address;
  }

  /** Starts a server. Rejects with a `SystemError` (`errnoName` `EADDRINUSE`, `cause` Node's error) if the port is taken. */
  static async start(opts: GraphServerOptions = {}): Promise<GraphServer> {
    const o = readOptions("GraphServer.start", opts);
    const checked = {
      host: o.string("host", 1) ?? "127.0.0.1",
      port: o.int("port", DEFAULT_GRAPH_PORT, 0, 65535),
      tls: o.object("tls", "an object of TLS options"),
      token: o.string("token", MIN_TOKEN),
      notifyTimeout: o.ms("notifyTimeout", 5000),
    };
    const host = checked.host;
    if (!isLoopback(host) && (!checked.tls || !checked.token)) {
      throw new AccessDeniedError(`binding ${host} (not loopback) requires tls and an access token`);
    }
    const ref: { graph?: GraphServer } = {};
    const onSocket = (socket: Socket): void => ref.graph?.accept(socket);
    let server: Server;
    try {
      server = checked.tls ? createTlsServer(checked.tls, onSocket) : createServer(onSocket);
    } catch (err) {
      throw tlsOptionsError(err, "GraphServer.start");
    }
    await bind(server, { host, port: checked.port }, `GraphServer at ${hostPort(host, checked.port)}`);
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : checked.port;
    ref.graph = new GraphServer(server, checked, { host, port, tls: !!checked.tls });
    return ref.graph;
  }

  /** The whole graph. */
  snapshot(): Snapshot {
    return this.registry.snapshot();
  }

  /** Traffic per topic (rates, bandwidth, backpressure waits, drops, link transports) and per service (request rate, errors, latency), from what nodes report. */
  stats(): GraphStats {
    const snapshot = this.registry.snapshot();
    const ids = new Set([...snapshot.publishers, ...snapshot.subscribers, ...snapshot.servers, ...snapshot.clients].map((p) => p.id));
    this.book.prune((id) => ids.has(id));
    return this.book.topics(snapshot);
  }

  /** Stops listening and drops every node. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const s of this.sessions) s.socket.destroy();
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Keeps the process alive while listening (default) or not. */
  unref(): void {
    this.server.unref();
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const session = new Session(socket);
    this.sessions.add(session);
    // No HELLO within the handshake timeout: the connection is dropped (docs/protocol.md §0.2).
    const handshake = setTimeout(() => {
      if (session.node === undefined) socket.destroy();
    }, HANDSHAKE_TIMEOUT);
    handshake.unref();
    socket.once("close", () => clearTimeout(handshake));
    socket.on("data", (chunk: Buffer) => {
      let messages: ControlMessage[];
      try {
        messages = session.parser.push(chunk);
      } catch (err) {
        if (session.node === undefined) this.refuse(session, Status.Malformed, err instanceof Error ? err.message : String(err));
        else socket.destroy();
        return;
      }
      for (const m of messages) this.dispatch(session, m);
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.drop(session));
  }

  /** Refuses a node's HELLO with a WELCOME of `status` saying why, and hangs up. */
  private refuse(session: Session, status: number, reason: string): void {
    if (!session.socket.destroyed) {
      session.socket.end(encodeRefusal(CONTROL_SPEC, status, reason));
      session.socket.destroySoon();
    }
  }

  private dispatch(session: Session, m: ControlMessage): void {
    if (session.node === undefined) {
      if (m.type !== MsgType.Hello || m.payload === undefined) return this.refuse(session, Status.Malformed, "the first frame must be HELLO");
      return this.hello(session, m.payload);
    }
    if (session.socket.writableEnded) return; // refused: what came after the HELLO is not read
    if (m.type === MsgType.NotifyAck) {
      session.acks.get(m.id)?.();
      session.acks.delete(m.id);
      return;
    }
    if (m.type !== MsgType.Request) {
      session.socket.destroy(); // a protocol violation: the node's registrations go with its connection
      return;
    }
    const node = session.node;
    this.handle(node, m.body).then(
      (result) => session.send(MsgType.Response, m.id, { ok: true, result }),
      (err: unknown) => {
        session.send(MsgType.Response, m.id, { ok: false, ...errorToWire(err) });
      },
    );
  }

  private hello(session: Session, payload: Buffer): void {
    const verdict = readHello(CONTROL_SPEC, payload);
    if (!verdict.ok) return this.refuse(session, verdict.status, verdict.reason);
    let body: Record<string, unknown>;
    try {
      body = unpackBody(verdict.hello.body);
    } catch {
      return this.refuse(session, Status.Malformed, "the HELLO body is not a MessagePack map");
    }
    const token = this.opts.token;
    if (token !== undefined) {
      const given = Buffer.from(typeof body.token === "string" ? body.token : "");
      const want = Buffer.from(token);
      if (given.length !== want.length || !timingSafeEqual(given, want)) {
        return this.refuse(session, STATUS_ACCESS_DENIED, "wrong or missing access token");
      }
    }
    const pid = body.pid;
    const threadId = body.threadId;
    if (typeof body.host !== "string" || !Number.isInteger(pid) || !Number.isInteger(threadId)) {
      return this.refuse(session, Status.Malformed, "hello needs host (string), pid and threadId (integers)");
    }
    const node = this.registry.addNode({
      host: body.host,
      pid: pid as number,
      threadId: threadId as number,
      name: typeof body.name === "string" ? body.name.slice(0, 200) : `pid ${pid}`,
    });
    session.node = node.id;
    this.byNode.set(node.id, session);
    session.socket.write(encodeWelcome(CONTROL_SPEC, verdict.hello, 0, packBody({ node: node.id })));
  }

  /** Runs one request of `node`; notifications of the change complete before the answer. */
  private async handle(node: string, body: Record<string, unknown>): Promise<unknown> {
    const str = (k: string): string => {
      const v = body[k];
      if (typeof v !== "string") throw new ProtocolError(`${String(body.op)}: ${k} must be a string`);
      return v;
    };
    switch (body.op) {
      case "publisher.add": {
        const endpoints = checkEndpoints(body.endpoints);
        const { publisher, changed } = this.registry.addPublisher(node, str("topic"), endpoints, body.id ?? undefined);
        await this.notify(changed);
        return { publisher: publisher.id };
      }
      case "subscriber.add": {
        const { subscriber, upstream } = this.registry.addSubscriber(node, str("topic"), body.id ?? undefined);
        return { subscriber: subscriber.id, publishers: upstream };
      }
      case "port.remove":
        await this.notify(this.registry.removePort(node, str("id")));
        return {};
      case "edge.add":
        await this.notify(this.registry.addEdge(node, str("from"), str("to"), body.persistent === true));
        return {};
      case "edge.remove":
        await this.notify(this.registry.removeEdge(str("from"), str("to")));
        return {};
      case "segment.add":
        this.registry.addSegment(node, str("name"));
        return {};
      case "segment.remove":
        this.registry.removeSegment(node, str("name"));
        return {};
      case "snapshot":
        return this.registry.snapshot();
      case "remote.set":
        this.registry.setRemote(node, body.graphs);
        return {};
      case "stats":
        return this.stats();
      case "stats.report": {
        const snap = this.registry.snapshot();
        const mine = new Set([...snap.publishers, ...snap.subscribers, ...snap.servers, ...snap.clients].filter((p) => p.node === node).map((p) => p.id));
        this.book.report(body, (id) => mine.has(id));
        return {};
      }
      case "server.add": {
        const endpoints = checkEndpoints(body.endpoints);
        const { server, changed } = this.registry.addServer(node, str("service"), endpoints, body.inPlace === true, body.id ?? undefined);
        await this.notifyServices(changed);
        return { server: server.id };
      }
      case "server.remove":
        await this.notifyServices(this.registry.removeServer(node, str("id")));
        return {};
      case "client.add": {
        const { client, servers } = this.registry.addClient(node, str("service"), body.id ?? undefined);
        return { client: client.id, servers };
      }
      case "client.remove":
        this.registry.removeClient(node, str("id"));
        return {};
      default:
        throw new ProtocolError(`unknown operation ${JSON.stringify(body.op)}`);
    }
  }

  /** Sends every changed server set to its client and waits (bounded) for the acks. */
  private notifyServices(changed: Map<string, ServerInfo[]>): Promise<void> {
    return this.notify(changed, true);
  }

  /** Sends every changed upstream set to its subscriber (or server set to its client) and waits (bounded) for the acks. */
  private async notify(changed: Map<string, PublisherInfo[] | ServerInfo[]>, services = false): Promise<void> {
    const timeout = this.opts.notifyTimeout;
    const waits: Promise<void>[] = [];
    for (const [port, list] of changed) {
      const owner = services ? this.registry.client(port)?.node : this.registry.subscriber(port)?.node;
      const session = owner === undefined ? undefined : this.byNode.get(owner);
      if (session === undefined || session.socket.destroyed) continue;
      const seq = this.notifySeq++;
      waits.push(
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            session.acks.delete(seq);
            resolve();
          }, timeout);
          session.acks.set(seq, () => {
            clearTimeout(timer);
            resolve();
          });
          session.send(MsgType.Notify, seq, services ? { client: port, servers: list } : { subscriber: port, publishers: list });
        }),
      );
    }
    await Promise.all(waits);
  }

  /** A node's connection ended: remove everything it held. */
  private drop(session: Session): void {
    this.sessions.delete(session);
    for (const ack of session.acks.values()) ack();
    session.acks.clear();
    const node = session.node;
    if (node === undefined) return;
    this.byNode.delete(node);
    const info = this.registry.node(node);
    const { segments, changed, services } = this.registry.removeNode(node);
    if (info?.host === hostId()) {
      for (const name of segments) {
        try {
          native().segmentUnlink(name);
        } catch {
          // not ours to unlink, or already gone
        }
      }
    }
    void this.notify(changed);
    void this.notifyServices(services);
  }
}

/** Validates the endpoints of a publisher registration. */
function checkEndpoints(value: unknown): Endpoints {
  const e = value as Partial<Endpoints> | null;
  if (e === null || typeof e !== "object" || typeof e.host !== "string" || !Number.isInteger(e.pid) || !Number.isInteger(e.threadId)) {
    throw new ProtocolError("endpoints need host, pid and threadId");
  }
  const out: Endpoints = { host: e.host, pid: e.pid as number, threadId: e.threadId as number };
  if (e.shm !== undefined) {
    if (typeof e.shm?.name !== "string" || typeof e.shm.socket !== "string") throw new ProtocolError("bad shm endpoint");
    out.shm = { name: e.shm.name, socket: e.shm.socket };
  }
  if (e.tcp !== undefined) {
    if (typeof e.tcp?.host !== "string" || !Number.isInteger(e.tcp.port)) throw new ProtocolError("bad tcp endpoint");
    out.tcp = { host: e.tcp.host, port: e.tcp.port, tls: e.tcp.tls === true };
  }
  if (e.remote !== undefined) {
    if (typeof e.remote !== "string" || e.remote.length === 0 || e.remote.length > 255) throw new ProtocolError("bad remote marker: a graph name of 1..255 characters");
    out.remote = e.remote;
  }
  return out;
}
