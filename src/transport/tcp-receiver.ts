/**
 * The receiving end of the `tcp` transport. Bytes from the socket land in an "arena" (a large
 * buffer filled front to back); complete frames are handed out as views into it, 16-byte
 * aligned, with no further copy (plain TCP reads straight into the arena with `onread`; TLS
 * copies each decrypted chunk in once). Releasing a frame gives credit back to the sender.
 * (Internal: not part of the public API.)
 * @module
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { ClosedError, FrameTooLargeError, InvalidArgumentError, PeerDeadError, ProtocolError, SequenceError, TimeoutError } from "../errors.js";
import { checkOptions, checkTimeout, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { releasingIterator } from "../util/iterate.js";
import { receiverSettings, type Frame, type Receiver, type ReceiverOptions } from "./transport.js";
import { readOptions } from "../util/options.js";
import {
  decodeWelcomeBody,
  encodeHelloBody,
  FrameType,
  frameBytes,
  isVersion1Block,
  TCP_SPEC,
  TCP_VERSION,
  WIRE_POLICY,
} from "./tcp-wire.js";
import { refusePlainTcp } from "../net/loopback.js";
import { connectError } from "../net/dial.js";
import {
  checkNetHeader,
  FIRST_NET_TYPE,
  FRAME_HEADER as HEADER_BYTES,
  frameHeader,
  get32,
  NetType,
  PING_FRAME,
  readFrameHeader,
  readU64,
  typeWord,
  writeFrameHeader64,
  type FrameHeader,
} from "../net/frame.js";
import { encodeHello, foreignAnswer, readWelcome, refusal, Status } from "../net/handshake.js";
import { Liveness, Ticker } from "../net/liveness.js";
import { Deferred, WaitList } from "../util/wait.js";

/** Where a receiver finds a `tcp` sender: plain values, valid on any host that can reach it. */
export interface TcpAddress {
  /** Transport tag. */
  readonly kind: "tcp";
  /** Host name or IP address of the sender. */
  readonly host: string;
  /** TCP port of the sender. */
  readonly port: number;
  /** True if the sender speaks TLS. */
  readonly tls: boolean;
}

/**
 * TLS settings (Node's `tls.SecureContextOptions`: `key`, `cert`, `ca`, `pfx`, `passphrase`, ...)
 * plus who must prove what. A sender needs `key` and `cert`; a receiver needs `ca` when the
 * sender's certificate is not signed by a public authority.
 */
export interface TcpTlsOptions {
  /** Private key(s) in PEM. */
  key?: string | Buffer | (string | Buffer)[];
  /** Certificate chain(s) in PEM. */
  cert?: string | Buffer | (string | Buffer)[];
  /** Trusted certificate authorities in PEM (default: Node's bundled list). */
  ca?: string | Buffer | (string | Buffer)[];
  /** PKCS#12 bundle instead of key + cert. */
  pfx?: string | Buffer | (string | Buffer)[];
  /** Passphrase of the key or the PKCS#12 bundle. */
  passphrase?: string;
  /** Sender: ask receivers for a certificate (mutual TLS). Default false. */
  requestCert?: boolean;
  /** Refuse peers whose certificate does not verify against `ca`. Default true; keep it. */
  rejectUnauthorized?: boolean;
  /** Receiver: the name to verify the sender's certificate against (default: the address's host). */
  servername?: string;
}

/** Options of {@link connectTcp}. */
export interface TcpConnectOptions extends ReceiverOptions {
  /** TLS settings; `true` = TLS with Node's default trust store. Implied when the address says `tls`. */
  tls?: boolean | TcpTlsOptions;
  /**
   * Allow plain (unencrypted) TCP to a host that is not loopback. Without it such a connection is
   * refused with `AccessDeniedError` before any packet is sent.
   */
  allowInsecure?: boolean;
  /** Milliseconds to connect and complete the handshake (default 5000). */
  connectTimeout?: number;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /**
   * Largest message this receiver accepts (default 64 MiB). A sender announcing a larger limit
   * is refused at connect time (`FrameTooLargeError`): no frame can make this receiver allocate
   * more than this.
   */
  maxMessage?: number;
  /** Idle interval after which this receiver writes a heartbeat (ms, default 1000). */
  heartbeat?: number;
  /** The sender counts as dead after this long without a byte from it (ms, default 10000). */
  peerTimeout?: number;
}

