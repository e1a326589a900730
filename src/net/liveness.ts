/**
 * The one liveness rule of every Plexus connection: each end writes at least every `heartbeat`
 * ms (a heartbeat message when it has nothing else to send), and declares its peer dead after
 * `max(peerTimeout, 3 × the peer's heartbeat)` ms without a byte from it. The owner calls
 * {@link Liveness.tick} every `tick` ms (one timer for all its connections) and the two cheap
 * markers {@link Liveness.heard} / {@link Liveness.sent} as bytes move: no clock is read per
 * message.
 * (Internal: not part of the public API.)
 * @module
 */

/**
 * How often an owner with this `heartbeat` and `peerTimeout` (ms) ticks: twice per heartbeat
 * (or per peer timeout, if shorter), at most every 10 ms.
 */
export function tickInterval(heartbeatMs: number, peerTimeoutMs: number): number {
  return Math.max(10, Math.min(heartbeatMs, peerTimeoutMs) / 2);
}

/** Liveness of one connection, counted in ticks. */
export class Liveness {
  private quietRx = 0;
  private quietTx = 0;
  private wrote = false;
  private deadTicks = 0;
  private readonly beatTicks: number;

  /**
   * @param tickMs - how often the owner calls {@link tick}
   * @param heartbeatMs - this end writes at least this often
   * @param peerTimeoutMs - silence that kills the peer (at least 3 × its heartbeat, see {@link setPeerHeartbeat})
   */
  constructor(
    private readonly tickMs: number,
    heartbeatMs: number,
    private readonly peerTimeoutMs: number,
  ) {
    this.beatTicks = Math.max(1, Math.floor(heartbeatMs / tickMs));
    this.setPeerHeartbeat(0);
  }

  /** The peer announced how often it writes (its handshake): silence is judged against that too. */
  setPeerHeartbeat(peerHeartbeatMs: number): void {
    this.deadTicks = Math.max(1, Math.ceil(Math.max(this.peerTimeoutMs, 3 * peerHeartbeatMs) / this.tickMs));
  }

  /** The silence after which the peer is dead (ms). */
  get deadAfterMs(): number {
    return this.deadTicks * this.tickMs;
  }

  /** Bytes came from the peer. */
  heard(): void {
    this.quietRx = 0;
  }

  /** Bytes went to the peer. */
  sent(): void {
    this.wrote = true;
  }

  /**
   * One tick of the owner's timer. Returns false when the peer has been silent for the dead
   * time; otherwise calls `beat` (which writes a heartbeat) if nothing was written for a
   * heartbeat's time — that heartbeat does not count as a write for the next tick, so an idle
   * end beats on every heartbeat period — and returns true.
   */
  tick(beat: () => void): boolean {
    if (++this.quietRx > this.deadTicks) return false;
    if (this.wrote) {
      this.wrote = false;
      this.quietTx = 0;
      return true;
    }
    if (++this.quietTx >= this.beatTicks) {
      beat();
      this.wrote = false;
      this.quietTx = 0;
    }
    return true;
  }
}

/** What a {@link Ticker} ticks: a connection (its {@link Liveness}), or an owner's own round. */
export interface Ticking {
  /** One tick. */
  tick(): void;
}

/**
 * The one timer of an owner's connections (a sender, a server, a client): it runs while it has
 * members and ticks each of them every `tickMs` ms. It never keeps the process alive (the
 * sockets do, not their heartbeats).
 */
export class Ticker<T extends Ticking = Ticking> {
  private readonly members = new Set<T>();
  private timer: ReturnType<typeof setInterval> | undefined;

  /** @param tickMs - the tick period (see {@link tickInterval}) */
  constructor(readonly tickMs: number) {}

  /** Starts ticking `m`. */
  add(m: T): void {
    this.members.add(m);
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        for (const x of this.members) x.tick(); // (a member that leaves while ticked: fine while iterating a Set)
      }, this.tickMs);
      this.timer.unref();
    }
  }

  /** Stops ticking `m`; the timer stops with the last member. */
  delete(m: T): void {
    this.members.delete(m);
    if (this.members.size === 0) this.stop();
  }

  /** Stops the timer (members stay; the next {@link add} starts it again). */
  stop(): void {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** The members. */
  [Symbol.iterator](): IterableIterator<T> {
    return this.members.values();
  }
}
