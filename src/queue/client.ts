/**
 * The queue client: one session with the server, over a connection it re-establishes (same
 * identity and session token, so the server keeps its session) when it drops, for up to
 * `reconnectWindow`. Another client object with the same identity has another token: it
 * starts a new session, and this one ends.
 * @module
 */
import { randomBytes } from "node:crypto";
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
import { identityOf, settings, type QueueClientOptions, type Settings } from "./options.js";
import { Session } from "./session.js";
import { decodeBody, encodeBody, header, FLAG_IDLE, FLAG_TAKEN_OVER, HandshakeStatus, type Header, QFrame, QUEUE_SPEC, TOKEN_BYTES } from "./wire.js";
import { encodeHello, readWelcome, refusal } from "../net/handshake.js";
import { connectError } from "../net/dial.js";
import { Deferred } from "../util/wait.js";

const enum State {
  Connected,
  Reconnecting,
  /** The server collected the idle session; reconnect on the next call. */
  Idle,
  Failed,
  Closed,
}

/**
 * A queue client. Create with `queue.client<ToServer, ToClient>({ url })`: it puts `ToServer`
 * values and gets `ToClient` ones (the same type arguments as the server's).
 */
export class QueueClient<ToServer = unknown, ToClient = unknown> extends Endpoint<ToClient, ToServer> {
  /** This client's identity (32 hex digits): the server's `msg.peer` for its messages. */
  readonly id: string;
  private readonly session: Session;
  private link: Link | undefined;
  private hub: MqttHub | undefined;
  private state = State.Reconnecting;
  private readonly where: string;
  private readonly tlsOpts: ConnectionOptions | undefined;
  private reconnecting: Promise<void> | undefined;
  private closed: Promise<void> | undefined;
  private abortDial: (() => void) | undefined;
  /** MQTT: the link of the handshake in progress. */
  private dialing: MqttLink | undefined;
  /**
   * This client object's session token, sent in every HELLO: the server resumes the session
   * of this identity only for the same token (this object reconnecting). A new client object
   * with the same identity (a restarted process) has another one, and takes the identity over.
   */
  private readonly token = randomBytes(TOKEN_BYTES);
  /** Set when the server says another client took this identity over: no reconnection. */
  private takenOver: PeerDeadError | undefined;

