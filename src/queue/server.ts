/**
 * The queue server: listens on TCP (or TLS, or gRPC), keeps one session per client identity (surviving
 * reconnection for `reconnectWindow`), takes messages from every client into one queue, and
 * puts to one, several or all clients.
 * @module
 */
import { randomBytes } from "node:crypto";
import { Socket, type AddressInfo, type OnReadOpts, type Server, type SocketConstructorOpts } from "node:net";
import { AccessDeniedError, ClosedError, InvalidArgumentError, PeerDeadError, PlexusError, ProtocolError } from "../errors.js";
import { contained, type BlockingOptions } from "../util/blocking.js";
import type { CloseOptions } from "../util/linger.js";
import { refusePlainTcp } from "../net/loopback.js";
import { listenTcp } from "../net/listen.js";
import { FdTcpListener } from "../net/fd-listener.js";
import { native } from "../native.js";
import { intOption, msOption } from "../transport/tcp-wire.js";
import { Endpoint } from "./endpoint.js";
import type { PeerId } from "./inbox.js";
import { SocketLink, type Link } from "./link.js";
import { linkKey, MqttHub, MqttLink } from "./mqtt.js";
import { GrpcListener, type GrpcLink } from "./grpc.js";
import { settings, type QueueServerOptions, type Settings } from "./options.js";
import { Session } from "./session.js";
import { decodeBody, encodeBody, FLAG_IDLE, FLAG_TAKEN_OVER, type HandshakeBody, HandshakeStatus, header, type Header, QFrame, QUEUE_SPEC, TOKEN_BYTES } from "./wire.js";
import { encodeRefusal, encodeWelcome, readHello } from "../net/handshake.js";

/** Superseded session tokens remembered per identity (a displaced client coming back is refused). */
const SUPERSEDED_KEPT = 8;

/** Options of {@link QueueServer.put} given as an object. */
export interface ServerPutOptions extends BlockingOptions {
  /** The clients to put to; none or empty: every connected client. */
  peers?: readonly PeerId[];
}

interface ServerConfig extends Settings {
  maxClients: number;
  handshakeTimeout: number;
  idleTimeout: number;
  onPeerError: ((err: PlexusError) => void) | undefined;
}

/**
 * A queue server. Create with `queue.server<ToServer, ToClient>({ url })`. `get()` takes the
 * `ToServer` messages of any client (`msg.peer` says which); `put(value, ...peers)` sends a
 * `ToClient` value to those clients, or to all of them.
 */
export class QueueServer<ToServer = unknown, ToClient = unknown> extends Endpoint<ToServer, ToClient> {
  /** The URL clients connect to (with the bound port). */
  readonly url: string;
  /** The port listened on. */
  readonly port: number;
  private readonly sessions = new Map<PeerId, Session>();
  private readonly live = new Set<Link>();
  private readonly lost = new Map<Session, ReturnType<typeof setTimeout>>();

  /** Plain TCP: the listener (connections arrive as fds, read with `onread`). */
  private fds: FdTcpListener | undefined;
  /** gRPC: the listener (each client connection is one stream). */
  private grpc: GrpcListener | undefined;

  private constructor(
    private readonly server: Server | undefined,
    private readonly hub: MqttHub | undefined,
    private readonly identity: Buffer,
    private readonly scfg: ServerConfig,
    port: number,
  ) {
    super(scfg);
    this.port = port;
    const h = scfg.url.host.includes(":") ? `[${scfg.url.host}]` : scfg.url.host;
    this.url = `${scfg.url.scheme}://${h}:${port}${hub ? `/${encodeURIComponent(scfg.url.name)}${scfg.url.qos === 1 ? "?qos=1" : ""}` : ""}`;
    if (server !== undefined) {
      server.on(scfg.useTls ? "secureConnection" : "connection", (s: Socket) => this.accept(s));
      server.on("tlsClientError", (err: Error) => this.report(new AccessDeniedError(`TLS handshake with a client failed: ${err.message}`, { cause: err })));
      server.on("error", () => {}); // accept errors (EMFILE): that connection is lost, the server serves on
    }
    if (hub !== undefined) {
      hub.onUnknown = (peer, token, frame) => {
        if (this.closing) return;
        const link = hub.link(linkKey(peer, token), `c/${peer}`, this.cfg.maxMessage, Buffer.from(token), this.liveness());
        this.acceptLink(link);
        link.receive(frame);
      };
    }
  }

