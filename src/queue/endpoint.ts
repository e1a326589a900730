/**
 * What queue servers and clients share: the inbox (`get`, iteration), puts (encoded once,
 * handed to each peer's session, tracked until settled), keep-alives and dead-peer detection.
 * (Internal: not part of the public API.)
 * @module
 */
import { ClosedError, FrameTooLargeError, PeerDeadError, PlexusError } from "../errors.js";
import { encodeChunks, encodedSize, encodeInto } from "../codec/index.js";
import { checkOptions, checkTimeout, type BlockingOptions } from "../util/blocking.js";
import { native } from "../native.js";
import { releasingIterator } from "../util/iterate.js";
import { Inbox, type QueueMessage } from "./inbox.js";
import type { Link } from "./link.js";
import type { Settings } from "./options.js";
import { Deadlines, PutOp } from "./put.js";
import { Slab } from "../util/slab.js";
import { closeLinger, Linger, warnDropped, type CloseOptions } from "../util/linger.js";
import type { Session, SessionHost } from "./session.js";
import { FLAG_RELIABLE, HEADER_BYTES } from "./wire.js";
import { Delivery, type Tap } from "./tap.js";
import { PING_FRAME } from "../net/frame.js";
import { Liveness, Ticker, tickInterval } from "../net/liveness.js";

/** Messages up to this size are copied into one buffer with their header. */
const SMALL = 8 << 10;


/**
 * Base of {@link QueueServer} and {@link QueueClient}: gets `In` values, puts `Out` values
 * (the codec does not check them: the types are the application's promise).
 */
