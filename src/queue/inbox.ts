/**
 * The receiving side of a queue endpoint: messages from every peer in arrival order, bounded
 * in count and bytes. A message that does not fit is parked unacknowledged (its sender keeps
 * the slot, so parking is bounded by the peers' slots) and taken in when room frees up. A
 * client's lost session leaves a break in the stream: the get that reaches it is told, and
 * the messages of the next session follow.
 * (Internal: not part of the public API.)
 * @module
 */
import { ClosedError, PlexusError, TimeoutError } from "../errors.js";
import { decode } from "../codec/index.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { WaitList } from "../util/wait.js";
import type { Session } from "./session.js";
import { encodeNack, FLAG_RELIABLE, NackReason } from "./wire.js";

/** Identifies a peer of a queue endpoint: its 16-byte identity in hex. */
export type PeerId = string;

/** A message taken from a queue. */
export interface QueueMessage<T = unknown> {
  /** The decoded value. Typed arrays in it are views of the received frame (no copy). */
  readonly value: T;
  /** Who sent it: pass it to `server.put(reply, peer)` to answer that client. */
  readonly peer: PeerId;
  /** Size of the encoded message in bytes. */
  readonly byteLength: number;
  /**
   * Releases the message. A `reliable` sender's put resolves only now; for `fast` messages
   * this does nothing. Iteration releases each message when the loop moves on. Idempotent.
   */
  release(): void;
  /** Same as {@link release} (for `using`). */
  [Symbol.dispose](): void;
}

class Message implements QueueMessage {
  private released = false;
  constructor(
    readonly value: unknown,
    readonly peer: PeerId,
    readonly byteLength: number,
    private readonly session: Session | undefined,
    private readonly serial: number,
    private readonly gen: number,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.session?.ack(this.serial, this.gen);
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

interface Arrival {
  session: Session;
  serial: number;
  gen: number;
  reliable: boolean;
  value: unknown;
  bytes: number;
}

/** Limits of an inbox. */
export interface InboxLimits {
  /** Messages held before parking. */
  maxQueue: number;
  /** Bytes held before parking. */
  maxQueueBytes: number;
  /** Default `get` timeout (Infinity: none). */
  timeout: number;
}

/**
 * What a get takes: a message, or the error that ends the stream there (this end closed, or a
 * client's session was lost).
 */
export type Taken = QueueMessage | PlexusError;

/** An endpoint's queue of received messages. */
export class Inbox {
  /** Messages, and the breaks of lost sessions between them. */
  private items: (Message | PlexusError)[] = [];
  private head = 0;
  private bytes = 0;
  /** Breaks held in `items`. */
  private breaks = 0;
  private parked: Arrival[] = [];
  private readonly waiters = new WaitList<Taken>();
  private ended: PlexusError | undefined;
  /** Largest `bytes` held so far. */
  peakBytes = 0;

  /** @param limits - bounds and default timeout */
  constructor(private readonly limits: InboxLimits) {}

  /** Messages held (not parked). */
  get size(): number {
    return this.items.length - this.head - this.breaks;
  }

  /** True if a take would not wait: a message or a break is held, or the inbox ended. */
  get ready(): boolean {
    return this.items.length > this.head || this.ended !== undefined;
  }

  /** Pending `get` calls. */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Messages parked for lack of room. */
  get parkedCount(): number {
    return this.parked.length;
  }

  /** A DATA payload arrived from `session`. */
  offer(session: Session, serial: number, flags: number, payload: Buffer): void {
    if (this.ended !== undefined) {
      // Closed: nobody will take it; the sender must learn that.
      session.nack(serial, session.generation, encodeNack(serial, NackReason.Closed, "queue closed"));
      return;
    }
    let value: unknown;
    try {
      value = decode(payload);
    } catch (err) {
      session.nack(serial, session.generation, encodeNack(serial, NackReason.Malformed, err instanceof Error ? err.message : String(err)));
      return;
    }
    const a: Arrival = { session, serial, gen: session.generation, reliable: (flags & FLAG_RELIABLE) !== 0, value, bytes: payload.length };
    if (this.parked.length > 0 || !this.fits(a.bytes)) this.parked.push(a);
    else this.admit(a);
  }

  /**
   * Takes the next message, waiting as `opts` allow; the error of a break (a client's lost
   * session) when it comes to one, and the inbox's own once it ended and is empty.
   */
  take(opts: BlockingOptions): Promise<Taken> {
    try {
      checkOptions(opts, "get");
    } catch (err) {
      return Promise.reject(err);
    }
    const m = this.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.ended !== undefined) return Promise.resolve(this.ended);
    const timeout = opts.timeout ?? this.limits.timeout;
    return this.waiters.wait({ timeout, signal: opts.signal, what: "get", timeoutError: () => new TimeoutError(`get: no message within ${timeout} ms`) });
  }

  /**
   * No more messages will come: waiting gets take `err` (and later ones, once the inbox is
   * empty); parked messages are refused so their senders learn it.
   */
  end(err: PlexusError = new ClosedError("queue is closed")): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    for (const a of this.parked) a.session.nack(a.serial, a.gen, encodeNack(a.serial, NackReason.Closed, "queue closed"));
    this.parked = [];
    this.waiters.wakeAll(err);
  }

  /**
   * A client's session was lost (`err`): the stream breaks here. Gets waiting now take `err`;
   * if none waits, the first get that reaches this point (after the messages held) does. Later
   * messages (of the next session) follow the break; breaks with no message between them are
   * one.
   */
  interrupt(err: PlexusError): void {
    if (this.ended !== undefined) return;
    if (this.waiters.size > 0) {
      this.waiters.wakeAll(err);
      return;
    }
    if (this.items.length > this.head && this.items[this.items.length - 1] instanceof PlexusError) return;
    this.items.push(err);
    this.breaks++;
  }

  /** Refuses the parked messages of a session that ended (their puts reject at the sender). */
  forget(session: Session): void {
    this.parked = this.parked.filter((a) => a.session !== session);
    this.unpark();
  }

  private fits(bytes: number): boolean {
    return this.size === 0 || (this.size < this.limits.maxQueue && this.bytes + bytes <= this.limits.maxQueueBytes);
  }

  private admit(a: Arrival): void {
    const m = new Message(a.value, a.session.id, a.bytes, a.reliable ? a.session : undefined, a.serial, a.gen);
    if (!a.reliable) a.session.ack(a.serial, a.gen);
    if (this.waiters.wakeOne(m)) return;
    this.items.push(m);
    this.bytes += a.bytes;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
  }

  private shift(): Taken | undefined {
    if (this.head === this.items.length) return undefined;
    const m = this.items[this.head];
    this.items[this.head++] = undefined as unknown as Message;
    if (m instanceof PlexusError) this.breaks--;
    else this.bytes -= m.byteLength;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.unpark();
    return m;
  }

  private unpark(): void {
    while (this.parked.length > 0 && this.fits(this.parked[0].bytes)) {
      const a = this.parked.shift()!;
      if (a.session.dead !== undefined) continue;
      this.admit(a);
    }
  }

}