  /** @internal use `queue.server` */
  static async create<ToServer = unknown, ToClient = unknown>(opts: QueueServerOptions): Promise<QueueServer<ToServer, ToClient>> {
    const base = settings(opts, true);
    const cfg: ServerConfig = {
      ...base,
      maxClients: intOption("maxClients", opts.maxClients, 1024, 1, 65536),
      handshakeTimeout: msOption("handshakeTimeout", opts.handshakeTimeout, 5000),
      idleTimeout: opts.idleTimeout === undefined ? Infinity : msOption("idleTimeout", opts.idleTimeout, 0),
      onPeerError: contained(opts.onPeerError),
    };
    const { host, port } = cfg.url;
    refusePlainTcp(host, cfg.useTls, cfg.allowInsecure, "serve");
    const identity = randomBytes(16);
    if (cfg.url.scheme === "mqtt" || cfg.url.scheme === "mqtts") {
      const hub = await MqttHub.connect(cfg.url, cfg.tls, identity, "s", cfg.handshakeTimeout);
      return new QueueServer<ToServer, ToClient>(undefined, hub, identity, cfg, port);
    }
    if (cfg.url.scheme === "grpc" || cfg.url.scheme === "grpcs") {
      // Streams arrive once `server` below exists (nothing runs between the bind and it).
      const grpc = await GrpcListener.listen(
        cfg.url,
        cfg.useTls,
        cfg.tls,
        cfg.maxMessage,
        () => server.liveness(),
        (link) => server.acceptGrpc(link),
      );
      const server = new QueueServer<ToServer, ToClient>(undefined, undefined, identity, cfg, grpc.port);
      server.grpc = grpc;
      return server;
    }
    if (cfg.useTls && (cfg.tls === undefined || (cfg.tls.pfx === undefined && (cfg.tls.key === undefined || cfg.tls.cert === undefined)))) {
      throw new InvalidArgumentError("a TLS queue server needs tls.key and tls.cert (or tls.pfx)");
    }
    if (!cfg.useTls) {
      // Plain TCP: accepted by the addon, so that each connection reads with `onread` (large
      // payloads straight into their buffers).
      const fds = await FdTcpListener.listen(host, port);
      const server = new QueueServer<ToServer, ToClient>(undefined, undefined, identity, cfg, fds.port);
      server.fds = fds;
      fds.onConnection = (fd) => server.acceptFd(fd);
      return server;
    }
    const server = await listenTcp({
      host,
      port,
      tls: cfg.tls,
      keepAliveMs: cfg.peerTimeout,
      handshakeTimeout: cfg.handshakeTimeout,
      maxConnections: cfg.maxClients + 64,
    });
    // the listener keeps the process alive while the server is open, like an HTTP server
    return new QueueServer<ToServer, ToClient>(server, undefined, identity, cfg, (server.address() as AddressInfo).port);
  }

  /** The clients with a session (connected, or reconnecting within `reconnectWindow`). */
  get peers(): PeerId[] {
    return [...this.sessions.keys()];
  }

