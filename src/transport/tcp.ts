/**
 * The `tcp` transport: one sender, many receivers, each receiver a TCP (optionally TLS)
 * connection. Framed (16-byte headers with a type and a sequence number, after a versioned
 * handshake), `TCP_NODELAY`, writes of a tick coalesced into one vectored write per socket, one
 * encoded frame per message written to every socket. Backpressure per receiver is credit-based:
 * the receiver acknowledges frames as it *releases* them, so `block` means exactly what it means
 * on a ring. Plain TCP is allowed only on loopback unless the user opts out explicitly. The wire
 * format is specified in docs/protocol.md §5.
 * @module
 */
import type { AddressInfo, Server, Socket } from "node:net";
import {
  BackpressureError,
  ClosedError,
  FrameTooLargeError,
  InvalidArgumentError,
  PeerDeadError,
  type PlexusError,
  ProtocolError,
  TimeoutError,
} from "../errors.js";
import { checkOptions, checkTimeout, type BlockingOptions } from "../util/blocking.js";
import type { Loan, Sender } from "./transport.js";
import { FramePool, POOL_MIN } from "./tcp-pool.js";
import { type TcpAddress, type TcpTlsOptions } from "./tcp-receiver.js";
import {
  controlFrame,
  decodeHello,
  encodeWelcome,
  FrameType,
  frameBytes,
  frameType,
  HANDSHAKE_BYTES,
  HEADER_BYTES,
  intOption,
  MAX_WINDOW,
  MIN_WINDOW,
  msOption,
  readValue,
  TCP_VERSION,
  WelcomeStatus,
  writeHeader,
} from "./tcp-wire.js";
import { refusePlainTcp } from "../net/loopback.js";
import { listenTcp } from "../net/listen.js";
import { Liveness } from "../net/liveness.js";
import { WaitList } from "../util/wait.js";

export { connectTcp, type TcpAddress, type TcpConnectOptions, type TcpTlsOptions } from "./tcp-receiver.js";

/** Options of {@link TcpSender.create}. */
export interface TcpSenderOptions {
  /** Address to listen on (default `127.0.0.1`). Anything but loopback needs `tls` or `allowInsecure`. */
  host?: string;
  /** Port to listen on (default 0: any free port; see `address.port`). */
  port?: number;
  /** Serve TLS with these certificate options (`key` + `cert`, or `pfx`; `ca` + `requestCert` for client certificates). */
  tls?: TcpTlsOptions;
  /** Allow plain TCP on a non-loopback address. Without it, that is an `AccessDeniedError`. */
  allowInsecure?: boolean;
  /**
   * Per-receiver window in bytes (default 1 MiB): frame bytes a receiver may hold unreleased
   * (each message counts `16 + its size rounded up to 16`). A `drop-oldest` receiver may also
   * have up to this many bytes queued at the sender.
   */
  capacity?: number;
  /** Largest message (default `capacity / 2 - 16`, like a ring; at most the window less 16). */
  maxMessage?: number;
  /** Most receivers at once (default 64); more are refused with `ResourceExhaustedError`. */
  maxReceivers?: number;
  /** Default timeout of `send`/`loan` in ms (default 5000). */
  timeout?: number;
  /** Idle interval after which the sender writes a heartbeat to a receiver (ms, default 1000). */
  heartbeat?: number;
  /** A receiver counts as dead after this long without a byte from it (ms, default 10000). */
  peerTimeout?: number;
  /** A connection must complete its handshake within this time (ms, default 5000). */
  handshakeTimeout?: number;
  /** After `close()`, receivers that have not taken everything within this time are cut off (ms, default 30000). */
  linger?: number;
  /** Told why a receiver was cut off (protocol violation, silence); the sender keeps serving the others. */
  onPeerError?: (err: PlexusError) => void;
}

/** Settings of a sender after validation. */
interface Config {
  capacity: number;
  maxMessage: number;
  maxReceivers: number;
  timeout: number;
  heartbeat: number;
  peerTimeout: number;
  handshakeTimeout: number;
  linger: number;
  onPeerError: ((err: PlexusError) => void) | undefined;
}