  private constructor(
    cfg: Settings,
    private readonly identity: Buffer,
    private readonly connectTimeout: number,
  ) {
    super(cfg);
    this.id = identity.toString("hex");
    this.session = new Session(Buffer.alloc(16), this, { slots: cfg.slots, maxPending: cfg.maxPending });
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
          if (c.state === State.Connected) c.link?.fail(new PeerDeadError("the connection to the MQTT broker was lost"));
        };
        c.hub = hub;
      }
      await c.dial(opts.signal);
    } catch (err) {
      c.state = State.Closed;
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
    return this.state === State.Connected;
  }

  /**
   * Puts `value` to the server (encoded once). Resolves when the server acknowledged it: it
   * queued it (`fast`) or its application released it (`reliable`). Rejects with
   * `TimeoutError`, `AbortError`, `PeerDeadError` (the server left and did not come back
   * within `reconnectWindow`), `FrameTooLargeError`, `BackpressureError`, `EncodeError`,
   * `ProtocolError` (the server could not decode it), `ClosedError`.
   */
  put(value: ToServer, opts: BlockingOptions = {}): Promise<void> {
    if (this.state === State.Closed || this.closing) return Promise.reject(new ClosedError("queue client is closed"));
    if (this.state === State.Failed) return Promise.reject(this.session.dead ?? new PeerDeadError("queue server is gone"));
    if (this.state === State.Idle) this.reconnect();
    return this.startPut(value, [this.session], opts);
  }

  protected override beforeGet(): void {
    if (this.state === State.Idle) this.reconnect();
  }

  /**
   * Waits (at most `linger` ms) until every pending put settled, tells the server BYE (it
   * drops this client's session), waits for it to hang up, and ends the queue. Idempotent.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    const started = performance.now();
    await this.flushPuts(this.cfg.linger, new ClosedError("queue client closed before the put was acknowledged"));
    this.abortDial?.();
    this.inbox.end(new ClosedError("queue client is closed"));
    const l = this.link;
    this.state = State.Closed;
    if (l !== undefined && !l.closed) {
      const gone = l.whenClosed();
      l.write([encodeBye()]);
      l.end();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const rest = Math.max(100, this.cfg.linger - (performance.now() - started));
      await Promise.race([gone, new Promise<void>((r) => (timer = setTimeout(r, rest)))]);
      clearTimeout(timer);
      l.destroy();
    }
    this.session.kill(new ClosedError("queue client is closed"));
    this.stopTicker();
    await this.hub?.close();
  }

  protected links(): Iterable<Link> {
    return this.link !== undefined && this.state === State.Connected ? [this.link] : [];
  }

  /** @internal */
  bye(_s: Session, flags: number): void {
    const l = this.link;
    this.link = undefined;
    this.session.link = undefined;
    l?.end();
    if ((flags & FLAG_TAKEN_OVER) !== 0) {
      this.fail(new PeerDeadError(`another client connected with this client's identity (${this.id}) and took its session over`));
      return;
    }
    if ((flags & FLAG_IDLE) !== 0 && !this.closing) {
      // Collected while idle: start a new session on the next call (or now, if something waits).
      // The server ignores DATA that arrives after it ended the session, so what was in flight
      // was not delivered: it goes out again, first, in the new session.
      this.session.requeue();
      this.state = State.Idle;
      if (this.session.outstanding > 0 || this.inbox.waiting > 0) this.reconnect();
      return;
    }
    this.fail(new PeerDeadError("the queue server closed"));
  }

  private fail(err: PlexusError): void {
    if (this.state === State.Closed || this.state === State.Failed) return;
    this.state = State.Failed;
    this.session.kill(err);
    this.inbox.end(err);
    this.link?.destroy();
  }

  /** One connection attempt with handshake; attaches the session on success. */
  private dial(signal?: AbortSignal): Promise<void> {
    {
      let socketError: NodeJS.ErrnoException | undefined;
      let link: Link;
      if (this.hub !== undefined) {
        link = this.dialing = this.hub.link("server", "s", this.cfg.maxMessage, this.token, this.liveness());
      } else {
        const { host, port } = this.cfg.url;
        const opts = { host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: this.cfg.peerTimeout };
        const open = (socket: Socket): Socket => {
          socket.setNoDelay(true);
          socket.on("error", (err: NodeJS.ErrnoException) => (socketError ??= err));
          return socket;
        };
        // Plain TCP reads with `onread`: large payloads straight into their buffers.
        link = this.tlsOpts
          ? new SocketLink(open(tlsConnect({ ...this.tlsOpts, ...opts })), this.cfg.maxMessage, this.liveness())
          : new SocketLink((onread) => open(netConnect({ ...opts, onread })), this.cfg.maxMessage, this.liveness());
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
          const first = this.session.id === "00000000000000000000000000000000";
          const resumed = w.resumed && (first || id === this.session.id);
          if (!first && !resumed) this.session.restart(new PeerDeadError("the queue server lost this client's session (it restarted?)"));
          (this.session as { id: string }).id = id;
          this.session.peerSlots = w.slots;
          this.session.peerMaxMessage = w.maxMessage;
          link.liveness.setPeerHeartbeat(pre.heartbeat);
          this.link = link;
          this.state = State.Connected;
          this.session.attach(link, resumed);
          finish();
        },
        gone: (err) => {
          if (!welcomed) {
            const e = err ?? socketError;
            finish(
              e instanceof PlexusError ? e : e !== undefined ? connectError(e, `the queue server at ${this.where}`) : new PeerDeadError(`the queue server at ${this.where} hung up during the handshake`),
            );
            return;
          }
          if (this.link === link) this.lost();
        },
      });
      return handshake.promise;
    }
  }

  /** The connection dropped without BYE: reconnect within `reconnectWindow`. */
  private lost(): void {
    this.session.link = undefined;
    this.link = undefined;
    if (this.state !== State.Connected || this.closing) {
      if (this.closing && this.state !== State.Closed) this.fail(new PeerDeadError("the queue server went away while closing"));
      return;
    }
    this.reconnect();
  }

  private reconnect(): void {
    this.state = State.Reconnecting;
    this.reconnecting ??= this.retry().finally(() => (this.reconnecting = undefined));
  }

  private async retry(): Promise<void> {
    const end = performance.now() + this.cfg.reconnectWindow;
    let pause = 20;
    let last: PlexusError = new PeerDeadError(`lost the queue server at ${this.where}`);
    while (!this.closing && (this.state as State) === State.Reconnecting) {
      try {
        await this.dial();
        return;
      } catch (err) {
        if (this.takenOver !== undefined) {
          this.fail(this.takenOver);
          return;
        }
        last = err instanceof PlexusError ? err : new PeerDeadError(String(err));
        if (err instanceof AccessDeniedError || err instanceof ProtocolError || err instanceof ClosedError) break;
      }
      const left = end - performance.now();
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
      pause = Math.min(pause * 2, 500);
    }
    if (!this.closing && this.state === State.Reconnecting) {
      this.fail(new PeerDeadError(`the queue server at ${this.where} did not come back within ${this.cfg.reconnectWindow} ms: ${last.message}`, { cause: last }));
    }
  }
}

function encodeBye(): Buffer {
  return header(0, QFrame.Bye, 0, 0);
}
