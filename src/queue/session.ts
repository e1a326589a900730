/**
 * A session: the state two queue endpoints share across reconnections — serials both ways,
 * the messages in flight (sent, not yet acknowledged) and waiting for a slot, and the serials
 * received but not yet acknowledged. A link (connection) is attached to it; when the link
 * drops, the session waits for the same peer to come back, resends what was in flight, and the
 * receiver drops the duplicates.
 * (Internal: not part of the public API.)
 * @module
 */
import { BackpressureError, errorFromWire, FrameTooLargeError, PeerDeadError, ProtocolError } from "../errors.js";
import type { Link } from "./link.js";
import type { Entry } from "./put.js";
import { header, type Header, NackReason, QFrame, serialDiff, writeHeader } from "./wire.js";

/**
 * Refusals remembered per session. A peer resends at most its slots' worth of DATA after a
 * reconnection, so this many recent refusals cover every resend but for a peer with more than
 * this many messages refused while one waited unanswered for the whole time.
 */
const REFUSALS_KEPT = 4096;

/** What a session needs from its endpoint. */
export interface SessionHost {
  /** A new DATA frame arrived (not a duplicate). @internal */
  deliver(s: Session, serial: number, flags: number, payload: Buffer): void;
  /** The peer said BYE. @internal */
  bye(s: Session, flags: number): void;
}

/** Limits of a session's outgoing side. */
export interface SessionLimits {
  /** Unacknowledged DATA frames at once toward the peer. */
  slots: number;
  /** Puts waiting for a slot before `BackpressureError`. */
  maxPending: number;
}

/** The peer's error for a NACK. */
function nackError(reason: number, text: string): Error {
  if (reason === NackReason.Malformed) return new ProtocolError(`the peer refused the message as malformed: ${text}`);
  if (reason === NackReason.Failed) {
    const space = text.indexOf(" ");
    const code = space < 0 ? text : text.slice(0, space);
    if (/^ERR_PLEXUS[A-Z_]*$/.test(code)) return errorFromWire(code, `the peer could not handle the message: ${space < 0 ? code : text.slice(space + 1)}`);
  }
  return new PeerDeadError(`the peer closed before taking the message${text ? `: ${text}` : ""}`);
}

/** One peer's session. */
export class Session {
  /** The current connection, if any. */
  link: Link | undefined;
  /** Incremented when the session restarts (serials reset): acks of older messages are void. */
  generation = 0;
  /** Largest message the peer accepts. */
  peerMaxMessage = 0;
  /** DATA frames the peer may have unacknowledged toward us. */
  peerSlots = 1;
  /** `performance.now()` of the last DATA either way. */
  lastData = performance.now();
  /** Set once the session is over. */
  dead: Error | undefined;
  /** Server side: the client's session token (hex) that names this session under its identity. */
  token = "";
  /**
   * Server side: tokens of earlier sessions under this identity that were taken over (most
   * recent last, a few at most): a client coming back with one of them is refused.
   */
  superseded: readonly string[] = [];
  private nextSerial = 1;
  private readonly inflight = new Map<number, Entry>();
  private waiting: Entry[] = [];
  private waitHead = 0;
  private lastIn = 0;
  private readonly unacked = new Set<number>();
  /**
   * The NACK frames of the serials this end refused, by serial, the last {@link REFUSALS_KEPT}:
   * a NACK lost with a connection makes the peer resend that DATA, which must be refused again
   * (an ACK would report as delivered a message the application never got).
   */
  private readonly refused = new Map<number, Buffer>();

  /**
   * @param identity - the peer's 16-byte identity
   * @param host - the endpoint
   * @param limits - slots and pending bound
   */
  constructor(
    readonly identity: Buffer,
    private readonly host: SessionHost,
    readonly limits: SessionLimits,
  ) {
    this.id = identity.toString("hex");
  }

  /** The peer's id (hex identity). */
  id: string;

  /** Messages sent and not yet acknowledged, plus those waiting for a slot. */
  get outstanding(): number {
    return this.inflight.size + this.waiting.length - this.waitHead;
  }

  /** Received messages not yet acknowledged. */
  get unacknowledged(): number {
    return this.unacked.size;
  }

  /** Queues one message for the peer; a refusal rejects the entry's put. */
  send(e: Entry): void {
    if (this.dead) return e.op.fail(this.dead);
    if (this.peerMaxMessage > 0 && e.bytes > this.peerMaxMessage) {
      return e.op.fail(new FrameTooLargeError(`message of ${e.bytes} bytes exceeds the peer's limit of ${this.peerMaxMessage} bytes`));
    }
    const waits = this.waiting.length - this.waitHead;
    const slotFree = waits === 0 && this.link !== undefined && !this.link.closed && this.inflight.size < this.limits.slots;
    if (waits >= this.limits.maxPending && !slotFree) {
      return e.op.fail(new BackpressureError(`${this.limits.maxPending} puts already wait for a slot toward this peer`));
    }
    this.waiting.push(e);
    this.pump();
  }

