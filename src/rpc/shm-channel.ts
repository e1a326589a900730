/**
 * The shm channel: two shared-memory rings (one per direction) and the Unix socket of the
 * handshake, whose end is the peer's end. The hot path of a request over shm runs here.
 * (Internal: not part of the public API.)
 * @module
 */
import type { Socket } from "node:net";
import { PeerDeadError, ProtocolError } from "../errors.js";
import type { ShmSender } from "../transport/shm.js";
import type { RingFrame, RingReceiver } from "../transport/ring-endpoints.js";
import { Channel, type Outgoing, type Written } from "./channel.js";
import { isRingMessage, LITTLE_ENDIAN, RPC_HEADER, writeHeaderWords, writeMessage, type Body, type RpcType } from "./wire.js";

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

  /**
   * Hands the ring frame `f` to the owner if it is a request/response message (its magic; the
   * owner checks the rest of the header), else ends the channel: the peer is broken.
   */
  private take(bytes: Uint8Array, f: RingFrame): void {
    const at = f.at;
    const end = at + f.length;
    if (isRingMessage(bytes, at, end)) return this.onMessage(bytes, at, end, f);
    f.release();
    if (!this.ended) void this.fail(new ProtocolError("not a Plexus request/response message (bad magic or shorter than a header)"));
  }

  /** Delivers every message already in the ring. */
  private deliverRest(): void {
    if (this.ended) return;
    try {
      const bytes = this.rx.ringBytes;
      for (let f = this.rx.tryReceive(); f !== null && !this.ended; f = this.rx.tryReceive()) this.take(bytes, f);
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
      this.take(bytes, f);
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
        writeMessage(tx.ringBytes, at, type, id, aux, body);
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
      writeMessage(loan.bytes, 0, m.type, m.id, m.aux, m.body);
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
