/**
 * A channel: one client <-> server connection that carries request/response messages both ways,
 * over a pair of shared-memory rings (`shm`) or one TCP/TLS socket (`tcp`). Sends never wait:
 * when the ring has no room the message is queued and written, in order, as soon as it does.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { nextTick } from "node:process";
import type { Socket } from "node:net";
import { ClosedError, PeerDeadError, ProtocolError } from "../errors.js";
import type { ShmSender } from "../transport/shm.js";
import type { RingFrame, RingReceiver } from "../transport/ring-endpoints.js";
import { LITTLE_ENDIAN, RPC_HEADER, writeHeader, writeHeaderWords, type Body, type RpcType } from "./wire.js";

/** What holds a received message's memory: `release()` gives it back (idempotent). */
export interface Releasable {
  /** Gives the message's memory back. */
  release(): void;
}

/**
 * Called with each message (header + body) as `bytes[at .. end)` — read in place, no view per
 * message; `frame.release()` gives its memory back. `bytes` is a plain `Uint8Array` (never a
 * `Buffer`), so values decoded from it look the same whatever the transport.
 */
export type MessageHandler = (bytes: Uint8Array, at: number, end: number, frame: Releasable) => void;

/**
 * Told where a request's body was written (shm only): at offset `at` of the memory
 * {@link Channel.ownView} views;
 * `pin` keeps that memory from being reused until {@link Channel.unpin}.
 */
export type Written = (at: number, pin: number) => void;

interface Outgoing {
  type: RpcType;
  id: number;
  aux: number;
  body: Body;
  written?: Written;
}

/** A connection carrying request/response messages. */
export abstract class Channel {
  /** Each message received, in order. */
  onMessage: MessageHandler = (_b, _at, _end, frame) => frame.release();
  /** Called once when the channel ends: `error` says why (undefined after a local `close()`). */
  onEnd: (error: Error | undefined) => void = () => {};
  /** Which transport. */
  abstract readonly kind: "shm" | "tcp";
  /** The shared-memory segment this side created (shm), to register with the GraphServer. */
  get segment(): string | undefined {
    return undefined;
  }
  protected ended = false;
  protected endError: Error | undefined;
  private readonly queue: Outgoing[] = [];
  private draining = false;
  protected readonly stop = new AbortController();
  private holding = false;
  /** Set by every {@link send}: the receive side uses it to know its owner's code has run. */
  protected sent = false;
  /** Called when messages waiting to be written went out (the backlog shrank). */
  onDrain: () => void = () => {};

  /** True once the channel ended. */
  get closed(): boolean {
    return this.ended;
  }

  /** True while {@link pause} holds incoming messages back. */
  get paused(): boolean {
    return this.holding;
  }

  /** Messages sent and not yet handed to the transport (waiting for ring room). */
  get backlog(): number {
    return this.queue.length;
  }

  /** True while the transport holds more unsent bytes than it should (tcp: past the socket's high-water mark). */
  get congested(): boolean {
    return this.transportFull();
  }

  /**
   * Stops delivering incoming messages (they stay in the ring or the socket, so the peer is
   * slowed down by the transport's own backpressure) until {@link resume}.
   */
  pause(): void {
    if (this.holding) return;
    this.holding = true;
    this.onPause();
  }

  /** Delivers incoming messages again. */
  resume(): void {
    if (!this.holding) return;
    this.holding = false;
    this.onResume();
  }

  /** Transport part of {@link congested}. */
  protected transportFull(): boolean {
    return false;
  }
  /** Transport hook of {@link pause}. */
  protected abstract onPause(): void;
  /** Transport hook of {@link resume}. */
  protected abstract onResume(): void;

  /**
   * Sends a message; over shm `written` is told where its body was written, pinned (in-place
   * requests). Throws if the channel ended or the message cannot fit (`FrameTooLargeError`).
   */
  send(type: RpcType, id: number, aux: number, body: Body, written?: Written): void {
    if (this.ended) throw this.endError ?? new ClosedError("the request/response channel is closed");
    this.sent = true;
    if (this.queue.length === 0 && this.trySend(type, id, aux, body, written)) return;
    this.queue.push({ type, id, aux, body, written });
    if (!this.draining) void this.drain();
  }

  /** Lets the transport reuse the memory of a body `written` pinned (in-place answers). Idempotent. */
  unpin(_pin: number): void {}

