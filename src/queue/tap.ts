/**
 * A tap on a queue endpoint: the DATA payloads it receives go to a handler instead of its queue,
 * still encoded, and the handler acknowledges each one — or refuses it with a typed error that
 * the sender's put rejects with. The NATS bridge's export side is such a handler: it forwards
 * each message to JetStream and acknowledges it once stored (or consumed).
 * (Internal: not part of the public API.)
 * @module
 */
import type { PlexusError } from "../errors.js";
import type { Session } from "./session.js";
import { encodeNack, FLAG_RELIABLE, NackReason } from "./wire.js";

/** One message taken by a tap. */
export class Delivery {
  private settled = false;
  private readonly gen: number;

  /**
   * @param session - the sender's session
   * @param serial - the message's serial in that session
   * @param flags - the DATA frame's flags
   * @param payload - the encoded message (one codec frame; the tap owns it)
   */
  constructor(
    readonly session: Session,
    readonly serial: number,
    private readonly flags: number,
    readonly payload: Buffer,
  ) {
    this.gen = session.generation;
  }

  /** The sender's id (its identity in hex). */
  get peer(): string {
    return this.session.id;
  }

  /** The sender's session token in hex (server side; empty on a client). */
  get token(): string {
    return this.session.token;
  }

  /** True if the sender asked for an acknowledgement on release (`reliable` mode). */
  get reliable(): boolean {
    return (this.flags & FLAG_RELIABLE) !== 0;
  }

  /** True while the sender's session is the one this message came in (a settlement still reaches the sender). */
  get current(): boolean {
    return !this.settled && this.session.dead === undefined && this.session.generation === this.gen;
  }

  /** Acknowledges the message: the sender's put resolves. Idempotent (the first settlement counts). */
  ack(): void {
    if (this.settled) return;
    this.settled = true;
    this.session.ack(this.serial, this.gen);
  }

  /** Refuses the message: the sender's put rejects with `err` (its class, code and message). */
  fail(err: PlexusError): void {
    if (this.settled) return;
    this.settled = true;
    this.session.nack(this.serial, this.gen, encodeNack(this.serial, NackReason.Failed, `${err.code} ${err.message}`));
  }
}

/** Where a tapped endpoint hands what it receives. */
export type Tap = (d: Delivery) => void;