export abstract class Endpoint<In = unknown, Out = unknown> implements SessionHost, AsyncIterable<QueueMessage<In>> {
  /** @internal */
  protected readonly inbox: Inbox;
  /** Puts not yet settled. */
  protected readonly ops = new Set<PutOp>();
  private readonly opsOwner = {
    settled: (op: PutOp): void => {
      this.ops.delete(op);
      if (this.ops.size === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
    },
  };
  /** Where small outgoing frames are written. */
  private readonly slab = new Slab();
  /** One timer for the puts with the default timeout. */
  private readonly deadlines = new Deadlines();
  /** Set when `close()` starts. */
  protected closing = false;
  /** The one timer of this end's keep-alives and idle collection (it ticks this end, which ticks its links). */
  private readonly ticker: Ticker;
  private idleWaiters: (() => void)[] = [];
  /** The close in progress or done (see {@link closeOnce}). */
  private closeRun: Promise<void> | undefined;
  /** While closing: the current wait (for the puts, then for the peers to hang up); a later `close()` may shorten it. */
  protected lingering: Linger | undefined;

  /** @param cfg - validated settings */
  protected constructor(protected readonly cfg: Settings) {
    native(); // loaded now: it tunes the allocator for the message buffers this end will free
    this.inbox = new Inbox({ maxQueue: cfg.maxQueue, maxQueueBytes: cfg.maxQueueBytes, timeout: Infinity });
    this.ticker = new Ticker(this.tickMs);
    this.ticker.add(this);
  }

  /** The live links, for keep-alives. */
  protected abstract links(): Iterable<Link>;
  /** Called before a `get` or a step of iteration that would wait (a client without a connection connects again). */
  protected beforeGet(): void {}
  /** Called on each tick after keep-alives (idle collection). */
  protected onTick(): void {}
  /** @internal */
  abstract bye(s: Session, flags: number): void;

  /**
   * When set, received messages go to this handler, still encoded, instead of the queue (the
   * NATS bridge's export side); `get` then waits for ever.
   * @internal
   */
  tap: Tap | undefined;

  /** @internal */
  deliver(s: Session, serial: number, flags: number, payload: Buffer): void {
    if (this.tap !== undefined) this.tap(new Delivery(s, serial, flags, payload));
    else this.inbox.offer(s, serial, flags, payload);
  }

  /**
   * Takes the next message (from any peer), waiting up to `timeout` ms (default: no limit).
   * Rejects with `TimeoutError`, `AbortError`, `ClosedError` once this end is closed and its
   * queue is empty, or `PeerDeadError` once a client's session with its server is lost (the
   * server closed, or did not come back within `reconnectWindow`) and its queue is empty (the
   * next `get` connects again). The type argument `T` only casts the value: prefer the
   * endpoint's own type arguments (`queue.client<ToServer, ToClient>`).
   */
  async get<T = In>(opts: BlockingOptions = {}): Promise<QueueMessage<T>> {
    if (!this.inbox.ready) this.beforeGet();
    const m = await this.inbox.take(opts);
    if (m instanceof PlexusError) throw m;
    return m as QueueMessage<T>;
  }

  /**
   * Iterates over messages until the queue ends — on a client also where a session was lost
   * (iterating again connects again); each message is released when the loop moves on, and
   * leaving the loop early closes this end.
   */
  [Symbol.asyncIterator](): AsyncIterator<QueueMessage<In>> {
    return releasingIterator(
      async () => {
        if (!this.inbox.ready) this.beforeGet();
        const m = await this.inbox.take({});
        return m instanceof PlexusError ? null : (m as QueueMessage<In>);
      },
      () => this.close(),
    );
  }

  /** Messages waiting in this end's queue. */
  get queued(): number {
    return this.inbox.size;
  }

  /** Largest number of bytes this end's queue has held. */
  get peakQueueBytes(): number {
    return this.inbox.peakBytes;
  }

  /** Closes this end (see the subclasses). */
  abstract close(): Promise<void>;

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Encodes `value` once and sends it to every session in `targets`. */
  protected startPut(value: Out, targets: readonly Session[], opts: BlockingOptions): Promise<void> {
    try {
      if (this.closing) throw new ClosedError("queue is closed");
      checkOptions(opts, "put");
      const timeout = checkTimeout(opts.timeout, this.cfg.timeout);
      if (targets.length === 0) throw new PeerDeadError("no client is connected");
      const plan = encodedSize(value);
      if (plan.byteLength > this.cfg.maxMessage) {
        throw new FrameTooLargeError(`message of ${plan.byteLength} bytes exceeds the limit of ${this.cfg.maxMessage} bytes`);
      }
      let chunks: Uint8Array[];
      if (plan.byteLength <= SMALL) {
        // One buffer: header room + the whole frame (one copy of a small message, one write).
        const b = this.slab.take(HEADER_BYTES + plan.byteLength);
        encodeInto(plan, b.subarray(HEADER_BYTES));
        chunks = [b];
      } else {
        // Header room + the frame's head in one buffer, the value's own buffers after it (no copy).
        const parts = encodeChunks(plan);
        const head = Buffer.allocUnsafe(HEADER_BYTES + parts[0].byteLength);
        head.set(parts[0], HEADER_BYTES);
        parts[0] = head;
        chunks = parts;
      }
      const op = new PutOp(targets.length, timeout, opts.signal, timeout === this.cfg.timeout ? this.deadlines : undefined);
      this.ops.add(op);
      op.owner = this.opsOwner;
      const flags = this.cfg.reliable ? FLAG_RELIABLE : 0;
      for (const s of targets) s.send({ op, chunks, bytes: plan.byteLength, flags });
      return op.promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * `close(opts)` of either end: runs `shutdown` once, with the linger asked for (`opts.linger`,
   * else the `linger` option); a later call can only shorten the wait in progress.
   */
  protected closeOnce(opts: CloseOptions | undefined, shutdown: (linger: number) => Promise<void>): Promise<void> {
    let ms: number;
    try {
      ms = closeLinger(opts, this.cfg.linger);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closeRun !== undefined) {
      this.lingering?.shorten(ms);
      return this.closeRun;
    }
    this.closeRun = shutdown(ms);
    return this.closeRun;
  }

  /** Closing: waits until `gone` (the peers hung up after BYE), at most `ms` (a later `close()` may shorten it). */
  protected async awaitHangUp(gone: Promise<unknown>, ms: number): Promise<void> {
    const linger = (this.lingering = new Linger(ms));
    void gone.then(() => linger.end());
    await linger.ended;
  }

  /**
   * Closing: waits until every put settled, at most `ms` (a later `close()` may shorten it:
   * {@link lingering}); then rejects the rest with `err`, and warns (`PLEXUS_LINGER`) that
   * `who` dropped them.
   */
  protected async flushPuts(ms: number, err: PlexusError, who: string): Promise<void> {
    if (this.ops.size > 0) {
      const linger = (this.lingering = new Linger(ms));
      this.idleWaiters.push(() => linger.end());
      await linger.ended;
      const left = this.ops.size;
      if (left > 0) warnDropped(`${who} closed with ${left === 1 ? "1 put" : `${left} puts`} not acknowledged within the linger of ${linger.ms} ms; ${left === 1 ? "it rejects" : "they reject"} with ClosedError`);
    }
    for (const op of [...this.ops]) op.fail(err);
  }

  /** Stops the keep-alive ticker. */
  protected stopTicker(): void {
    this.ticker.stop();
    this.deadlines.stop();
  }

  /**
   * One tick: a PING on each quiet link, the end of those whose peer was silent too long.
   * @internal
   */
  tick(): void {
    for (const l of this.links()) {
      if (l.closed) continue;
      if (!l.liveness.tick(() => l.write([PING_FRAME]))) l.fail(new PeerDeadError(`no byte from the peer for ${l.liveness.deadAfterMs} ms`));
    }
    this.onTick();
  }

  /** How often liveness is checked: twice per heartbeat (or per peer timeout, if shorter). */
  private get tickMs(): number {
    return tickInterval(this.cfg.heartbeat, this.cfg.peerTimeout);
  }

  /** Liveness counters for a new connection of this end. */
  protected liveness(): Liveness {
    return new Liveness(this.tickMs, this.cfg.heartbeat, this.cfg.peerTimeout);
  }
}