const enum PeerState {
  /** Connected, HELLO not yet received. */
  Handshake,
  /** Receiving messages. */
  Active,
  /** END written (or refused): the connection is finishing. */
  Ending,
  /** Dropped. */
  Gone,
}

/** Policy codes on the wire. */
const P_BLOCK = 0;
const P_DROP = 1;
const P_FAIL = 2;

const WANT = controlFrame(FrameType.Want);
const PING = controlFrame(FrameType.Ping);
const NOTHING = Buffer.alloc(0);
/** A corked socket is flushed at once when this many bytes wait. */
const FLUSH_BYTES = 128 << 10;
/** Frames up to this size are batched (copied) per connection rather than written one by one. */
const SMALL = 8 << 10;
/** Size of a batch buffer. */
const BATCH = 256 << 10;
/** Batch buffers kept for reuse (per sender). */
const MAX_SPARE_BATCHES = 8;

/**
 * A buffer small frames are appended to; each chunk `[start, end)` is written once and never
 * touched again. Reused once full and every chunk of it was written (the socket let go).
 */
class Batch {
  start = 0;
  end = 0;
  /** Chunks handed to the socket and not yet written. */
  writing = 0;
  /** Full: no more appends; recycle when `writing` drops to 0. */
  retired = false;
  /** A write failed (connection gone): the socket may still hold it, never reuse. */
  failed = false;
  constructor(readonly buf: Buffer) {}
}

/** One receiver's connection, seen from the sender. */
class Peer {
  state = PeerState.Handshake;
  policy = P_BLOCK;
  /** Total frame bytes written to this receiver. */
  sent = 0;
  /** Total frame bytes it released (its last ACK). */
  acked = 0;
  /** drop-oldest: frames waiting for window, oldest first, from `head`. */
  pending: Buffer[] = [];
  head = 0;
  pendingBytes = 0;
  /** A WANT was written and no ACK came since. */
  wantSent = false;
  /** The sender closed: END follows once `pending` is written. */
  draining = false;
  /** The socket is corked (its writes go out together). */
  corked = false;
  /** Bytes written since the socket was corked. */
  corkedBytes = 0;
  /** Listed for the next flush. */
  scheduled = false;
  /** Small frames are copied here, in order, and written in chunks. */
  batch: Batch | undefined;
  staging = Buffer.alloc(HANDSHAKE_BYTES);
  staged = 0;
  handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Pooled frames written and not yet acknowledged, with the `sent` total at each one's end. */
  inflight: Buffer[] = [];
  inflightEnd: number[] = [];
  inflightHead = 0;
  constructor(
    readonly socket: Socket,
    /** Heartbeats and the peer's silence (ticked every `heartbeat` ms). */
    readonly liveness: Liveness,
  ) {}
  get queued(): number {
    return this.pending.length - this.head;
  }
}

/**
 * The sending end of a `tcp` transport: listens, and sends every message to every receiver that
 * connected (`connectTcp(sender.address)`), each message encoded once.
 */
export class TcpSender implements Sender {
  /** Transport tag. */
  readonly kind = "tcp" as const;
  /** Where receivers connect. */
  readonly address: TcpAddress;
  private readonly peers = new Set<Peer>();
  private active: Peer[] = [];
  private seq = 1;
  /** Sends and loans waiting for room, in order; each keeps the attempt that takes its room. A wait that gave up lets the next one try. */
  private readonly waiters = new WaitList<void, () => boolean>((w) => {
    if (w.rejected) this.wake();
  });
  private waking = false;
  private loanOpen = false;
  private closedFlag = false;
  private closing: Promise<void> | undefined;
  private touched: Peer[] = [];
  private flushQueued = false;
  private readonly ticker: ReturnType<typeof setInterval>;
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly half: number;
  /** Large frames, reused once every receiver released them. */
  private readonly pool: FramePool;
  /** References to pooled frames in flight: one per receiver it was written to or queued for. */
  private readonly refs = new Map<Buffer, number>();
  /** Where small frames are encoded before being copied into each connection's batch. */
  private readonly scratch = Buffer.allocUnsafeSlow(SMALL);
  /** Spare batch buffers. */
  private readonly batches: Batch[] = [];
  private readonly flush = (): void => {
    this.flushQueued = false;
    const list = this.touched;
    this.touched = [];
    for (const p of list) {
      p.scheduled = false;
      if (p.state !== PeerState.Active || p.socket.destroyed) continue;
      this.flushBatch(p);
      this.uncork(p);
    }
  };