  /**
   * Puts `value` to the named clients, or to every client when none is named; encoded once.
   * Resolves when every one of them acknowledged it. Rejects with `PeerDeadError` (a named
   * client is unknown or left, or no client is connected), `TimeoutError`, `AbortError`,
   * `FrameTooLargeError`, `BackpressureError`, `EncodeError`, `ClosedError`.
   */
  put(value: ToClient, ...peers: PeerId[]): Promise<void>;
  /** Puts with options: `{ peers, timeout, signal }`. */
  put(value: ToClient, options: ServerPutOptions): Promise<void>;
  put(value: ToClient, ...rest: (PeerId | ServerPutOptions)[]): Promise<void> {
    let peers: readonly PeerId[];
    let opts: BlockingOptions = {};
    if (rest.length === 1 && typeof rest[0] === "object" && rest[0] !== null) {
      const o = rest[0];
      opts = o;
      peers = o.peers ?? [];
    } else {
      peers = rest as PeerId[];
    }
    const targets: Session[] = [];
    if (peers.length === 0) {
      for (const s of this.sessions.values()) targets.push(s);
    } else {
      for (const id of peers) {
        const s = typeof id === "string" ? this.sessions.get(id) : undefined;
        if (s === undefined) return Promise.reject(new PeerDeadError(`no client ${String(id)} (it left, or never connected)`));
        if (!targets.includes(s)) targets.push(s); // a client named twice gets the message once
      }
    }
    return this.startPut(value, targets, opts);
  }

  /**
   * Stops accepting clients and puts, waits until every pending put settled, tells every client
   * BYE, waits for them to hang up, and ends the queue — all in at most `linger` ms (the option,
   * or `opts.linger`; at least 100 ms for the BYE when clients are connected): `get` returns what
   * is left, then rejects with `ClosedError`. Puts still pending then reject with `ClosedError`,
   * with a process warning (`PLEXUS_LINGER`). Idempotent; a later call with a shorter `linger`
   * shortens the wait.
   */
  close(opts?: CloseOptions): Promise<void> {
    return this.closeOnce(opts, (linger) => this.shutdown(linger));
  }

  private async shutdown(linger: number): Promise<void> {
    this.closing = true;
    this.server?.close();
    this.fds?.close();
    const started = performance.now();
    await this.flushPuts(linger, new ClosedError("queue server closed before the put was acknowledged"), `the queue server at ${this.url}`);
    this.inbox.end(new ClosedError("queue server is closed"));
    const waits: Promise<void>[] = [];
    for (const s of this.sessions.values()) {
      s.control(QFrame.Bye);
      const l = s.link;
      if (l !== undefined && !l.closed) {
        waits.push(l.whenClosed());
        l.end(); // TCP: FIN after the BYE, then wait for the client to hang up; MQTT: BYE is published, done
      }
    }
    await this.awaitHangUp(Promise.all(waits), Math.max(100, linger - (performance.now() - started)));
    for (const l of this.live) l.destroy();
    for (const t of this.lost.values()) clearTimeout(t);
    this.lost.clear();
    for (const s of this.sessions.values()) s.kill(new ClosedError("queue server is closed"));
    this.sessions.clear();
    this.stopTicker();
    await this.hub?.close();
    this.grpc?.close();
  }

  protected *links(): Iterable<Link> {
    // Only links past the handshake: a PING must never come before a client's WELCOME (links
    // still in the handshake are bounded by handshakeTimeout instead).
    for (const s of this.sessions.values()) if (s.link !== undefined) yield s.link;
  }

  protected override onTick(): void {
    if (this.scfg.idleTimeout === Infinity) return;
    const now = performance.now();
    for (const s of [...this.sessions.values()]) {
      if (s.link === undefined || now - s.lastData < this.scfg.idleTimeout) continue;
      if (s.outstanding > 0 || s.unacknowledged > 0) continue;
      s.control(QFrame.Bye, FLAG_IDLE);
      s.link.end();
      this.endSession(s, new PeerDeadError("client session collected after being idle"));
    }
  }

  /** @internal */
  bye(s: Session): void {
    s.link?.end();
    this.endSession(s, new PeerDeadError(`client ${s.id} closed its queue`));
  }

