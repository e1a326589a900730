/**
 * The listening side of the `tcp` sender: binding (plain TCP only on loopback unless allowed),
 * accepting connections, the handshake deadline, the answer to a HELLO (WELCOME, or a refusal:
 * another protocol, version, malformed, `maxReceivers` reached; a version-1 HELLO gets a
 * version-1 refusal), the connections it holds, their heartbeat tick (one `Ticker`), and how
 * they all end (taken everything after close, cut off after `linger`, or at once).
 * (Internal: not part of the public API.)
 * @module
 */
import type { AddressInfo, Server, Socket } from "node:net";
import { ProtocolError } from "../errors.js";
import { listenTcp } from "../net/listen.js";
import { refusePlainTcp } from "../net/loopback.js";
import type { Outbox } from "./tcp-outbox.js";
import { Peer, PeerState, type PeerHost, type SenderConfig } from "./tcp-peer.js";
import type { TcpAddress, TcpTlsOptions } from "./tcp-receiver.js";
import { encodeRefusal, encodeWelcome, readHello, Status } from "../net/handshake.js";
import { Ticker } from "../net/liveness.js";
import { Linger } from "../util/linger.js";
import { decodeHelloBody, encodeWelcomeBody, TCP_SPEC, TCP_VERSION, version1Refusal, type HelloBody } from "./tcp-wire.js";

/**
 * Listens for receivers on `host`:`port`. Rejects with `AccessDeniedError` for a non-loopback
 * `host` without `tls` or `allowInsecure`, `InvalidArgumentError` for unusable TLS material,
 * `SystemError` if the address cannot be bound (e.g. `EADDRINUSE`).
 */
export async function listenForReceivers(
  host: string,
  port: number,
  tls: TcpTlsOptions | undefined,
  allowInsecure: boolean,
  cfg: SenderConfig,
): Promise<{ server: Server; address: TcpAddress }> {
  refusePlainTcp(host, tls !== undefined, allowInsecure, "serve");
  const server = await listenTcp({ host, port, tls, keepAliveMs: cfg.peerTimeout, handshakeTimeout: cfg.handshakeTimeout, maxConnections: cfg.maxReceivers + 64 });
  server.unref(); // an idle listener does not keep the process alive; connections do
  const bound = server.address() as AddressInfo;
  return { server, address: { kind: "tcp", host, port: bound.port, tls: tls !== undefined } };
}

/** Accepts receivers, answers their handshakes and holds their connections. */
export class TcpListener implements PeerHost {
  /** Connections receiving messages, in the order they joined (changed in place only). */
  readonly active: Peer[] = [];
  /** Every connection, from accept to close. */
  private readonly peers = new Set<Peer>();
  /** No more connections: the sender closed. */
  private stopped = false;
  /** The heartbeat tick of every connection (one timer, running while there are connections). */
  private readonly ticker: Ticker<Peer>;
  /** After close: the wait for every connection to finish, at most the linger. */
  private linger: Linger | undefined;
  /** Told what was dropped when connections are cut off after close. */
  onCutOff: (receivers: number, bytes: number, lingerMs: number) => void = () => {};

  /**
   * @param server - listening (from {@link listenForReceivers})
   * @param tls - whether it serves TLS
   * @param cfg - the sender's settings
   * @param out - the writing side the connections share
   * @param nextSequence - the sequence number the sender's next message will carry
   * @param roomChanged - room may have come back: the sender's waiting sends re-check
   */
  constructor(
    private readonly server: Server,
    tls: boolean,
    private readonly cfg: SenderConfig,
    private readonly out: Outbox,
    readonly nextSequence: () => number,
    readonly roomChanged: () => void,
  ) {
    this.ticker = new Ticker<Peer>(cfg.heartbeat);
    server.on(tls ? "secureConnection" : "connection", (s: Socket) => this.accept(s));
    server.on("tlsClientError", () => {}); // the TLS layer already dropped that connection
    server.on("error", () => {}); // accept errors (EMFILE): the connection is lost, the sender serves on
  }