  private constructor(
    private readonly server: Server,
    address: TcpAddress,
    private readonly cfg: Config,
  ) {
    this.address = address;
    this.half = cfg.capacity / 2;
    this.pool = new FramePool(Math.min(2 * cfg.capacity, 64 << 20));
    this.ticker = setInterval(() => this.tick(), cfg.heartbeat);
    this.ticker.unref();
    server.on(address.tls ? "secureConnection" : "connection", (s: Socket) => this.accept(s));
    server.on("tlsClientError", () => {}); // the TLS layer already dropped that connection
    server.on("error", () => {}); // accept errors (EMFILE): the connection is lost, the sender serves on
  }

  /**
   * Listens and returns the sender. Rejects with `AccessDeniedError` for a non-loopback `host`
   * without `tls` or `allowInsecure`, `InvalidArgumentError` for bad options or TLS material,
   * `SystemError` if the address cannot be bound (e.g. `EADDRINUSE`).
   */
  static async create(opts: TcpSenderOptions = {}): Promise<TcpSender> {
    const host = opts.host ?? "127.0.0.1";
    if (typeof host !== "string" || host === "") throw new InvalidArgumentError("host must be a non-empty string");
    const port = intOption("port", opts.port, 0, 0, 65535);
    const capacity = intOption("capacity", opts.capacity, 1 << 20, MIN_WINDOW, MAX_WINDOW);
    const cfg: Config = {
      capacity,
      maxMessage: intOption("maxMessage", opts.maxMessage, Math.floor(capacity / 2) - HEADER_BYTES, 0, (capacity & ~15) - HEADER_BYTES),
      maxReceivers: intOption("maxReceivers", opts.maxReceivers, 64, 1, 65536),
      timeout: checkTimeout(opts.timeout, 5000),
      heartbeat: msOption("heartbeat", opts.heartbeat, 1000),
      peerTimeout: msOption("peerTimeout", opts.peerTimeout, 10000),
      handshakeTimeout: msOption("handshakeTimeout", opts.handshakeTimeout, 5000),
      linger: msOption("linger", opts.linger, 30000),
      onPeerError: opts.onPeerError,
    };
    refusePlainTcp(host, opts.tls !== undefined, opts.allowInsecure === true, "serve");
    if (opts.tls !== undefined && (opts.tls === null || typeof opts.tls !== "object")) throw new InvalidArgumentError("tls must be an object of certificate options");
    const server = await listenTcp({ host, port, tls: opts.tls, keepAliveMs: cfg.peerTimeout, handshakeTimeout: cfg.handshakeTimeout, maxConnections: cfg.maxReceivers + 64 });
    server.unref(); // an idle listener does not keep the process alive; connections do
    const bound = server.address() as AddressInfo;
    return new TcpSender(server, { kind: "tcp", host, port: bound.port, tls: opts.tls !== undefined }, cfg);
  }

  /** Receivers currently attached. */
  get receivers(): number {
    return this.active.length;
  }

  /** Sequence number the next message will carry. */
  get nextSequence(): number {
    return this.seq;
  }

  /**
   * Sends now if every `block` receiver has room (copying `data` once); false otherwise.
   * Throws `BackpressureError` if a `fail` receiver has no room (nobody gets the message).
   */
  trySend(data: ArrayBufferView): boolean {
    const len = this.check(data);
    if (this.waiters.size > 0) return false;
    return this.sendNow(data, len);
  }