  private endSession(s: Session, err: PlexusError): void {
    const t = this.lost.get(s);
    if (t !== undefined) clearTimeout(t);
    this.lost.delete(s);
    s.kill(err);
    this.inbox.forget(s);
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
  }

  private report(err: PlexusError): void {
    this.scfg.onPeerError?.(err);
  }

  /** A plain TCP connection, as its fd. */
  private acceptFd(fd: number): void {
    if (this.closing || this.live.size >= this.scfg.maxClients + 64) {
      native().close(fd); // closing, or more connections than clients allowed (a flood): refused
      return;
    }
    let socket: Socket | undefined;
    try {
      const link = new SocketLink((onread) => {
        // `onread` is a constructor option since Node 12 (its types list it under connect only).
        const options: SocketConstructorOpts & { onread: OnReadOpts } = { fd, readable: true, writable: true, onread };
        return (socket = new Socket(options));
      }, this.cfg.maxMessage, this.liveness());
      link.socket.setNoDelay(true);
      link.socket.setKeepAlive(true, this.cfg.peerTimeout);
      this.acceptLink(link);
    } catch (err) {
      // Not a socket Node can wrap, or out of memory: that connection is lost, the server serves on.
      if (socket !== undefined) socket.destroy();
      else native().close(fd);
      this.report(new PeerDeadError(`could not take a client connection: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    }
  }

  /** A gRPC stream: one client connection. */
  private acceptGrpc(link: GrpcLink): void {
    if (this.closing || this.live.size >= this.scfg.maxClients + 64) {
      link.destroy(); // closing, or more connections than clients allowed (a flood): refused
      return;
    }
    this.acceptLink(link);
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.acceptLink(new SocketLink(socket, this.cfg.maxMessage, this.liveness()));
  }

  private acceptLink(link: SocketLink | MqttLink | GrpcLink): void {
    this.live.add(link);
    let session: Session | undefined;
    const timer = setTimeout(() => link.fail(new ProtocolError(`no queue handshake within ${this.scfg.handshakeTimeout} ms`)), this.scfg.handshakeTimeout);
    link.bind({
      frame: (h: Header, payload: Buffer) => {
        if (session !== undefined && !(h.type === QFrame.Hello && link instanceof MqttLink)) {
          session.onFrame(h, payload);
          return;
        }
        if (h.type !== QFrame.Hello) throw new ProtocolError(`expected HELLO, got frame type ${h.type}`);
        clearTimeout(timer);
        session = this.hello(link, payload, session);
      },
      gone: (err) => {
        clearTimeout(timer);
        this.live.delete(link);
        if (err !== undefined && !this.closing) {
          this.report(err instanceof PlexusError ? err : new PeerDeadError(`client connection failed: ${err.message}`, { cause: err }));
        }
        if (session !== undefined && session.link === link) this.detach(session);
      },
    });
  }

  /**
   * Answers a HELLO; returns the client's session, or undefined after a refusal. `current` is
   * the session already on `link` (MQTT: a HELLO again on a client's link — same identity and
   * session token — after its broker connection came back): a refusal then leaves that session
   * and its link alone.
   *
   * The session token decides between resuming and taking over: the identity's session with
   * the same token is resumed (the same client object reconnecting); a different token is
   * another client object (a restarted process) taking the identity over: the old session
   * ends — what was pending toward it rejects with `PeerDeadError`, its serials and duplicate
   * state are dropped, its connection (if any is left) gets a BYE with the taken-over flag —
   * and a new session starts. A token that was taken over is refused (`Superseded`), so a
   * displaced client cannot take the identity back.
   */
  private hello(link: Link, payload: Buffer, current: Session | undefined): Session | undefined {
    const verdict = readHello(QUEUE_SPEC, payload);
    let h: HandshakeBody | undefined;
    try {
      if (verdict.ok) h = decodeBody(verdict.hello.body);
    } catch {
      // a malformed body: refused below
    }
    // Refusals carry the queue's body with the HELLO's token (MQTT clients share a topic and
    // tell their answer by it); a HELLO whose body could not be read gets a zero token.
    const echo = h?.session ?? Buffer.alloc(TOKEN_BYTES);
    const refuse = (status: number): Session | undefined => {
      link.write([encodeRefusal(QUEUE_SPEC, status, this.body(false, echo))]);
      if (current !== undefined) return current;
      link.end();
      return undefined;
    };
    if (!verdict.ok) return refuse(verdict.status);
    if (h === undefined || verdict.hello.heartbeat < 1) return refuse(HandshakeStatus.Malformed);
    const id = h.identity.toString("hex");
    const token = h.session.toString("hex");
    let s = this.sessions.get(id);
    let superseded: readonly string[] = [];
    if (s !== undefined && s.token !== token) {
      if (s.superseded.includes(token)) return refuse(HandshakeStatus.Superseded);
      superseded = [...s.superseded, s.token].slice(-SUPERSEDED_KEPT);
      this.takeOver(s, link);
      s = undefined;
    }
    const resumed = s !== undefined;
    if (s === undefined) {
      if (this.sessions.size >= this.scfg.maxClients) return refuse(HandshakeStatus.Full);
      s = new Session(h.identity, this, { slots: this.cfg.slots, maxPending: this.cfg.maxPending });
      s.token = token;
      s.superseded = superseded;
      this.sessions.set(id, s);
    } else {
      const t = this.lost.get(s);
      if (t !== undefined) clearTimeout(t);
      this.lost.delete(s);
      const old = s.link;
      s.link = undefined;
      if (old !== undefined && old !== link) old.destroy(); // the client came back before we noticed it left
    }
    s.peerSlots = h.slots;
    s.peerMaxMessage = h.maxMessage;
    link.liveness.setPeerHeartbeat(verdict.hello.heartbeat);
    link.write([encodeWelcome(QUEUE_SPEC, verdict.hello, this.cfg.heartbeat, this.body(resumed, h.session))]);
    s.attach(link, resumed);
    return s;
  }

  /**
   * Ends session `old` because another client (another session token) connected with its
   * identity on `link`: its pending puts reject with `PeerDeadError`, messages it parked here
   * are dropped (never acknowledged), and its connection, if it is another one that is still
   * up, gets a BYE with the taken-over flag and is closed.
   */
  private takeOver(old: Session, link: Link): void {
    const oldLink = old.link;
    old.link = undefined;
    if (oldLink !== undefined && oldLink !== link && !oldLink.closed) {
      oldLink.write([header(0, QFrame.Bye, FLAG_TAKEN_OVER, 0)]);
      oldLink.end();
      // A client that is gone without a word does not close its side: do not wait for it.
      setTimeout(() => oldLink.destroy(), this.scfg.handshakeTimeout).unref();
    }
    this.endSession(old, new PeerDeadError(`client ${old.id} was taken over by a new client with the same identity`));
  }

  /** The queue's WELCOME body; `session` is the token of the HELLO it answers. */
  private body(resumed: boolean, session: Buffer): Buffer {
    return encodeBody({ resumed, slots: this.cfg.slots, maxMessage: this.cfg.maxMessage, identity: this.identity, session });
  }

  /** The client's connection dropped: keep its session for `reconnectWindow`. */
  private detach(s: Session): void {
    s.link = undefined;
    if (this.closing || s.dead !== undefined) return;
    const t = setTimeout(() => {
      this.lost.delete(s);
      this.endSession(s, new PeerDeadError(`client ${s.id} did not reconnect within ${this.cfg.reconnectWindow} ms`));
    }, this.cfg.reconnectWindow);
    t.unref(); // a pending put's own timer keeps the process alive if it must
    this.lost.set(s, t);
  }
}