  private accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const p = new Peer(socket, this.cfg, this, this.out);
    this.peers.add(p);
    this.ticker.add(p);
    socket.on("data", (chunk: Buffer) => p.onData(chunk));
    socket.on("error", () => {}); // "close" follows
    socket.on("close", () => this.closed(p));
    p.handshakeTimer = setTimeout(() => p.drop(new ProtocolError(`no handshake within ${this.cfg.handshakeTimeout} ms`)), this.cfg.handshakeTimeout);
    p.handshakeTimer.unref();
  }

  /**
   * Answers a HELLO (its payload): WELCOME (the receiver is active from its next message on), or
   * a refusal — another protocol, no common version, a malformed preamble or body, or
   * `maxReceivers` reached.
   */
  hello(p: Peer, payload: Buffer): void {
    clearTimeout(p.handshakeTimer);
    const verdict = readHello(TCP_SPEC, payload);
    if (!verdict.ok) {
      this.refuse(p, verdict.status, verdict.reason);
      return;
    }
    const { hello } = verdict;
    if (hello.heartbeat === 0) {
      this.refuse(p, Status.Malformed, "a HELLO with a heartbeat of 0 ms");
      return;
    }
    let body: HelloBody;
    try {
      body = decodeHelloBody(hello.body);
    } catch (err) {
      this.refuse(p, Status.Malformed, (err as Error).message);
      return;
    }
    if (this.active.length >= this.cfg.maxReceivers) {
      this.refuse(p, Status.Full, `maxReceivers (${this.cfg.maxReceivers}) reached`);
      return;
    }
    p.activate(body.policy, hello.heartbeat);
    this.active.push(p);
    const welcome = encodeWelcomeBody({ capacity: this.cfg.capacity, maxMessage: this.cfg.maxMessage, startSeq: this.nextSequence() });
    p.write(encodeWelcome(TCP_SPEC, hello, this.cfg.heartbeat, welcome));
  }

  /** A version-1 HELLO: answered with the version-1 WELCOME that refuses it (a version mismatch there), then hung up on. */
  version1Hello(p: Peer, version: number): void {
    clearTimeout(p.handshakeTimer);
    p.refuse(version1Refusal(), this.cfg.handshakeTimeout);
    this.cfg.onPeerError?.(new ProtocolError(`a receiver speaks tcp protocol version ${version}; this sender speaks ${TCP_VERSION}`));
  }

  /**
   * Answers a HELLO with a refusal (`status`, `reason`), then hangs up. Every refusal but
   * `Full` (the receiver did nothing wrong) is reported to `onPeerError`.
   */
  private refuse(p: Peer, status: number, reason: string): void {
    p.refuse(encodeRefusal(TCP_SPEC, status, reason), this.cfg.handshakeTimeout);
    if (status !== Status.Full) this.cfg.onPeerError?.(new ProtocolError(`a receiver's HELLO was refused: ${reason}`));
  }

  /** A connection's socket closed: it is gone for good. */
  closed(p: Peer): void {
    p.drop();
    this.peers.delete(p);
    this.ticker.delete(p);
    if (this.stopped && this.peers.size === 0) this.finish();
  }

  /** Stops listening; connections accepted from now on are closed at once. */
  stop(): void {
    this.stopped = true;
    this.server.close();
  }

  /**
   * Lets every receiver take what was sent to it, then the end (see {@link Peer.drain}); those
   * that have not finished after `linger` ms are cut off ({@link onCutOff} says what they had not
   * acknowledged). Resolves once every connection is gone.
   */
  drain(ms: number): Promise<void> {
    for (const p of [...this.peers]) p.drain();
    const linger = (this.linger = new Linger(ms));
    if (this.peers.size === 0) this.finish();
    return linger.ended.then(() => {
      if (linger.expired) this.cutOff(linger.ms);
    });
  }

  /** Cuts off the connections still open after close `ms` from now, if that is sooner than the linger said. */
  cutAfter(ms: number): void {
    this.linger?.shorten(ms);
  }

  /** The linger passed: the receivers still connected are cut off, and what they had not acknowledged is reported. */
  private cutOff(ms: number): void {
    const peers = [...this.peers].filter((p) => p.state !== PeerState.Gone);
    let bytes = 0;
    for (const p of peers) bytes += p.unacknowledged;
    this.dropAll();
    if (peers.length > 0) this.onCutOff(peers.length, bytes, ms);
  }

  /** Hands what was written to the kernel (best effort), then drops every connection. */
  destroy(): void {
    this.out.flush();
    this.dropAll();
  }

  private dropAll(): void {
    for (const p of [...this.peers]) p.drop();
    this.finish();
  }

  private finish(): void {
    this.ticker.stop();
    this.linger?.end();
  }
}