/** Default largest message a receiver accepts. */
const DEFAULT_MAX_MESSAGE = 64 << 20;
/** Reads never go into a region smaller than this unless a known frame ends there. */
const MIN_READ = 16 << 10;
/** Largest single read (bounds the copy when a frame does not fit the rest of an arena). */
const MAX_READ = 256 << 10;
/** Arena size before the window is known. */
const FIRST_ARENA = 64 << 10;
/** Retired arenas kept for reuse. */
const MAX_SPARE_ARENAS = 3;
/** Longest wait for the sender to confirm a BYE. */
const BYE_WAIT_MS = 2000;

const BYE = frameHeader(0, FrameType.Bye);

/** A buffer frames are parsed in; recycled once retired and every frame in it released. */
class Arena {
  refs = 0;
  retired = false;
  constructor(readonly buf: Buffer) {}
}

/** A received frame: a view into an arena. */
class TcpFrame implements Frame {
  private released = false;
  constructor(
    readonly bytes: Uint8Array,
    readonly sequence: number,
    private readonly rx: TcpReceiver,
    private readonly arena: Arena,
    private readonly total: number,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.rx.onRelease(this.arena, this.total);
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

const enum Phase {
  Connecting,
  Open,
  Ended,
  Failed,
  Closed,
}

/** Settings of one receiver after validation. */
interface Config {
  host: string;
  port: number;
  policy: number;
  leaky: boolean;
  timeout: number;
  maxMessage: number;
  heartbeat: number;
  peerTimeout: number;
}

/** The receiving end of a `tcp` transport. Create with {@link connectTcp}. */
export class TcpReceiver implements Receiver {
  /** Transport tag. */
  readonly kind = "tcp" as const;
  private phase = Phase.Connecting;
  private socket!: Socket;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  // stream parsing
  private arena = new Arena(Buffer.allocUnsafeSlow(FIRST_ARENA));
  private fill = 0;
  private parse = 0;
  private stdArena = FIRST_ARENA;
  private readonly spare: Arena[] = [];
  private spareBytes = 0;
  private maxSpareBytes = 2 * FIRST_ARENA;
  // frames ready to take
  private queue: (TcpFrame | undefined)[] = [];
  private qHead = 0;
  private readonly waiters = new WaitList<Frame | null>();
  // window and credit
  private capacity = 0;
  private maxMessage = 0;
  private expected = 0;
  private missed = 0;
  private received = 0;
  private releasedBytes = 0;
  private ackedBytes = 0;
  private ackThreshold = 0;
  private urgent = false;
  private ackQueued: ReturnType<typeof setImmediate> | undefined;
  // liveness
  /** This receiver's heartbeat tick (one timer, from the WELCOME to the end of the stream). */
  private readonly ticker: Ticker;
  private readonly ticking = { tick: (): void => this.tick() };
  private readonly liveness: Liveness;
  /** The heartbeat: an ACK if something was released since the last one, else a PING. */
  private readonly beat = (): void => {
    if (this.releasedBytes > this.ackedBytes) this.sendAck();
    else {
      this.liveness.sent();
      this.socket.write(PING_FRAME);
    }
  };
  // handshake
  private handshake: Deferred<void> | undefined;
  private readonly where: string;

  /** @internal use {@link connectTcp} */
  constructor(private readonly cfg: Config) {
    this.where = cfg.host.includes(":") ? `[${cfg.host}]:${cfg.port}` : `${cfg.host}:${cfg.port}`;
    this.liveness = new Liveness(cfg.heartbeat, cfg.heartbeat, cfg.peerTimeout);
    this.ticker = new Ticker(cfg.heartbeat);
  }

  /** @internal Connects and completes the handshake. */
  start(tls: ConnectionOptions | undefined, connectTimeout: number, signal: AbortSignal | undefined): Promise<void> {
    const handshake = new Deferred<void>(
      { timeout: connectTimeout, signal, what: "connect", timeoutError: () => new TimeoutError(`the tcp sender at ${this.where} did not complete the handshake within ${connectTimeout} ms`) },
      undefined,
      (d) => {
        this.handshake = undefined;
        if (d.rejected) this.fail(d.error as Error); // a timeout or an abort: end the attempt
      },
    );
    if (handshake.settled) return handshake.promise;
    this.handshake = handshake;
    {
      const { host, port } = this.cfg;
      const keepAliveInitialDelay = this.cfg.peerTimeout;
      if (tls === undefined) {
        this.socket = netConnect({
          host,
          port,
          noDelay: true,
          keepAlive: true,
          keepAliveInitialDelay,
          onread: { buffer: () => this.readRegion(), callback: (n: number) => (this.onBytes(n), true) },
        });
        this.socket.once("connect", () => this.sayHello());
      } else {
        const sock = tlsConnect({ ...tls, host, port });
        sock.setNoDelay(true);
        sock.setKeepAlive(true, keepAliveInitialDelay);
        sock.once("secureConnect", () => this.sayHello());
        sock.on("data", (chunk: Buffer) => this.onChunk(chunk));
        this.socket = sock;
      }
      this.socket.on("error", (err: NodeJS.ErrnoException) => this.onSocketError(err));
      this.socket.on("close", () => this.onSocketClose());
    }
    return handshake.promise;
  }

  private sayHello(): void {
    if (this.phase !== Phase.Connecting) return;
    this.socket.write(encodeHello(TCP_SPEC, this.cfg.heartbeat, encodeHelloBody({ policy: this.cfg.policy, pid: process.pid })));
  }

  // ---- Receiver ---------------------------------------------------------------------------

  tryReceive(): Frame | null {
    if (this.phase === Phase.Closed) throw new ClosedError("receiver is closed");
    return this.take();
  }

  receive(opts: BlockingOptions = {}): Promise<Frame | null> {
    if (this.phase === Phase.Closed) return Promise.reject(new ClosedError("receiver is closed"));
    let timeout: number;
    try {
      checkOptions(opts, "receive");
      timeout = checkTimeout(opts.timeout, this.cfg.timeout);
    } catch (err) {
      return Promise.reject(err);
    }
    const f = this.take();
    if (f !== null) return Promise.resolve(f);
    if (this.phase === Phase.Ended) return Promise.resolve(null);
    if (this.phase === Phase.Failed) return Promise.reject(this.failure);
    return this.waiters.wait({ timeout, signal: opts.signal, what: "receive" });
  }

  takeMissed(): number {
    const n = this.missed;
    this.missed = 0;
    return n;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Iterates frames; each is released when the loop moves on; `break` closes the receiver. */
  [Symbol.asyncIterator](): AsyncIterator<Frame> {
    return releasingIterator<Frame>(
      () => this.receive(),
      () => this.close(),
    );
  }

  // ---- frames and waiters -----------------------------------------------------------------

  private take(): TcpFrame | null {
    if (this.qHead === this.queue.length) return null;
    const f = this.queue[this.qHead] as TcpFrame;
    this.queue[this.qHead++] = undefined;
    if (this.qHead === this.queue.length) {
      this.queue.length = 0;
      this.qHead = 0;
    } else if (this.qHead >= 1024 && this.qHead * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return f;
  }

  /** Settles waiters from the queue or the final state. */
  private wake(): void {
    for (let w = this.waiters.first(); w !== undefined; w = this.waiters.first()) {
      let f: TcpFrame | null = null;
      if (this.phase !== Phase.Closed) f = this.take();
      if (f === null && (this.phase === Phase.Open || this.phase === Phase.Connecting)) return;
      if (f !== null) w.resolve(f);
      else if (this.phase === Phase.Ended) w.resolve(null);
      else if (this.phase === Phase.Failed) w.reject(this.failure);
      else w.reject(new ClosedError("receiver closed while receiving"));
    }
  }

  /** @internal Called by a frame when released: credit for the sender. */
  onRelease(arena: Arena, total: number): void {
    arena.refs--;
    if (arena.retired && arena.refs === 0) this.recycle(arena);
    if (this.phase !== Phase.Open) return;
    this.releasedBytes += total;
    if (this.urgent || this.releasedBytes - this.ackedBytes >= this.ackThreshold) this.queueAck();
  }

  private queueAck(): void {
    this.ackQueued ??= setImmediate(() => {
      this.ackQueued = undefined;
      if (this.releasedBytes > this.ackedBytes) this.sendAck();
    });
  }

  private sendAck(): void {
    if (this.phase !== Phase.Open) return;
    this.ackedBytes = this.releasedBytes;
    this.urgent = false;
    this.liveness.sent();
    const ack = Buffer.allocUnsafe(HEADER_BYTES);
    writeFrameHeader64(ack, 0, 0, FrameType.Ack, this.releasedBytes);
    this.socket.write(ack);
  }

  private tick(): void {
    if (this.phase !== Phase.Open) return;
    // unacknowledged releases go out at the latest now (an ACK counts as this end's heartbeat)
    if (!this.liveness.tick(this.beat)) {
      this.fail(new PeerDeadError(`no data or heartbeat from the tcp sender at ${this.where} for ${this.liveness.deadAfterMs} ms`));
      return;
    }
    if (this.releasedBytes > this.ackedBytes) this.sendAck();
  }

  // ---- the byte stream ----------------------------------------------------------------------

  /** Where the next read goes: the free end of the arena (a fresh arena when too little is left). */
  private readRegion(): Buffer {
    const free = this.arena.buf.length - this.fill;
    // A known, incomplete frame always fits the arena (parse made sure); otherwise move on when
    // the space left is too small to read efficiently (copies at most a partial header).
    if (free < MIN_READ && this.fill - this.parse < HEADER_BYTES) this.moveTo(0);
    const buf = this.arena.buf;
    return buf.subarray(this.fill, Math.min(buf.length, this.fill + MAX_READ));
  }

  /** TLS: copies a decrypted chunk into the arena. */
  private onChunk(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const region = this.readRegion();
      const n = Math.min(region.length, chunk.length - off);
      chunk.copy(region, 0, off, off + n);
      off += n;
      this.onBytes(n);
    }
  }

  /** `n` more bytes are in the arena at `fill`. */
  private onBytes(n: number): void {
    this.liveness.heard();
    if (this.phase !== Phase.Open && this.phase !== Phase.Connecting) {
      this.fill = this.parse; // discard: nobody reads any more
      return;
    }
    this.fill += n;
    this.parseFrames();
  }

  /** Moves the unparsed bytes to a fresh arena of at least `need` bytes. */
  private moveTo(need: number): void {
    const old = this.arena;
    const next = this.takeArena(need);
    old.buf.copy(next.buf, 0, this.parse, this.fill);
    this.fill -= this.parse;
    this.parse = 0;
    this.arena = next;
    old.retired = true;
    if (old.refs === 0) this.recycle(old);
  }

  /** The smallest spare arena of at least `need` bytes, or a new one (a multiple of the standard size). */
  private takeArena(need: number): Arena {
    let best = -1;
    for (let i = 0; i < this.spare.length; i++) {
      const len = this.spare[i].buf.length;
      if (len >= need && (best < 0 || len < this.spare[best].buf.length)) best = i;
    }
    if (best >= 0) {
      const [a] = this.spare.splice(best, 1);
      this.spareBytes -= a.buf.length;
      return a;
    }
    const std = this.stdArena;
    return new Arena(Buffer.allocUnsafeSlow(Math.ceil(Math.max(need, 1) / std) * std));
  }

  /** Keeps a retired arena whose frames were all released (fresh memory costs page faults). */
  private recycle(a: Arena): void {
    if (this.spare.length >= MAX_SPARE_ARENAS || this.spareBytes + a.buf.length > this.maxSpareBytes) return;
    a.retired = false;
    this.spare.push(a);
    this.spareBytes += a.buf.length;
  }

  private parseFrames(): void {
    let delivered = false;
    try {
      for (;;) {
        const buf = this.arena.buf;
        const p = this.parse;
        const avail = this.fill - p;
        if (this.phase === Phase.Connecting) {
          if (avail >= 4 && isVersion1Block(buf, p)) {
            throw new ProtocolError(`tcp transport version mismatch with the tcp sender at ${this.where}: it speaks version 1, this receiver version ${TCP_VERSION}`);
          }
          const foreign = foreignAnswer(TCP_SPEC, this.where, buf.subarray(p, this.fill));
          if (foreign !== undefined) throw foreign;
          if (avail < HEADER_BYTES) break;
          const h = readFrameHeader(buf, p);
          if (h.type !== NetType.Welcome) throw new ProtocolError(`the tcp sender at ${this.where} answered the HELLO with a frame of type 0x${h.type.toString(16)}, not a WELCOME`);
          checkNetHeader(h);
          if (avail < HEADER_BYTES + h.length) break; // (a WELCOME fits any arena: at most 16 + 4096 bytes)
          this.parse = p + HEADER_BYTES + h.length;
          this.welcome(h, buf.subarray(p + HEADER_BYTES, p + HEADER_BYTES + h.length));
          continue;
        }
        if (this.phase !== Phase.Open || avail < HEADER_BYTES) break;
        const length = get32(buf, p);
        const type = typeWord(buf, p);
        if (type === FrameType.Data) {
          // Checked before anything is allocated or waited for.
          if (length > this.maxMessage) {
            throw new FrameTooLargeError(`the tcp sender sent a ${length}-byte message; it announced at most ${this.maxMessage}`);
          }
          const total = frameBytes(length);
          if (this.received + total - this.releasedBytes > this.capacity) {
            throw new ProtocolError(`the tcp sender overran its window of ${this.capacity} bytes`);
          }
          if (p + total > buf.length) {
            this.moveTo(total);
            continue;
          }
          if (avail < total) break;
          const seq = readU64(buf, p);
          if (seq !== this.expected) {
            if (!this.cfg.leaky || seq < this.expected) throw new SequenceError(this.expected, seq);
            this.missed += seq - this.expected;
          }
          this.expected = seq + 1;
          this.received += total;
          this.arena.refs++;
          this.queue.push(new TcpFrame(new Uint8Array(buf.buffer, buf.byteOffset + p + HEADER_BYTES, length), seq, this, this.arena, total));
          this.parse = p + total;
          delivered = true;
          continue;
        }
        if ((type & 0xff) >= FIRST_NET_TYPE) {
          // The connection's own: a heartbeat (every field zero); a second HELLO or WELCOME is not expected.
          const h = readFrameHeader(buf, p);
          checkNetHeader(h);
          if (h.type !== NetType.Ping) throw new ProtocolError(`an unexpected frame of the connection (type 0x${h.type.toString(16)}) from the tcp sender`);
          this.parse = p + HEADER_BYTES;
          continue;
        }
        if (length !== 0) throw new ProtocolError(`a control frame (type ${type}) with a ${length}-byte payload`);
        this.parse = p + HEADER_BYTES;
        if (type === FrameType.Want) {
          this.urgent = true;
          if (this.releasedBytes > this.ackedBytes) this.queueAck();
          continue;
        }
        if (type === FrameType.End) {
          this.end(readU64(buf, p));
          break;
        }
        throw new ProtocolError(`unknown frame type 0x${type.toString(16)} from the tcp sender`);
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new ProtocolError(String(err)));
      return;
    }
    if (delivered) this.wake();
  }

  /** The sender's WELCOME (`h` its header, `payload` a view of the arena): joined, or its refusal as a typed error. */
  private welcome(h: FrameHeader, payload: Buffer): void {
    const where = `the tcp sender at ${this.where}`;
    const pre = readWelcome(TCP_SPEC, h, payload, where);
    if (pre.status !== Status.Ok) throw refusal(TCP_SPEC, pre, where);
    if (pre.heartbeat < 1) throw new ProtocolError(`${where} announces a heartbeat of 0 ms`);
    const w = decodeWelcomeBody(pre.body);
    if (w.maxMessage > this.cfg.maxMessage) {
      throw new FrameTooLargeError(
        `the tcp sender at ${this.where} sends messages of up to ${w.maxMessage} bytes; this receiver accepts ${this.cfg.maxMessage} (option maxMessage)`,
      );
    }
    this.capacity = w.capacity;
    this.maxMessage = w.maxMessage;
    this.expected = w.startSeq;
    this.ackThreshold = Math.max(1, Math.floor(w.capacity / 4));
    this.stdArena = Math.min(4 << 20, Math.max(FIRST_ARENA, w.capacity));
    this.maxSpareBytes = Math.max(2 * this.stdArena, Math.min(w.capacity, 64 << 20));
    this.liveness.setPeerHeartbeat(pre.heartbeat);
    this.phase = Phase.Open;
    this.ticker.add(this.ticking);
    this.handshake?.resolve();
  }

  private end(endSeq: number): void {
    if (endSeq !== this.expected) {
      if (!this.cfg.leaky || endSeq < this.expected) throw new SequenceError(this.expected, endSeq);
      this.missed += endSeq - this.expected;
    }
    this.phase = Phase.Ended;
    this.stop();
    this.wake();
  }

  /** Stops timers (the stream is over one way or another). */
  private stop(): void {
    this.ticker.delete(this.ticking);
    if (this.ackQueued !== undefined) clearImmediate(this.ackQueued);
    this.ackQueued = undefined;
  }

  /** The stream failed: queued frames are still delivered, then `err`. */
  private fail(err: Error): void {
    if (this.phase === Phase.Connecting) {
      this.phase = Phase.Failed;
      this.failure = err;
      this.socket?.destroy();
      this.handshake?.reject(err);
      return;
    }
    if (this.phase !== Phase.Open) return;
    this.phase = Phase.Failed;
    this.failure = err;
    this.stop();
    this.socket.destroy();
    this.wake();
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    if (this.phase === Phase.Connecting) this.fail(connectError(err, `the tcp sender at ${this.where}`));
    else this.fail(new PeerDeadError(`the connection to the tcp sender at ${this.where} failed: ${err.message}`, { cause: err }));
  }

  private onSocketClose(): void {
    if (this.phase === Phase.Connecting) {
      // (a sender of tcp protocol version 1 hangs up on this HELLO without an answer)
      this.fail(new PeerDeadError(`the tcp sender at ${this.where} closed the connection during the handshake (is it a tcp sender of protocol version ${TCP_VERSION}?)`));
    }
    else this.fail(new PeerDeadError(`the tcp sender at ${this.where} went away without ending the stream`));
  }

  private async shutdown(): Promise<void> {
    const wasOpen = this.phase === Phase.Open;
    this.phase = Phase.Closed;
    this.stop();
    this.wake();
    this.queue = [];
    this.qHead = 0;
    const socket = this.socket;
    if (wasOpen && !socket.destroyed) {
      // Tell the sender and wait until it let go of us (it closes the connection), so that
      // once close() resolves the sender no longer counts or waits for this receiver.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(BYE_WAIT_MS, this.liveness.deadAfterMs));
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.write(BYE);
      });
    }
    socket.destroy();
  }
}

/**
 * Attaches a receiver to a `tcp` sender. Rejects with `PeerDeadError` if nothing listens there,
 * `AccessDeniedError` if TLS fails (certificate not trusted, name mismatch, client certificate
 * refused) or if plain TCP to a non-loopback host was not allowed with `allowInsecure`,
 * `ProtocolError` if the peer is not a Plexus tcp sender of this protocol version,
 * `FrameTooLargeError` if the sender's messages may exceed `maxMessage`, `TimeoutError` /
 * `AbortError` as usual.
 */
export async function connectTcp(address: TcpAddress, opts: TcpConnectOptions = {}): Promise<Receiver> {
  if (
    address?.kind !== "tcp" ||
    typeof address.host !== "string" ||
    address.host === "" ||
    !Number.isInteger(address.port) ||
    address.port < 1 ||
    address.port > 65535
  ) {
    throw new InvalidArgumentError("not a tcp address (use TcpSender.address)");
  }
  const set = receiverSettings("connectTcp", opts);
  const o = readOptions("connectTcp", opts);
  const tlsOption = typeof opts.tls === "boolean" ? opts.tls : o.object("tls", "true, false or an object of certificate options");
  const allowInsecure = o.bool("allowInsecure", false);
  const connectTimeout = o.timeout("connectTimeout", 5000);
  const signal = o.signal("signal");
  const cfg: Config = {
    host: address.host,
    port: address.port,
    policy: WIRE_POLICY[set.backpressure],
    leaky: set.backpressure === "drop-oldest",
    timeout: set.timeout,
    maxMessage: o.int("maxMessage", DEFAULT_MAX_MESSAGE, 0, 2 ** 32 - 1),
    heartbeat: o.ms("heartbeat", 1000),
    peerTimeout: o.ms("peerTimeout", 10000),
  };
  throwIfAborted(signal, "connect");
  const useTls = address.tls === true || (tlsOption !== undefined && tlsOption !== false);
  refusePlainTcp(address.host, useTls, allowInsecure, "connect");
  let tls: ConnectionOptions | undefined;
  if (useTls) {
    const t = typeof tlsOption === "object" ? tlsOption : {};
    tls = { ...t };
    // SNI must be a name, never an IP address; identity is still checked against `host`.
    if (t.servername !== undefined) tls.servername = t.servername;
    else if (!/^[\d.]+$|:/.test(address.host)) tls.servername = address.host;
  }
  const rx = new TcpReceiver(cfg);
  await rx.start(tls, connectTimeout, signal);
  return rx;
}
