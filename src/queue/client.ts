/**
 * The queue client: one session with the server, over a connection it re-establishes (same
 * identity and session token, so the server keeps its session) when it drops, for up to
 * `reconnectWindow`. If the window passes, the session is lost (pending puts reject) and the
 * client is `disconnected`: its next call starts a new session with a new token. Another client
 * object with the same identity has another token: it starts a new session, and this one ends.
 * @module
 */
import { randomBytes } from "node:crypto";
import { Listeners } from "../util/listeners.js";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import {
  AccessDeniedError,
  ClosedError,
  PeerDeadError,
  PlexusError,
  ProtocolError,
  TimeoutError,
} from "../errors.js";
import { checkTimeout, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { refusePlainTcp } from "../net/loopback.js";
import { Endpoint } from "./endpoint.js";
import { SocketLink, type Link } from "./link.js";
import { MqttHub, MqttLink } from "./mqtt.js";
import { GrpcDialer } from "./grpc.js";
import { identityOf, settings, type QueueClientOptions, type Settings } from "./options.js";
import { Session } from "./session.js";
import { decodeBody, encodeBody, header, FLAG_IDLE, FLAG_TAKEN_OVER, HandshakeStatus, type Header, QFrame, QUEUE_SPEC, TOKEN_BYTES } from "./wire.js";
import type { CloseOptions } from "../util/linger.js";
import { encodeHello, readWelcome, refusal } from "../net/handshake.js";
import { connectError } from "../net/dial.js";
import { Deferred } from "../util/wait.js";

const enum State {
  Connected,
  /** Connecting again: after the connection dropped (same session), or for a call (a new one). */
  Reconnecting,
  /** The server collected the idle session; reconnect on the next call. */
  Idle,
  /** The session was lost (the window passed, the server closed): the next call starts a new one. */
  Disconnected,
  /** Another client took this identity over: every call rejects. */
  Failed,
  Closed,
}

/**
 * The state of a queue client (`client.state`):
 * - `connected`: a connection is up;
 * - `reconnecting`: the connection dropped and the client is connecting again, for up to
 *   `reconnectWindow` (puts and gets wait), or a call of a `disconnected` client is connecting;
 * - `disconnected`: no connection, and none is being made: the session was lost (the server did
 *   not come back within `reconnectWindow`, or closed), or the server collected it while idle.
 *   The next `put` or `get` connects again;
 * - `failed`: another client took this client's identity over; every call rejects with
 *   `PeerDeadError` (only `close()` remains);
 * - `closed`: `close()` was called.
 */
export type QueueClientState = "connected" | "reconnecting" | "disconnected" | "failed" | "closed";

/** The events of a queue client and the argument each listener gets (`client.on(event, listener)`). */
export interface QueueClientEvents {
  /**
   * The connection dropped without a close (why: the error), or the server collected the idle
   * session. The client reconnects now (what was in flight is resent if the session survives)
   * or, when idle, on its next call.
   */
  disconnect: PlexusError;
  /**
   * A connection is up again. `resumed`: the server kept the session (nothing lost); otherwise a
   * new session started (a `session-lost` came first).
   */
  reconnect: { readonly resumed: boolean };
  /**
   * The session ended without a `close()`, and its pending puts rejected with this error (those
   * in flight may or may not have arrived). Causes: the server did not come back within
   * `reconnectWindow` or closed (the client is `disconnected`, and the get after the messages
   * already received rejects with this error), the server restarted and lost the session (the
   * client is already in a new one: only what was in flight rejected), or another client took
   * this identity over (state `failed`).
   */
  "session-lost": PlexusError;
}


/**
 * A queue client. Create with `queue.client<ToServer, ToClient>({ url })`: it puts `ToServer`
 * values and gets `ToClient` ones (the same type arguments as the server's).
 */
export class QueueClient<ToServer = unknown, ToClient = unknown> extends Endpoint<ToClient, ToServer> {
  /** This client's identity (32 hex digits): the server's `msg.peer` for its messages. */
  readonly id: string;
  private session: Session;
  /** True once the current session was attached to a connection (a WELCOME came). */
  private sessionStarted = false;
  /** True once any connection was made: later ones are reconnections. */
  private everConnected = false;
  private link: Link | undefined;
  private hub: MqttHub | undefined;
  /** gRPC: opens each connection (a channel and its stream). */
  private grpc: GrpcDialer | undefined;
  private state$ = State.Reconnecting;
  private readonly where: string;
  private readonly tlsOpts: ConnectionOptions | undefined;
  private reconnecting: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly closedPromise = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  private readonly listeners = new Listeners<QueueClientEvents>("a queue client", ["disconnect", "reconnect", "session-lost"]);
  private abortDial: (() => void) | undefined;
  /** MQTT: the link of the handshake in progress. */
  private dialing: MqttLink | undefined;
  /**
   * This client's session token, sent in every HELLO: the server resumes the session of this
   * identity only for the same token (this object reconnecting). A new client object with the
   * same identity (a restarted process) has another one, and takes the identity over; this
   * object draws a new one when its session was lost, so a server that still holds the old
   * session cannot resume it.
   */
  private token = randomBytes(TOKEN_BYTES);
  /** Set when the server says another client took this identity over: no reconnection. */
  private takenOver: PeerDeadError | undefined;

  private constructor(
    cfg: Settings,
    private readonly identity: Buffer,
    private readonly connectTimeout: number,
  ) {
    super(cfg);
    this.id = identity.toString("hex");
    this.session = this.newSession();
    const { host, port } = cfg.url;
    this.where = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    if (cfg.useTls) {
      const t = { ...(cfg.tls ?? {}) } as ConnectionOptions;
      if (cfg.tls?.servername === undefined) {
        if (!/^[\d.]+$|:/.test(host)) t.servername = host;
        else delete t.servername;
      }
      this.tlsOpts = t;
    }
  }

  /** @internal use `queue.client` */
  static async connect<ToServer = unknown, ToClient = unknown>(opts: QueueClientOptions): Promise<QueueClient<ToServer, ToClient>> {
    const cfg = settings(opts, false);
    throwIfAborted(opts.signal, "connect");
    refusePlainTcp(cfg.url.host, cfg.useTls, cfg.allowInsecure, "connect");
    const c = new QueueClient<ToServer, ToClient>(cfg, identityOf(opts.identity), checkTimeout(opts.connectTimeout, 5000));
    try {
      if (cfg.url.scheme === "mqtt" || cfg.url.scheme === "mqtts") {
        const hub = await MqttHub.connect(cfg.url, cfg.tls, c.identity, `c/${c.id}`, c.connectTimeout, c.token);
        hub.onUnknown = (_peer, _token, frame) => c.mqttLink()?.receive(frame);
        hub.onReconnect = () => {
          if (c.state$ === State.Connected) c.link?.fail(new PeerDeadError("the connection to the MQTT broker was lost"));
        };
        c.hub = hub;
      }
      if (cfg.url.scheme === "grpc" || cfg.url.scheme === "grpcs") c.grpc = await GrpcDialer.create(cfg.url, cfg.useTls, cfg.tls, cfg.maxMessage);
      await c.dial(opts.signal);
    } catch (err) {
      c.state$ = State.Closed;
      c.stopTicker();
      await c.hub?.close();
      throw err;
    }
    return c;
  }

  private mqttLink(): MqttLink | undefined {
    return this.dialing ?? (this.link instanceof MqttLink ? this.link : undefined);
  }

  /** The server's id (as `msg.peer` of the messages it puts). */
  get server(): string {
    return this.session.id;
  }

  /** True while connected (not reconnecting). */
  get connected(): boolean {
    return this.state$ === State.Connected;
  }

  /** Where this client stands: see {@link QueueClientState}. */
  get state(): QueueClientState {
    if (this.closing || this.state$ === State.Closed) return "closed";
    switch (this.state$) {
      case State.Connected:
        return "connected";
      case State.Reconnecting:
        return "reconnecting";
      case State.Failed:
        return "failed";
      default:
        return "disconnected";
    }
  }

  /**
   * Resolves once `close()` finished. Only an explicit close resolves it: a lost session leaves
   * the client usable (its next call connects again), and a client whose identity was taken
   * over stays `failed` until it is closed.
   */
  closed(): Promise<void> {
    return this.closedPromise;
  }

  /**
   * Calls `listener` on each `event` (see {@link QueueClientEvents}), from the client's own
   * socket and timer callbacks: a throw in it is contained. Rejects unknown event names with
   * `InvalidArgumentError`.
   */
  on<E extends keyof QueueClientEvents>(event: E, listener: (arg: QueueClientEvents[E]) => void): this {
    this.listeners.on(event, listener);
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off<E extends keyof QueueClientEvents>(event: E, listener: (arg: QueueClientEvents[E]) => void): this {
    this.listeners.off(event, listener);
    return this;
  }

  private emit<E extends keyof QueueClientEvents>(event: E, arg: QueueClientEvents[E]): void {
    this.listeners.emit(event, arg);
  }

  /**
   * Puts `value` to the server (encoded once). Resolves when the server acknowledged it: it
   * queued it (`fast`) or its application released it (`reliable`). A `disconnected` client
   * connects again first (a new session). Rejects with `TimeoutError`, `AbortError`,
   * `PeerDeadError` (the server left and did not come back within `reconnectWindow`, or it lost
   * the session while the message was in flight; another client took this identity over),
   * `FrameTooLargeError`, `BackpressureError`, `EncodeError`, `ProtocolError` (the server could
   * not decode it), `ClosedError`.
   */
  put(value: ToServer, opts: BlockingOptions = {}): Promise<void> {
    if (this.state$ === State.Closed || this.closing) return Promise.reject(new ClosedError("queue client is closed"));
    if (this.state$ === State.Failed) return Promise.reject(this.session.dead ?? new PeerDeadError("queue server is gone"));
    this.wake();
    return this.startPut(value, [this.session], opts);
  }

  protected override beforeGet(): void {
    this.wake();
  }

  /** A call on a client without a connection: connect again (a new session if the last was lost). */
  private wake(): void {
    if (this.closing) return;
    if (this.state$ === State.Disconnected) this.renew();
    if (this.state$ === State.Idle || this.state$ === State.Disconnected) this.reconnect();
  }

  /**
   * A new session after the last one was lost: fresh serials, and a fresh token, so that a
   * server that still holds the old session (a longer `reconnectWindow` than this client's)
   * does not resume it and take the new session's messages for duplicates of the old one's.
   */
  private renew(): void {
    const old = this.session;
    this.session = this.newSession();
    (this.session as { id: string }).id = old.id; // the server's id, until the next WELCOME
    this.sessionStarted = false;
    this.token = randomBytes(TOKEN_BYTES);
    if (this.hub !== undefined) this.hub.token = this.token;
  }

  private newSession(): Session {
    return new Session(Buffer.alloc(16), this, { slots: this.cfg.slots, maxPending: this.cfg.maxPending });
  }

  /**
   * Waits until every pending put settled, tells the server BYE (it drops this client's
   * session), waits for it to hang up, and ends the queue — all in at most `linger` ms (the
   * option, or `opts.linger`; at least 100 ms for the BYE when connected). Puts still pending
   * then reject with `ClosedError`, with a process warning (`PLEXUS_LINGER`). Idempotent; a later
   * call with a shorter `linger` shortens the wait.
   */
  close(opts?: CloseOptions): Promise<void> {
    return this.closeOnce(opts, (linger) => this.shutdown(linger).finally(() => this.resolveClosed()));
  }

  private async shutdown(linger: number): Promise<void> {
    this.closing = true;
    const started = performance.now();
    await this.flushPuts(linger, new ClosedError("queue client closed before the put was acknowledged"), `the queue client of ${this.where}`);
    this.abortDial?.();
    this.inbox.end(new ClosedError("queue client is closed"));
    const l = this.link;
    this.state$ = State.Closed;
    if (l !== undefined && !l.closed) {
      const gone = l.whenClosed();
      l.write([encodeBye()]);
      l.end();
      await this.awaitHangUp(gone, Math.max(100, linger - (performance.now() - started)));
      l.destroy();
    }
    this.session.kill(new ClosedError("queue client is closed"));
    this.stopTicker();
    await this.hub?.close();
  }

  protected links(): Iterable<Link> {
    return this.link !== undefined && this.state$ === State.Connected ? [this.link] : [];
  }

  /** @internal */
  bye(s: Session, flags: number): void {
    if (s !== this.session) return; // a frame of a session already given up
    const l = this.link;
    this.link = undefined;
    this.session.link = undefined;
    l?.end();
    if ((flags & FLAG_TAKEN_OVER) !== 0) {
      this.fail(new PeerDeadError(`another client connected with this client's identity (${this.id}) and took its session over`));
      return;
    }
    if (this.closing) {
      this.fail(new PeerDeadError("the queue server closed"));
      return;
    }
    if ((flags & FLAG_IDLE) !== 0) {
      // Collected while idle: start a new session on the next call (or now, if something waits).
      // The server ignores DATA that arrives after it ended the session, so what was in flight
      // was not delivered: it goes out again, first, in the new session.
      this.session.requeue();
      this.sessionStarted = false; // the server starts a new one: not a loss
      this.state$ = State.Idle;
      this.emit("disconnect", new PeerDeadError("the queue server ended this client's session after it was idle"));
      if (this.session.outstanding > 0 || this.inbox.waiting > 0) this.reconnect();
      return;
    }
    this.lose(new PeerDeadError("the queue server closed"));
  }

  /**
   * The end of this client but for `close()`: another client took its identity over (or the
   * server went away while it was closing). Every call rejects with `err` from now on.
   */
  private fail(err: PlexusError): void {
    if (this.state$ === State.Closed || this.state$ === State.Failed) return;
    this.state$ = State.Failed;
    this.session.kill(err);
    this.inbox.end(err);
    this.link?.destroy();
    if (!this.closing) this.emit("session-lost", err);
  }

  /**
   * The session is over without a close (the server did not come back within the window, or
   * closed): every pending put rejects with `err`, the stream of received messages breaks after
   * what arrived (the get that reaches the break rejects with `err`), and the client is
   * disconnected until its next call starts a new session.
   */
  private lose(err: PlexusError): void {
    if (this.state$ === State.Closed || this.state$ === State.Failed) return;
    this.state$ = State.Disconnected;
    const l = this.link;
    this.link = undefined;
    this.session.link = undefined;
    this.session.kill(err);
    this.inbox.forget(this.session);
    this.inbox.interrupt(err);
    l?.destroy();
    this.emit("session-lost", err);
  }

  /** One connection attempt with handshake; attaches the session on success. */
  private dial(signal?: AbortSignal): Promise<void> {
    {
      let socketError: NodeJS.ErrnoException | undefined;
      let link: Link;
      if (this.hub !== undefined) {
        link = this.dialing = this.hub.link("server", "s", this.cfg.maxMessage, this.token, this.liveness());
      } else if (this.grpc !== undefined) {
        link = this.grpc.open(this.liveness());
      } else {
        const { host, port } = this.cfg.url;
        const opts = { host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: this.cfg.peerTimeout };
        const open = (socket: Socket): Socket => {
          socket.setNoDelay(true);
          socket.on("error", (err: NodeJS.ErrnoException) => (socketError ??= err));
          return socket;
        };
        // Plain TCP reads with `onread`: large payloads straight into their buffers.
        const socketLink = this.tlsOpts
          ? new SocketLink(open(tlsConnect({ ...this.tlsOpts, ...opts })), this.cfg.maxMessage, this.liveness())
          : new SocketLink((onread) => open(netConnect({ ...opts, onread })), this.cfg.maxMessage, this.liveness());
        socketLink.expectWelcome(QUEUE_SPEC, this.where); // an answer that is no queue server's: "… is not a Plexus queue server"
        link = socketLink;
      }
      const handshake = new Deferred<void>(
        { timeout: this.connectTimeout, signal, what: "connect", timeoutError: () => new TimeoutError(`no queue handshake with ${this.where} within ${this.connectTimeout} ms`) },
        undefined,
        (d) => {
          this.abortDial = undefined;
          this.dialing = undefined;
          if (d.rejected) link.destroy();
        },
      );
      if (handshake.settled) return handshake.promise;
      const finish = (err?: PlexusError): void => void (err !== undefined ? handshake.reject(err) : handshake.resolve());
      this.abortDial = () => finish(new ClosedError("queue client closed while connecting"));
      // Sockets buffer writes until connected (and TLS until secure): HELLO goes out first.
      link.write([
        encodeHello(QUEUE_SPEC, this.cfg.heartbeat, encodeBody({ resumed: false, slots: this.cfg.slots, maxMessage: this.cfg.maxMessage, identity: this.identity, session: this.token })),
      ]);
      let welcomed = false;
      link.bind({
        frame: (h: Header, payload: Buffer) => {
          if (welcomed) {
            // Over MQTT, a WELCOME after ours answers another HELLO on this identity's topic: ignored.
            if (h.type === QFrame.Welcome && this.hub !== undefined) return;
            this.session.onFrame(h, payload);
            return;
          }
          if (h.type !== QFrame.Welcome) {
            // Over MQTT, frames of the previous link may still be on their way: what matters is resent after WELCOME.
            if (this.hub !== undefined) return;
            throw new ProtocolError(`expected WELCOME, got frame type ${h.type}`);
          }
          const where = `the queue server at ${this.where}`;
          const pre = readWelcome(QUEUE_SPEC, h, payload, where);
          // Every WELCOME, refusals too, carries the queue's body with the HELLO's session token.
          const w = decodeBody(pre.body);
          if (!w.session.equals(this.token)) {
            // Over MQTT: the answer to another client's HELLO with this identity (the topic is shared).
            if (this.hub !== undefined) return;
            throw new ProtocolError("the queue server's WELCOME names another session than this client's HELLO");
          }
          if (pre.status === HandshakeStatus.Superseded) {
            throw (this.takenOver = new PeerDeadError(`another client connected with this client's identity (${this.id}) and took its session over`));
          }
          if (pre.status !== HandshakeStatus.Ok) throw refusal(QUEUE_SPEC, pre, where, { textReason: false });
          if (pre.heartbeat < 1) throw new ProtocolError(`${where} announces a heartbeat of 0 ms`);
          welcomed = true;
          const id = w.identity.toString("hex");
          const started = this.sessionStarted;
          const resumed = w.resumed && started && id === this.session.id;
          const lost = started && !resumed ? new PeerDeadError("the queue server lost this client's session (it restarted?)") : undefined;
          if (lost !== undefined) this.session.restart(lost);
          (this.session as { id: string }).id = id;
          this.session.peerSlots = w.slots;
          this.session.peerMaxMessage = w.maxMessage;
          link.liveness.setPeerHeartbeat(pre.heartbeat);
          this.link = link;
          this.state$ = State.Connected;
          this.sessionStarted = true;
          this.session.attach(link, resumed);
          finish();
          if (lost !== undefined) this.emit("session-lost", lost);
          if (this.everConnected) this.emit("reconnect", { resumed });
          this.everConnected = true;
        },
        gone: (err) => {
          if (!welcomed) {
            const e = err ?? socketError;
            finish(
              e instanceof PlexusError ? e : e !== undefined ? connectError(e, `the queue server at ${this.where}`) : new PeerDeadError(`the queue server at ${this.where} hung up during the handshake`),
            );
            return;
          }
          if (this.link === link) this.lost(err instanceof PlexusError ? err : new PeerDeadError(`lost the connection to the queue server at ${this.where}${err ? `: ${err.message}` : ""}`, { cause: err }));
        },
      });
      return handshake.promise;
    }
  }

  /** The connection dropped without BYE (`err`: why): reconnect within `reconnectWindow`. */
  private lost(err: PlexusError): void {
    this.session.link = undefined;
    this.link = undefined;
    if (this.closing) {
      if (this.state$ !== State.Closed) this.fail(new PeerDeadError("the queue server went away while closing"));
      return;
    }
    if (this.state$ !== State.Connected) return;
    this.reconnect();
    this.emit("disconnect", err);
  }

  private reconnect(): void {
    this.state$ = State.Reconnecting;
    this.reconnecting ??= this.retry().finally(() => (this.reconnecting = undefined));
  }

  /**
   * Dials until a connection is up, for up to `reconnectWindow`; then the session is lost.
   * A refusal that another attempt would not change (TLS, not a queue server) ends it at once.
   */
  private async retry(): Promise<void> {
    const end = performance.now() + this.cfg.reconnectWindow;
    let pause = 20;
    let last: PlexusError = new PeerDeadError(`lost the queue server at ${this.where}`);
    let refused = false;
    while (!this.closing && (this.state$ as State) === State.Reconnecting) {
      try {
        await this.dial();
        return;
      } catch (err) {
        if (this.takenOver !== undefined) {
          this.fail(this.takenOver);
          return;
        }
        last = err instanceof PlexusError ? err : new PeerDeadError(String(err));
        if (err instanceof AccessDeniedError || err instanceof ProtocolError || err instanceof ClosedError) {
          refused = true;
          break;
        }
      }
      const left = end - performance.now();
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
      pause = Math.min(pause * 2, 500);
    }
    if (!this.closing && this.state$ === State.Reconnecting) {
      const why = refused ? "refused the reconnection" : `did not come back within ${this.cfg.reconnectWindow} ms`;
      this.lose(new PeerDeadError(`the queue server at ${this.where} ${why}: ${last.message}`, { cause: last }));
    }
  }
}

function encodeBye(): Buffer {
  return header(0, QFrame.Bye, 0, 0);
}