  /**
   * Delivers, synchronously, the messages that are ready or arrive while the transport polls
   * (its spin budget). For a client right after a lone request: the answer is taken in the
   * same turn, as a raw ring round trip would. Nothing over TCP.
   */
  poll(): void {}

  /** Makes sure incoming messages are taken without {@link poll} (a request not followed by one). */
  wakeReader(): void {}

  /**
   * A view of `length` bytes at offset `at` of the memory this side writes its messages into
   * (shm: its ring), where `written` offsets point; undefined without such memory (tcp).
   */
  ownView(_at: number, _length: number): Uint8Array | undefined {
    return undefined;
  }

  /** Ends the channel (messages not yet written are dropped). Idempotent. */
  async close(): Promise<void> {
    if (!this.ended) this.end(undefined);
    await this.teardown();
  }

  /** Ends the channel because of `error` (the owner's `onEnd` gets it), then frees it. */
  async fail(error: Error): Promise<void> {
    if (!this.ended) this.end(error);
    await this.teardown();
  }

  /** Writes now if there is room; false if not (then the caller queues). */
  protected abstract trySend(type: RpcType, id: number, aux: number, body: Body, written?: Written): boolean;
  /** Writes, waiting for room. */
  protected abstract sendWait(m: Outgoing): Promise<void>;
  /** Frees transport resources. */
  protected abstract teardown(): Promise<void>;

  /** Marks the channel ended and tells the owner once. */
  protected end(error: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.queue.length = 0;
    this.stop.abort();
    this.resume(); // a paused receive loop sees the end
    this.onEnd(error);
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.ended) {
        const m = this.queue[0];
        await this.sendWait(m);
        this.queue.shift();
        this.onDrain();
      }
    } catch (err) {
      this.end(this.ended ? this.endError : asPeerDead(err));
    } finally {
      this.draining = false;
    }
  }
}

function asPeerDead(err: unknown): Error {
  return err instanceof PeerDeadError ? err : new PeerDeadError("the request/response peer stopped reading", { cause: err });
}

/** Writes one message (header + body) at `target[at ..]`. */
function fill(target: Uint8Array, at: number, type: RpcType, id: number, aux: number, b: Body): void {
  writeHeader(target, at, type, b.flags, id, aux);
  b.writeTo(target, at + RPC_HEADER);
}

/** Most microtask turns the shm pump yields after delivering messages, before it polls again. */
const YIELD_TURNS = 8;

/** A channel over two shared-memory rings and a Unix socket that reports the peer's death. */
export class ShmChannel extends Channel {
  readonly kind = "shm";
  private closing: Promise<void> | undefined;
  /** The buffer of this side's ring (whose bytes start at its offset 0). */
  private readonly own: ArrayBufferLike;
  /** Resumes a pump waiting while paused or while its owner polls. */
  private wake: (() => void) | undefined;
  /** The owner takes messages itself ({@link poll} found one): the pump waits until woken. */
  private inline = false;
  /** The pump sleeps in the ring (the peer rings on each message): no {@link poll} then. */
  private sleeping = false;
  private polling = false;
  /** Messages the last delivery handed over (pump or poll): more than one woke several callers. */
  private lastBatch = 0;

  /**
   * @param tx - this side's ring (the peer reads it)
   * @param rx - the peer's ring
   * @param control - the handshake socket, kept open: its end is the peer's end
   */
  constructor(
    private readonly tx: ShmSender,
    private readonly rx: RingReceiver,
    private readonly control: Socket,
  ) {
    super();
    this.own = tx.ringBytes.buffer;
    control.on("error", () => control.destroy());
    control.on("close", () => {
      this.deliverRest(); // what the peer wrote before it went away still counts
      this.end(new PeerDeadError("the request/response peer closed the connection or died"));
    });
    // After the handshake neither side writes on it: bytes there are a broken peer.
    control.on("data", () => {
      if (!this.ended) void this.fail(new ProtocolError("the request/response peer wrote on the handshake socket after the handshake"));
    });
    control.resume();
    void this.pump();
  }

  override get segment(): string {
    return this.tx.address.name;
  }

  protected onPause(): void {}

  protected onResume(): void {
    this.unpark();
  }

