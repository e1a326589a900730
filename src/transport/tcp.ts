/**
 * The `tcp` transport: one sender, many receivers, each receiver a TCP (optionally TLS)
 * connection. Framed (the 16-byte frame of every Plexus connection, a sequence number in its
 * header, after the common versioned handshake), `TCP_NODELAY`, writes of a tick coalesced into
 * one vectored write per socket, one encoded frame per message written to every socket. Backpressure per receiver is credit-based:
 * the receiver acknowledges frames as it *releases* them, so `block` means exactly what it means
 * on a ring. Plain TCP is allowed only on loopback unless the user opts out explicitly. The wire
 * format is specified in docs/protocol.md §5.
 *
 * This file holds `TcpSender`, the fan-out: options, encoding each message once and handing it
 * to every active connection, waits for room, loans, close. Each connection is a `Peer`
 * (`tcp-peer.ts`); listening, accepting and the handshake answer are `tcp-listener.ts`; the
 * buffers the connections share for writing are `tcp-outbox.ts`, the pool of large frames
 * `tcp-pool.ts`, the wire format `tcp-wire.ts`; the receiving end is `tcp-receiver.ts`.
 * @module
 */
import type { Server } from "node:net";
import { BackpressureError, ClosedError, FrameTooLargeError, InvalidArgumentError, TimeoutError, type PlexusError } from "../errors.js";
import { checkOptions, checkTimeout, contained, type BlockingOptions } from "../util/blocking.js";
import { WaitList } from "../util/wait.js";
import type { Loan, Sender } from "./transport.js";
import { listenForReceivers, TcpListener } from "./tcp-listener.js";
import { Outbox, SMALL } from "./tcp-outbox.js";
import { P_DROP, P_FAIL, type Peer, type SenderConfig } from "./tcp-peer.js";
import { FramePool, FrameRefs, POOL_MIN } from "./tcp-pool.js";
import type { TcpAddress, TcpTlsOptions } from "./tcp-receiver.js";
import { FRAME_HEADER as HEADER_BYTES, writeFrameHeader64 } from "../net/frame.js";
import { FrameType, frameBytes, MAX_WINDOW, MIN_WINDOW } from "./tcp-wire.js";
import { readOptions } from "../util/options.js";
import { hostPort } from "../net/listen.js";
import { closeLinger, DEFAULT_LINGER, warnDropped, type CloseOptions } from "../util/linger.js";
import { MAX_TIMER_MS } from "../util/options.js";

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
  /**
   * `close()` waits this long (ms, default 2000) for every receiver to take what was sent to it
   * and the end of the stream; receivers that have not are then cut off, with a process warning
   * (`PLEXUS_LINGER`) saying how many bytes they had not acknowledged. `0`: cut off at once.
   */
  linger?: number;
  /** Told why a receiver was cut off (protocol violation, silence); the sender keeps serving the others. A throw in it is contained (it does not stop the sender). */
  onPeerError?: (err: PlexusError) => void;
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
  /** Accepts the receivers and holds their connections. */
  private readonly listener: TcpListener;
  /** The receivers that get messages (the listener's list). */
  private readonly active: Peer[];
  private seq = 1;
  /** Sends and loans waiting for room, in order; each keeps the attempt that takes its room. A wait that gave up lets the next one try. */
  private readonly waiters = new WaitList<void, () => boolean>((w) => {
    if (w.rejected) this.wake();
  });
  private waking = false;
  private loanOpen = false;
  private closedFlag = false;
  private closing: Promise<void> | undefined;
  /** Large frames, reused once every receiver released them. */
  private readonly pool: FramePool;
  /** Holders of pooled frames in flight: one per receiver it was written to or queued for. */
  private readonly refs: FrameRefs;
  /** Where small frames are encoded before being copied into each connection's batch. */
  private readonly scratch: Buffer;

  private constructor(
    server: Server,
    address: TcpAddress,
    private readonly cfg: SenderConfig,
  ) {
    this.address = address;
    this.pool = new FramePool(Math.min(2 * cfg.capacity, 64 << 20));
    this.refs = new FrameRefs(this.pool);
    const out = new Outbox(this.refs);
    this.scratch = out.scratch;
    this.listener = new TcpListener(
      server,
      address.tls,
      cfg,
      out,
      () => this.seq,
      () => {
        if (this.waiters.size > 0) this.wake();
      },
    );
    this.active = this.listener.active;
    this.label = `the tcp sender at ${hostPort(address.host, address.port)}`;
    this.listener.onCutOff = (receivers, bytes, lingerMs) =>
      warnDropped(
        `${this.label} closed: ${receivers === 1 ? "1 receiver" : `${receivers} receivers`} had not taken the end of the stream within the linger of ${lingerMs} ms and ${receivers === 1 ? "was" : "were"} cut off${bytes > 0 ? `; ${bytes} bytes sent to ${receivers === 1 ? "it" : "them"} were not acknowledged and may be lost` : ""}`,
      );
  }

  /** @internal What warnings call this sender ("the publisher on "t""); by default "the tcp sender at host:port". */
  label: string;

  /**
   * Listens and returns the sender. Rejects with `AccessDeniedError` for a non-loopback `host`
   * without `tls` or `allowInsecure`, `InvalidArgumentError` for bad options or TLS material,
   * `SystemError` if the address cannot be bound (e.g. `EADDRINUSE`).
   */
  static async create(opts: TcpSenderOptions = {}): Promise<TcpSender> {
    const o = readOptions("TcpSender.create", opts);
    const host = o.string("host", 1) ?? "127.0.0.1";
    const port = o.int("port", 0, 0, 65535);
    const tls = o.object("tls", "an object of certificate options");
    const allowInsecure = o.bool("allowInsecure", false);
    const capacity = o.int("capacity", 1 << 20, MIN_WINDOW, MAX_WINDOW);
    const cfg: SenderConfig = {
      capacity,
      maxMessage: o.int("maxMessage", Math.floor(capacity / 2) - HEADER_BYTES, 0, (capacity & ~15) - HEADER_BYTES),
      maxReceivers: o.int("maxReceivers", 64, 1, 65536),
      timeout: o.timeout("timeout", 5000),
      heartbeat: o.ms("heartbeat", 1000),
      peerTimeout: o.ms("peerTimeout", 10000),
      handshakeTimeout: o.ms("handshakeTimeout", 5000),
      linger: o.number("linger", DEFAULT_LINGER, 0, MAX_TIMER_MS),
      onPeerError: contained(o.func("onPeerError")),
    };
    const { server, address } = await listenForReceivers(host, port, tls, allowInsecure, cfg);
    return new TcpSender(server, address, cfg);
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
   * Ends the stream: no more sends (waiting ones reject with `ClosedError`); every receiver gets
   * what was sent to it (a `drop-oldest` receiver's queue included, as it releases), then the
   * end. Resolves once every receiver has taken it all, or after `linger` ms (the option, or
   * `opts.linger`; 0: at once), when the receivers still connected — a stopped or stuck process —
   * are cut off, with a process warning (`PLEXUS_LINGER`) saying how many bytes they had not
   * acknowledged. Idempotent; a later call with a shorter `linger` shortens the wait.
   */
  close(opts?: CloseOptions): Promise<void> {
    let linger: number;
    try {
      linger = closeLinger(opts, this.cfg.linger);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closing === undefined) this.closing = this.shutdown(linger);
    else this.listener.cutAfter(linger);
    return this.closing;
  }

  /** Drops every connection now: receivers get what already arrived, then `PeerDeadError`. */
  destroy(): void {
    this.closing ??= Promise.resolve();
    this.stopSending(new ClosedError("tcp sender destroyed"));
    this.listener.destroy();
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
      p.want();
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
    writeFrameHeader64(frame, 0, len, FrameType.Data, seq);
    const cap = this.cfg.capacity;
    const total = frame.length;
    const pooled = total >= POOL_MIN;
    if (pooled) this.refs.hold(frame); // held while being handed out
    for (const p of this.active) {
      if (p.policy === P_DROP && (p.queued > 0 || p.sent - p.acked + total > cap)) p.enqueue(frame);
      else p.writeData(frame);
    }
    if (pooled) this.refs.unref(frame);
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
    this.listener.stop();
  }

  private async shutdown(linger: number): Promise<void> {
    this.stopSending(new ClosedError("tcp sender closed while waiting"));
    await this.listener.drain(linger);
  }
}
