/**
 * A channel: one client <-> server connection that carries request/response messages both ways,
 * over a pair of shared-memory rings (`shm`, `ShmChannel` in shm-channel.ts) or one TCP/TLS
 * socket (`tcp`, `TcpChannel` in tcp-channel.ts). This is what both share: delivery to the
 * owner, pause/resume, and the send queue. Sends never wait: when the transport has no room the
 * message is queued and written, in order, as soon as it does.
 * (Internal: not part of the public API.)
 * @module
 */
import { ClosedError, PeerDeadError } from "../errors.js";
import type { Body, RpcType } from "./wire.js";

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

/** A message waiting for room in the transport. */
export interface Outgoing {
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

  /**
   * The owner has set {@link onMessage} and {@link onEnd}: what arrived together with the
   * handshake (a peer may send its first requests right after its hello) is delivered now,
   * not before. Call it once.
   */
  start(): void {}
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