  private unpark(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  override poll(): void {
    // Not while the pump sleeps in the ring: it would stay asleep there, and the peer would
    // ring for every message. Not after a delivery of several messages either: the callers it
    // woke are about to send, and polling now would make each wait for the one before.
    if (this.ended || this.paused || this.sleeping || this.polling) return;
    if (this.lastBatch > 1) return this.wakeReader();
    this.polling = true;
    try {
      const f = this.rx.trySpinReceive();
      if (f === null) {
        this.wakeReader(); // not within the budget: the pump waits for it
        return;
      }
      this.inline = true;
      this.deliver(f);
    } catch (err) {
      this.broken(err);
    } finally {
      this.polling = false;
    }
  }

  override wakeReader(): void {
    if (!this.inline) return;
    this.inline = false;
    this.unpark();
  }

  protected override end(error: Error | undefined): void {
    super.end(error);
    this.unpark(); // a pump parked while its owner polled sees the end
  }

  private broken(err: unknown): void {
    if (!this.ended) this.end(err instanceof PeerDeadError ? err : new PeerDeadError("the request/response ring failed", { cause: err }));
  }

  /** Delivers every message already in the ring. */
  private deliverRest(): void {
    if (this.ended) return;
    try {
      const bytes = this.rx.ringBytes;
      for (let f = this.rx.tryReceive(); f !== null && !this.ended; f = this.rx.tryReceive()) this.onMessage(bytes, f.at, f.at + f.length, f);
    } catch {
      // the ring is unusable: nothing more to deliver
    }
  }

  /** Delivers `f` and the messages after it already in the ring (until paused or ended). */
  private deliver(f: RingFrame | null): void {
    const rx = this.rx;
    const bytes = rx.ringBytes;
    let n = 0;
    while (f !== null) {
      n++;
      this.onMessage(bytes, f.at, f.at + f.length, f);
      if (this.ended) return;
      f = this.paused ? null : rx.tryReceive();
    }
    this.lastBatch = n;
  }

  private async pump(): Promise<void> {
    const rx = this.rx;
    try {
      for (;;) {
        if (this.paused || this.inline) {
          // Held back, or the owner polls after each request (no turn of ours in its way).
          await new Promise<void>((resolve) => (this.wake = resolve));
          if (this.ended) return;
          continue;
        }
        // Ready, or arriving while the ring polls (adaptive spin): delivered in this same turn,
        // no promise in between. Otherwise sleep until the peer rings.
        let f = rx.trySpinReceive();
        if (f === null) {
          this.sleeping = true;
          try {
            f = await rx.sleepReceive();
          } finally {
            this.sleeping = false;
          }
          if (f === null) break;
        }
        this.sent = false;
        this.deliver(f);
        if (this.ended) return;
        // Let the code these messages woke run before polling again: a poll now would spin
        // while that code waits for the thread. Yield microtask turns until it sent something
        // through this channel (the next request, an answer: what the peer will answer) or a
        // few turns passed, which covers the usual chains (resolve -> then -> await) without a
        // trip round the event loop. A synchronous handler has already answered: no yield.
        for (let i = 0; i < YIELD_TURNS && !this.sent; i++) await undefined;
        if (this.ended) return;
      }
      this.end(new PeerDeadError("the request/response peer closed its ring"));
    } catch (err) {
      this.broken(err);
    }
  }

  protected trySend(type: RpcType, id: number, aux: number, body: Body, written?: Written): boolean {
    // Straight into the ring's memory: no loan object, no view per message.
    const tx = this.tx;
    const size = RPC_HEADER + body.size;
    const at = tx.tryReserve(size);
    if (at < 0) return false;
    let pin = -1;
    try {
      if (LITTLE_ENDIAN) {
        writeHeaderWords(tx.ringWords, at >> 2, type, body.flags, id, aux);
        body.writeTo(tx.ringBytes, at + RPC_HEADER);
      } else {
        fill(tx.ringBytes, at, type, id, aux, body);
      }
      if (written !== undefined) pin = tx.pinReserved();
    } catch (err) {
      tx.abortReserved();
      throw err;
    }
    tx.commitReserved(size);
    if (written !== undefined) written(at + RPC_HEADER, pin);
    return true;
  }

  protected async sendWait(m: Outgoing): Promise<void> {
    const loan = await this.tx.loan(RPC_HEADER + m.body.size, { timeout: 2 ** 31 - 1, signal: this.stop.signal });
    let pin = -1;
    try {
      fill(loan.bytes, 0, m.type, m.id, m.aux, m.body);
      if (m.written !== undefined) pin = this.tx.pinReserved();
    } catch (err) {
      loan.abort();
      throw err;
    }
    loan.commit();
    m.written?.(loan.bytes.byteOffset + RPC_HEADER, pin);
  }

  /**
   * The client's in-place answers live in its own request ring: the server released their
   * frames when it answered, the pin is what keeps this side's writer off them.
   */
  override unpin(pin: number): void {
    if (pin >= 0) this.tx.unpin(pin);
  }

  override ownView(at: number, length: number): Uint8Array {
    // (A view made on the buffer costs less than a subarray: no getters of the parent to read.)
    return new Uint8Array(this.own, at, length);
  }

  protected teardown(): Promise<void> {
    this.closing ??= (async () => {
      this.control.destroy();
      await this.rx.close().catch(() => {});
      await this.tx.close().catch(() => {});
    })();
    return this.closing;
  }
}

/** A channel over one TCP (or TLS) socket: frames are a u32 length and the message. */
export class TcpChannel extends Channel {
  readonly kind = "tcp";
  private chunks: Buffer[] = [];
  private buffered = 0;
  private corked = false;
  /** Writes of one turn go out together (one writev instead of one syscall per message). */
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /**
   * @param socket - the connected socket, after the handshake
   * @param maxMessage - largest message accepted from the peer (checked before allocating)
   * @param rest - bytes that arrived after the handshake
   */
  constructor(
    private readonly socket: Socket,
    private readonly maxMessage: number,
    rest?: Buffer,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.onDrain());
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.end(new PeerDeadError("the request/response peer closed the connection or died")));
    if (rest !== undefined && rest.length > 0) queueMicrotask(() => this.onData(rest));
  }

  protected override transportFull(): boolean {
    return this.socket.writableNeedDrain;
  }

  protected onPause(): void {
    this.socket.pause();
  }

  protected onResume(): void {
    this.socket.resume();
    queueMicrotask(() => this.parse()); // frames that came with the chunk that paused us
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.parse();
  }

  /** Delivers every whole frame buffered (until paused). */
  private parse(): void {
    // One plain view per chunk, not per message: frames are read in place at their offsets.
    let plain: Uint8Array = EMPTY_BYTES;
    let plainOf: ArrayBufferLike | undefined;
    while (this.buffered >= 4 && !this.ended && !this.paused) {
      let head = this.chunks[0];
      if (head.length < 4) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const length = head.readUInt32LE(0);
      if (length > this.maxMessage || length < RPC_HEADER) {
        this.end(new PeerDeadError(`the request/response peer sent a frame of ${length} bytes (allowed ${RPC_HEADER}..${this.maxMessage}); connection dropped`));
        this.socket.destroy();
        return;
      }
      if (this.buffered < 4 + length) return;
      if (head.length < 4 + length) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const ab = head.buffer;
      if (ab !== plainOf) {
        plain = new Uint8Array(ab);
        plainOf = ab;
      }
      const at = head.byteOffset + 4;
      const rest = head.subarray(4 + length);
      if (rest.length > 0) this.chunks[0] = rest;
      else this.chunks.shift();
      this.buffered -= 4 + length;
      this.onMessage(plain, at, at + length, NOTHING_HELD);
    }
  }

  protected trySend(type: RpcType, id: number, aux: number, body: Body): boolean {
    if (this.socket.destroyed) throw this.endError ?? new PeerDeadError("the request/response connection is gone");
    const frame = Buffer.allocUnsafe(4 + RPC_HEADER + body.size);
    frame.writeUInt32LE(RPC_HEADER + body.size, 0);
    fill(frame, 4, type, id, aux, body);
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      nextTick(this.uncork);
    }
    this.socket.write(frame);
    return true;
  }

  protected sendWait(m: Outgoing): Promise<void> {
    this.trySend(m.type, m.id, m.aux, m.body);
    return Promise.resolve();
  }

  protected async teardown(): Promise<void> {
    const socket = this.socket;
    if (socket.destroyed) return;
    // What was written goes out (answers of a closing server), then the connection ends.
    if (this.corked) this.uncork();
    socket.end();
    if (socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), 1000);
      timer.unref();
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const EMPTY_BYTES = new Uint8Array(0);

/** TCP messages are ordinary memory: nothing to give back. */
const NOTHING_HELD: Releasable = { release() {} };