  /** Writes waiting messages while slots are free. */
  pump(): void {
    const link = this.link;
    if (link === undefined || link.closed) return;
    while (this.inflight.size < this.limits.slots && this.waitHead < this.waiting.length) {
      const e = this.waiting[this.waitHead++];
      if (e.op.settled) continue;
      const serial = this.nextSerial;
      this.nextSerial = (this.nextSerial + 1) >>> 0 || 1;
      this.inflight.set(serial, e);
      this.writeData(link, e, serial);
      this.lastData = performance.now();
    }
    if (this.waitHead > 64 && this.waitHead * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.waitHead);
      this.waitHead = 0;
    }
  }

  /**
   * Writes DATA `serial`: the header goes into the room at the start of the first chunk. A put
   * to many peers shares its chunks, and a socket holds a written buffer until it is flushed, so
   * every write but the first puts its header on a copy of that (small) first chunk.
   */
  private writeData(link: Link, e: Entry, serial: number): void {
    const first = e.chunks[0] as Buffer;
    let head = first;
    if (e.op.written++ > 0) head = Buffer.from(first); // another peer's write may still hold the shared buffer
    writeHeader(head, 0, e.bytes, QFrame.Data, e.flags, serial);
    link.write(head === first ? e.chunks : [head, ...e.chunks.slice(1)]);
  }

  /** Handles a frame from the peer (after the handshake). Throws `ProtocolError` on a violation. */
  onFrame(h: Header, payload: Buffer): void {
    if (this.dead) return; // the session ended (BYE, collected): late frames mean nothing
    switch (h.type) {
      case QFrame.Data: {
        this.lastData = performance.now();
        // Serials run 1, 2, ..., 2^32 - 1, 1, ...: 0 is never used (it means "none yet").
        if (h.a === ((this.lastIn + 1) >>> 0 || 1)) {
          if (this.unacked.size >= this.peerSlots) {
            throw new ProtocolError(`the peer exceeded its ${this.peerSlots} slot(s) of unacknowledged messages`);
          }
          this.lastIn = h.a;
          this.unacked.add(h.a);
          this.host.deliver(this, h.a, h.flags, payload);
        } else if (serialDiff(h.a, this.lastIn) <= 0) {
          // A resend after reconnection: refused again if it was refused, else acknowledged again
          // unless it is still being processed.
          const nack = this.refused.get(h.a);
          if (nack !== undefined) this.link?.write([nack]);
          else if (!this.unacked.has(h.a)) this.link?.write([header(0, QFrame.Ack, 0, h.a)]);
        } else {
          throw new ProtocolError(`DATA serial ${h.a} skips ahead of ${this.lastIn}`);
        }
        return;
      }
      case QFrame.Ack: {
        const e = this.inflight.get(h.a);
        if (e === undefined) return; // a second ack after a resend
        this.inflight.delete(h.a);
        e.op.done();
        this.pump();
        return;
      }
      case QFrame.Nack: {
        const e = this.inflight.get(h.a);
        if (e === undefined) return;
        this.inflight.delete(h.a);
        e.op.fail(nackError(payload.readUInt32LE(0), payload.toString("utf8", 4)));
        this.pump();
        return;
      }
      case QFrame.Bye:
        this.host.bye(this, h.flags);
        return;
      default:
        throw new ProtocolError(`unexpected frame type ${h.type} after the handshake`);
    }
  }

  /** Acknowledges `serial` (of generation `gen`). */
  ack(serial: number, gen: number): void {
    if (gen !== this.generation || !this.unacked.delete(serial)) return;
    this.link?.write([header(0, QFrame.Ack, 0, serial)]);
  }

  /** Refuses `serial` (of generation `gen`). */
  nack(serial: number, gen: number, frame: Buffer): void {
    if (gen !== this.generation || !this.unacked.delete(serial)) return;
    this.refused.set(serial, frame);
    if (this.refused.size > REFUSALS_KEPT) this.refused.delete(this.refused.keys().next().value as number);
    this.link?.write([frame]);
  }

  /** Attaches a new connection; `resumed` resends what was in flight (the peer drops duplicates). */
  attach(link: Link, resumed: boolean): void {
    this.link = link;
    if (resumed) {
      for (const [serial, e] of this.inflight) this.writeData(link, e, serial);
    }
    this.pump();
  }

  /**
   * Starts over with fresh serials (the peer did not keep the session): messages in flight may
   * or may not have arrived, so their puts reject with `err`; those still waiting go out next.
   */
  restart(err: Error): void {
    for (const e of this.inflight.values()) e.op.fail(err);
    this.inflight.clear();
    this.unacked.clear();
    this.refused.clear();
    this.nextSerial = 1;
    this.lastIn = 0;
    this.generation++;
  }

  /**
   * Starts over with fresh serials after the peer ended the session knowing nothing of what is
   * in flight (idle collection): those messages go out again first.
   */
  requeue(): void {
    const again = [...this.inflight.values()];
    this.inflight.clear();
    this.waiting = again.concat(this.waiting.slice(this.waitHead));
    this.waitHead = 0;
    this.unacked.clear();
    this.refused.clear();
    this.nextSerial = 1;
    this.lastIn = 0;
    this.generation++;
  }

  /** Ends the session: every put in flight or waiting rejects with `err`. */
  kill(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const e of this.inflight.values()) e.op.fail(err);
    for (let i = this.waitHead; i < this.waiting.length; i++) this.waiting[i].op.fail(err);
    this.inflight.clear();
    this.waiting = [];
    this.waitHead = 0;
    this.unacked.clear();
    this.refused.clear();
    this.generation++;
  }

  /** Writes a control frame if connected. */
  control(type: QFrame, flags = 0): void {
    this.link?.write([header(0, type, flags, 0)]);
  }
}