  /** Sends, waiting (bounded by `timeout`, `signal`) until every `block` receiver released enough. */
  send(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<void> {
    try {
      checkOptions(opts, "send");
      const len = this.check(data);
      if (this.waiters.size === 0 && this.sendNow(data, len)) return Promise.resolve();
      return this.waitFor(() => this.sendNow(data, len), opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lends a zeroed, 16-byte-aligned frame of `size` bytes once every `block` receiver has room
   * for it: fill `bytes`, then `commit(length?)` sends it with no copy, `abort()` sends nothing.
   * One loan at a time; sends wait (or throw, `trySend`) while it is open.
   */
  async loan(size: number, opts: BlockingOptions = {}): Promise<Loan> {
    checkOptions(opts, "loan");
    if (this.closedFlag) throw new ClosedError("tcp sender is closed");
    if (!Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`loan size must be a non-negative integer, got ${size}`);
    if (size > this.cfg.maxMessage) throw new FrameTooLargeError(`loan of ${size} bytes exceeds the sender's limit of ${this.cfg.maxMessage} bytes`);
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    const total = frameBytes(size);
    const reserve = (): boolean => {
      if (!this.room(total)) return false;
      this.loanOpen = true;
      return true;
    };
    if (this.waiters.size > 0 || !reserve()) await this.waitFor(reserve, opts);
    return this.makeLoan(size);
  }

  /**
   * Ends the stream: no more sends; every receiver gets what was sent to it (a `drop-oldest`
   * receiver's queue included, as it releases), then the end. Resolves at once; the connections
   * finish in the background (at most `linger` ms). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** Drops every connection now: receivers get what already arrived, then `PeerDeadError`. */
  destroy(): void {
    this.closing ??= Promise.resolve();
    this.stopSending(new ClosedError("tcp sender destroyed"));
    this.flush(); // hand what was sent to the kernel first (best effort)
    for (const p of [...this.peers]) this.drop(p);
    this.finish();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- sending --------------------------------------------------------------------------------

  /** Validates a message; returns its length. */
  private check(data: ArrayBufferView): number {
    if (this.closedFlag) throw new ClosedError("tcp sender is closed");
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    if (!ArrayBuffer.isView(data)) throw new InvalidArgumentError("data must be a TypedArray, Buffer or DataView");
    const len = data.byteLength;
    if (len > this.cfg.maxMessage) throw new FrameTooLargeError(`message of ${len} bytes exceeds the sender's limit of ${this.cfg.maxMessage} bytes`);
    return len;
  }

  /**
   * True if every `block` receiver has room for `total` frame bytes; throws
   * `BackpressureError` if a `fail` receiver has not. Asks full receivers for credit.
   */
  private room(total: number): boolean {
    const cap = this.cfg.capacity;
    let ok = true;
    for (const p of this.active) {
      if (p.sent - p.acked + total <= cap || p.policy === P_DROP) continue;
      if (p.policy === P_FAIL) throw new BackpressureError(`a receiver (policy "fail") has no room for a ${total}-byte frame`);
      ok = false;
      this.want(p);
    }
    return ok;
  }

  /** Copies the message into a frame (the one copy) and sends it, if there is room. */
  private sendNow(data: ArrayBufferView, len: number): boolean {
    const total = frameBytes(len);
    if (!this.room(total)) return false;
    if (this.active.length === 0) {
      this.seq++;
      return true;
    }
    // Small frames are built in a scratch buffer: every connection copies them into its batch.
    const frame = total <= SMALL ? this.scratch.subarray(0, total) : this.pool.take(total);
    if (len > 0) frame.set(data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, len), HEADER_BYTES);
    frame.fill(0, HEADER_BYTES + len);
    this.publish(frame, len);
    return true;
  }

  /** Numbers the frame and hands the same bytes to every receiver. */
  private publish(frame: Buffer, len: number): void {
    const seq = this.seq++;
    writeHeader(frame, 0, len, FrameType.Data, seq);
    const cap = this.cfg.capacity;
    const total = frame.length;
    const pooled = total >= POOL_MIN;
    if (pooled) this.refs.set(frame, 1); // held while being handed out
    for (const p of this.active) {
      if (p.policy === P_DROP && (p.queued > 0 || p.sent - p.acked + total > cap)) this.enqueue(p, frame);
      else this.writeData(p, frame);
    }
    if (pooled) this.unref(frame);
  }

  private writeData(p: Peer, frame: Buffer): void {
    p.sent += frame.length;
    if (frame.length >= POOL_MIN) this.ref(frame, p);
    this.write(p, frame);
    if (p.sent - p.acked > this.half) this.want(p);
  }

  /** Counts one more holder of a pooled frame; with `p`, until `p` acknowledges it. */
  private ref(frame: Buffer, p?: Peer): void {
    const n = this.refs.get(frame);
    if (n === undefined) return;
    this.refs.set(frame, n + 1);
    if (p === undefined) return;
    p.inflight.push(frame);
    p.inflightEnd.push(p.sent);
  }

  /** Drops one holder; the last one returns the frame to the pool. */
  private unref(frame: Buffer): void {
    const n = this.refs.get(frame);
    if (n === undefined) return;
    if (n > 1) {
      this.refs.set(frame, n - 1);
      return;
    }
    this.refs.delete(frame);
    this.pool.give(frame);
  }

  /** Pooled frames `p` acknowledged go back (when nobody else holds them). */
  private settleInflight(p: Peer): void {
    let h = p.inflightHead;
    const n = p.inflight.length;
    while (h < n && p.inflightEnd[h] <= p.acked) {
      this.unref(p.inflight[h]);
      p.inflight[h++] = NOTHING;
    }
    if (h === n) {
      p.inflight.length = 0;
      p.inflightEnd.length = 0;
      h = 0;
    } else if (h >= 256 && h * 2 >= n) {
      p.inflight = p.inflight.slice(h);
      p.inflightEnd = p.inflightEnd.slice(h);
      h = 0;
    }
    p.inflightHead = h;
  }

  /** drop-oldest: queue a frame; beyond a window's worth, drop the oldest queued ones. */
  private enqueue(p: Peer, frame: Buffer): void {
    if (frame.buffer === this.scratch.buffer) frame = Buffer.from(frame); // the scratch is reused
    p.pending.push(frame);
    p.pendingBytes += frame.length;
    if (frame.length >= POOL_MIN) this.ref(frame);
    while (p.pendingBytes > this.cfg.capacity && p.queued > 1) {
      const old = p.pending[p.head];
      p.pending[p.head++] = NOTHING;
      p.pendingBytes -= old.length;
      if (old.length >= POOL_MIN) this.unref(old);
    }
    if (p.head >= 1024 && p.head * 2 >= p.pending.length) {
      p.pending = p.pending.slice(p.head);
      p.head = 0;
    }
    this.want(p);
  }

  /** Writes queued frames that fit the window now. */
  private flushPending(p: Peer): void {
    const cap = this.cfg.capacity;
    while (p.queued > 0) {
      const f = p.pending[p.head];
      if (p.sent - p.acked + f.length > cap) break;
      p.pending[p.head++] = NOTHING;
      p.pendingBytes -= f.length;
      this.writeData(p, f);
      if (f.length >= POOL_MIN) this.unref(f); // the queue's reference
    }
    if (p.queued === 0) {
      p.pending = [];
      p.head = 0;
      if (p.draining) this.end(p);
    } else {
      this.want(p);
    }
  }

  private want(p: Peer): void {
    if (p.wantSent) return;
    p.wantSent = true;
    this.write(p, WANT);
  }

  /**
   * Writes a frame to a connection. What is written in one tick goes out on the next as one
   * vectored write: frames of up to {@link SMALL} bytes are copied into the connection's batch
   * (cheaper than a stream write each), larger ones are written as they are (no copy), all
   * corked together; a burst is flushed early once {@link FLUSH_BYTES} wait.
   */
  private write(p: Peer, buf: Buffer): void {
    if (p.state === PeerState.Gone) return;
    p.liveness.sent();
    if (!p.scheduled) {
      p.scheduled = true;
      this.touched.push(p);
      if (!this.flushQueued) {
        this.flushQueued = true;
        process.nextTick(this.flush);
      }
    }
    if (buf.length <= SMALL) {
      let b = p.batch;
      if (b === undefined || b.end + buf.length > b.buf.length) {
        if (b !== undefined) {
          this.flushBatch(p);
          b.retired = true;
          if (b.writing === 0) this.recycle(b);
        }
        b = p.batch = this.batches.pop() ?? new Batch(Buffer.allocUnsafeSlow(BATCH));
      }
      b.buf.set(buf, b.end);
      b.end += buf.length;
      return;
    }
    this.flushBatch(p);
    this.put(p, buf);
  }

  /** Hands the batched small frames to the socket (the written part is never touched again). */
  private flushBatch(p: Peer): void {
    const b = p.batch;
    if (b === undefined || b.end === b.start) return;
    const chunk = b.buf.subarray(b.start, b.end);
    b.start = b.end;
    b.writing++;
    this.put(p, chunk, (err) => {
      b.writing--;
      if (err) b.failed = true;
      if (b.retired && b.writing === 0) this.recycle(b);
    });
  }

  /** Keeps a fully written batch for reuse. */
  private recycle(b: Batch): void {
    if (b.failed || this.batches.length >= MAX_SPARE_BATCHES) return;
    b.start = b.end = 0;
    b.retired = false;
    this.batches.push(b);
  }

  /** Writes to the corked socket; uncorks early after {@link FLUSH_BYTES}. */
  private put(p: Peer, buf: Buffer, done?: (err?: Error | null) => void): void {
    if (!p.corked) {
      p.corked = true;
      p.socket.cork();
    }
    p.socket.write(buf, done);
    p.corkedBytes += buf.length;
    if (p.corkedBytes >= FLUSH_BYTES) this.uncork(p);
  }

  private uncork(p: Peer): void {
    if (!p.corked) return;
    p.corked = false;
    p.corkedBytes = 0;
    p.socket.uncork();
  }

  /** Flushes everything and half-closes the connection. */
  private finishWrites(p: Peer): void {
    this.flushBatch(p);
    p.corked = false; // end() uncorks
    p.corkedBytes = 0;
    p.socket.end();
  }

  private makeLoan(size: number): Loan {
    // Zeroed, and 16-byte aligned like a ring loan (typed views may be written into it).
    const total = frameBytes(size);
    const frame = total < POOL_MIN ? Buffer.alloc(total) : this.pool.take(total).fill(0);
    let open = true;
    return {
      bytes: new Uint8Array(frame.buffer, frame.byteOffset + HEADER_BYTES, size),
      commit: (length = size) => {
        if (!open) throw new ClosedError("loan already ended");
        if (!Number.isInteger(length) || length < 0 || length > size) {
          throw new InvalidArgumentError(`commit length must be an integer in 0..${size}, got ${length}`);
        }
        open = false;
        this.loanOpen = false;
        if (this.closedFlag) throw new ClosedError("tcp sender closed during the loan");
        // The room was reserved when the loan was granted, and credit only grows meanwhile.
        const f = frame.subarray(0, frameBytes(length));
        f.fill(0, HEADER_BYTES + length);
        if (this.active.length === 0) {
          this.seq++;
          this.pool.give(frame);
        } else {
          this.publish(f, length);
        }
        this.wake();
      },
      abort: () => {
        if (!open) return;
        open = false;
        this.loanOpen = false;
        this.pool.give(frame);
        this.wake();
      },
    };
  }

  // ---- waiting ----------------------------------------------------------------------------------

  private waitFor(attempt: () => boolean, opts: BlockingOptions): Promise<void> {
    const timeout = checkTimeout(opts.timeout, this.cfg.timeout);
    return this.waiters.wait({ timeout, signal: opts.signal, what: "send", timeoutError: () => new TimeoutError(`send waited ${timeout} ms for a slow receiver`) }, attempt);
  }

  /** Lets waiting sends and loans go ahead, in order, while there is room. */
  private wake(): void {
    if (this.waking) return;
    this.waking = true;
    try {
      for (let w = this.waiters.first(); w !== undefined && !this.loanOpen && !this.closedFlag; w = this.waiters.first()) {
        let ok: boolean;
        try {
          ok = w.data();
        } catch (err) {
          w.reject(err);
          continue;
        }
        if (!ok) break;
        w.resolve();
      }
    } finally {
      this.waking = false;
    }
  }

  private stopSending(err: Error): void {
    this.closedFlag = true;
    this.waiters.failAll(err);
    this.server.close();
  }

  // ---- connections ------------------------------------------------------------------------------

  private accept(socket: Socket): void {
    if (this.closedFlag) {
      socket.destroy();
      return;
    }
    const p = new Peer(socket, new Liveness(this.cfg.heartbeat, this.cfg.heartbeat, this.cfg.peerTimeout));
    this.peers.add(p);
    socket.on("data", (chunk: Buffer) => this.onData(p, chunk));
    socket.on("error", () => {}); // "close" follows
    socket.on("close", () => this.onClose(p));
    p.handshakeTimer = setTimeout(() => this.drop(p, new ProtocolError(`no handshake within ${this.cfg.handshakeTimeout} ms`)), this.cfg.handshakeTimeout);
    p.handshakeTimer.unref();
  }

  private onData(p: Peer, chunk: Buffer): void {
    p.liveness.heard();
    let off = 0;
    while (off < chunk.length && (p.state === PeerState.Handshake || p.state === PeerState.Active)) {
      const size = p.state === PeerState.Handshake ? HANDSHAKE_BYTES : HEADER_BYTES;
      if (p.staged === 0 && chunk.length - off >= size) {
        this.onFrame(p, chunk, off);
        off += size;
        continue;
      }
      const n = Math.min(size - p.staged, chunk.length - off);
      chunk.copy(p.staging, p.staged, off, off + n);
      p.staged += n;
      off += n;
      if (p.staged === size) {
        p.staged = 0;
        this.onFrame(p, p.staging, 0);
      }
    }
  }

  private onFrame(p: Peer, buf: Buffer, at: number): void {
    if (p.state === PeerState.Handshake) {
      this.onHello(p, buf, at);
      return;
    }
    const length = buf.readUInt32LE(at);
    const type = frameType(buf, at);
    if (length !== 0) {
      this.drop(p, new FrameTooLargeError(`a receiver sent a frame with a ${length}-byte payload (receivers send none)`));
      return;
    }
    if (type === FrameType.Ack) {
      let value: number;
      try {
        value = readValue(buf, at);
      } catch (err) {
        this.drop(p, err as ProtocolError);
        return;
      }
      if (value < p.acked || value > p.sent) {
        this.drop(p, new ProtocolError(`a receiver acknowledged ${value} bytes; ${p.acked}..${p.sent} was possible`));
        return;
      }
      p.acked = value;
      p.wantSent = false;
      if (p.inflight.length > 0) this.settleInflight(p);
      if (p.queued > 0) this.flushPending(p);
      if (this.waiters.size > 0) this.wake();
    } else if (type === FrameType.Bye) {
      this.drop(p);
    } else {
      this.drop(p, new ProtocolError(`unknown frame type 0x${type.toString(16)} from a receiver`));
    }
  }

  private onHello(p: Peer, buf: Buffer, at: number): void {
    clearTimeout(p.handshakeTimer);
    const h = decodeHello(buf, at);
    if (h === null) {
      this.drop(p, new ProtocolError("a connection that is not a Plexus tcp receiver (bad magic)"));
      return;
    }
    if (h.version !== TCP_VERSION) {
      this.refuse(p, WelcomeStatus.Version, new ProtocolError(`a receiver speaks tcp protocol version ${h.version}; this sender speaks ${TCP_VERSION}`));
      return;
    }
    if (!h.reserved || h.policy > P_FAIL || h.heartbeat === 0) {
      this.refuse(p, WelcomeStatus.Malformed, new ProtocolError("a malformed handshake from a receiver"));
      return;
    }
    if (this.active.length >= this.cfg.maxReceivers) {
      this.refuse(p, WelcomeStatus.Full);
      return;
    }
    p.policy = h.policy;
    p.liveness.setPeerHeartbeat(h.heartbeat);
    p.state = PeerState.Active;
    this.active.push(p);
    this.write(p, encodeWelcome({ version: TCP_VERSION, status: WelcomeStatus.Ok, capacity: this.cfg.capacity, maxMessage: this.cfg.maxMessage, startSeq: this.seq, heartbeat: this.cfg.heartbeat }));
  }

  /** Answers a HELLO with a refusal, then hangs up. */
  private refuse(p: Peer, status: WelcomeStatus, err?: PlexusError): void {
    this.write(p, encodeWelcome({ version: TCP_VERSION, status, capacity: 0, maxMessage: 0, startSeq: 0, heartbeat: 0 }));
    p.state = PeerState.Ending;
    this.finishWrites(p);
    p.handshakeTimer = setTimeout(() => this.drop(p), this.cfg.handshakeTimeout);
    p.handshakeTimer.unref();
    if (err) this.cfg.onPeerError?.(err);
  }

  /** Writes END (after which the receiver's stream is over) and finishes the connection. */
  private end(p: Peer): void {
    this.write(p, controlFrame(FrameType.End, this.seq));
    this.deactivate(p);
    p.state = PeerState.Ending;
    this.finishWrites(p);
  }

  private deactivate(p: Peer): void {
    const i = this.active.indexOf(p);
    if (i >= 0) this.active.splice(i, 1);
    // Frames written to a connection that will not acknowledge them may still be read by its
    // socket: never reuse them (they are simply collected). Queued ones were never written.
    for (let k = p.inflightHead; k < p.inflight.length; k++) this.refs.delete(p.inflight[k]);
    for (let k = p.head; k < p.pending.length; k++) if (p.pending[k].length >= POOL_MIN) this.unref(p.pending[k]);
    p.inflight = [];
    p.inflightEnd = [];
    p.inflightHead = 0;
    p.pending = [];
    p.head = 0;
    p.pendingBytes = 0;
  }

  /** Cuts a connection off (receiver left, died, or misbehaved); waiting sends re-check. */
  private drop(p: Peer, err?: PlexusError): void {
    if (p.state === PeerState.Gone) return;
    const wasActive = p.state === PeerState.Active;
    p.state = PeerState.Gone;
    clearTimeout(p.handshakeTimer);
    this.deactivate(p);
    p.socket.destroy();
    if (err) this.cfg.onPeerError?.(err);
    if (wasActive && this.waiters.size > 0) this.wake();
  }

  private onClose(p: Peer): void {
    this.drop(p);
    this.peers.delete(p);
    if (this.closedFlag && this.peers.size === 0) this.finish();
  }

  private tick(): void {
    for (const p of this.peers) {
      if (p.state !== PeerState.Active && p.state !== PeerState.Ending) continue;
      const alive = p.liveness.tick(() => {
        if (p.state === PeerState.Active) this.write(p, PING);
      });
      if (!alive) this.drop(p, new PeerDeadError(`no data or heartbeat from a receiver for ${p.liveness.deadAfterMs} ms`));
    }
  }

  private async shutdown(): Promise<void> {
    this.stopSending(new ClosedError("tcp sender closed while waiting"));
    for (const p of [...this.peers]) {
      if (p.state === PeerState.Handshake) this.drop(p);
      else if (p.state === PeerState.Active) {
        p.draining = true;
        if (p.queued === 0) this.end(p);
        else this.want(p);
      }
    }
    if (this.peers.size === 0) {
      this.finish();
      return;
    }
    this.lingerTimer = setTimeout(() => {
      for (const p of [...this.peers]) this.drop(p);
      this.finish();
    }, this.cfg.linger);
    this.lingerTimer.unref();
  }

  private finish(): void {
    clearInterval(this.ticker);
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
  }
}
