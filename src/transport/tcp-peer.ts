/**
 * One receiver's connection, seen from the `tcp` sender: reading its handshake and its frames
 * (ACK, BYE, PING), the credit window (frame bytes written against bytes released), the
 * `drop-oldest` queue, the pooled frames it still holds, batched and corked writes, its liveness
 * (heartbeats and silence), and how it ends (END after everything, a refusal, or cut off).
 * (Internal: not part of the public API.)
 * @module
 */
import type { Socket } from "node:net";
import { FrameTooLargeError, PeerDeadError, type PlexusError, ProtocolError } from "../errors.js";
import { Liveness } from "../net/liveness.js";
import { type Batch, type Flushable, type Outbox, SMALL } from "./tcp-outbox.js";
import { type FrameRefs, POOL_MIN } from "./tcp-pool.js";
import { checkNetHeader, FIRST_NET_TYPE, FRAME_HEADER as HEADER_BYTES, frameHeader, get32, NetType, PING_FRAME, readFrameHeader, readU64, typeWord, writeFrameHeader64 } from "../net/frame.js";
import { FrameType, isVersion1Block, WIRE_POLICY } from "./tcp-wire.js";

/** Settings of a sender after validation. */
export interface SenderConfig {
  /** Per-receiver window in bytes. */
  capacity: number;
  /** Largest message. */
  maxMessage: number;
  /** Most receivers at once. */
  maxReceivers: number;
  /** Default timeout of `send`/`loan` in ms. */
  timeout: number;
  /** Idle interval after which the sender writes a heartbeat (ms); also the liveness tick. */
  heartbeat: number;
  /** A receiver silent this long is dead (ms). */
  peerTimeout: number;
  /** A connection must complete its handshake within this time (ms). */
  handshakeTimeout: number;
  /** `close()` waits this long (ms) for the receivers to take the rest; then they are cut off. */
  linger: number;
  /** Told why a receiver was cut off. */
  onPeerError: ((err: PlexusError) => void) | undefined;
}

/** Where a connection is in its life. */
export const enum PeerState {
  /** Connected, HELLO not yet received. */
  Handshake,
  /** Receiving messages. */
  Active,
  /** END written (or refused): the connection is finishing. */
  Ending,
  /** Dropped. */
  Gone,
}

/** Policy code `block` on the wire. */
export const P_BLOCK = WIRE_POLICY.block;
/** Policy code `drop-oldest` on the wire. */
export const P_DROP = WIRE_POLICY["drop-oldest"];
/** Policy code `fail` on the wire. */
export const P_FAIL = WIRE_POLICY.fail;

const WANT = frameHeader(0, FrameType.Want);
const NOTHING = Buffer.alloc(0);
/** A corked socket is flushed at once when this many bytes wait. */
const FLUSH_BYTES = 128 << 10;

/** What a connection needs from the side that accepted it. */
export interface PeerHost {
  /** Connections receiving messages (the sender sends to each; changed in place only). */
  readonly active: Peer[];
  /** Sequence number the next message will carry. */
  nextSequence(): number;
  /** Answers a HELLO (its payload): a WELCOME, or a refusal. */
  hello(p: Peer, payload: Buffer): void;
  /** Answers a version-1 HELLO (speaking version `version`): refused as a version mismatch. */
  version1Hello(p: Peer, version: number): void;
  /** Room may have come back (credit, or a receiver left): waiting sends re-check. */
  roomChanged(): void;
  /** The connection's socket closed. */
  closed(p: Peer): void;
}

/** One receiver's connection, seen from the sender. */
export class Peer implements Flushable {
  /** Where the connection is in its life. */
  state = PeerState.Handshake;
  /** Its backpressure policy (wire code), from its HELLO. */
  policy: number = P_BLOCK;
  /** Total frame bytes written to this receiver. */
  sent = 0;
  /** Total frame bytes it released (its last ACK). */
  acked = 0;
  /** drop-oldest: frames waiting for window, oldest first, from `head`. */
  private pending: Buffer[] = [];
  private head = 0;
  private pendingBytes = 0;
  /** A WANT was written and no ACK came since. */
  private wantSent = false;
  /** The sender closed: END follows once `pending` is written. */
  private draining = false;
  /** The socket is corked (its writes go out together). */
  private corked = false;
  /** Bytes written since the socket was corked. */
  private corkedBytes = 0;
  /** Listed for the next flush. */
  scheduled = false;
  /** Small frames are copied here, in order, and written in chunks. */
  private batch: Batch | undefined;
  /** A header read in pieces; then (handshake) the HELLO's payload. */
  private readonly staging = Buffer.alloc(HEADER_BYTES);
  private staged = 0;
  /** The HELLO's payload, while it is read. */
  private helloPayload: Buffer | undefined;
  /** Drops the connection if its handshake does not finish in time. */
  handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Pooled frames written and not yet acknowledged, with the `sent` total at each one's end. */
  private inflight: Buffer[] = [];
  private inflightEnd: number[] = [];
  private inflightHead = 0;
  /** Heartbeats and the peer's silence (ticked every `heartbeat` ms). */
  readonly liveness: Liveness;
  private readonly half: number;
  private readonly refs: FrameRefs;
  /** The memory under the sender's scratch frames (reused: queued copies are taken). */
  private readonly scratch: ArrayBufferLike;

  /**
   * @param socket - the connection
   * @param cfg - the sender's settings
   * @param host - the side that accepted it
   * @param out - the writing side the sender's connections share
   */
  constructor(
    readonly socket: Socket,
    private readonly cfg: SenderConfig,
    private readonly host: PeerHost,
    private readonly out: Outbox,
  ) {
    this.liveness = new Liveness(cfg.heartbeat, cfg.heartbeat, cfg.peerTimeout);
    this.half = cfg.capacity / 2;
    this.refs = out.refs;
    this.scratch = out.scratch.buffer;
  }

  /** drop-oldest: frames queued at the sender. */
  get queued(): number {
    return this.pending.length - this.head;
  }

  /** Frame bytes the receiver has not acknowledged: written and not released, or still queued here. */
  get unacknowledged(): number {
    return this.sent - this.acked + this.pendingBytes;
  }

  // ---- the handshake ----------------------------------------------------------------------------

  /** The handshake succeeded: receive messages under `policy` (the caller writes the WELCOME). */
  activate(policy: number, peerHeartbeat: number): void {
    this.policy = policy;
    this.liveness.setPeerHeartbeat(peerHeartbeat);
    this.state = PeerState.Active;
  }

  /** Answers the HELLO with a refusal (`answer`) and hangs up; cut off after `ms` if it lingers. */
  refuse(answer: Buffer, ms: number): void {
    this.write(answer);
    this.state = PeerState.Ending;
    this.finishWrites();
    this.handshakeTimer = setTimeout(() => this.drop(), ms);
    this.handshakeTimer.unref();
  }

  // ---- credit and the drop-oldest queue ---------------------------------------------------------

  /** Writes a data frame (the window was checked); asks for credit past half the window. */
  writeData(frame: Buffer): void {
    this.sent += frame.length;
    if (frame.length >= POOL_MIN && this.refs.ref(frame)) {
      this.inflight.push(frame);
      this.inflightEnd.push(this.sent);
    }
    this.write(frame);
    if (this.sent - this.acked > this.half) this.want();
  }

  /** Pooled frames this receiver acknowledged go back (when nobody else holds them). */
  private settleInflight(): void {
    let h = this.inflightHead;
    const n = this.inflight.length;
    while (h < n && this.inflightEnd[h] <= this.acked) {
      this.refs.unref(this.inflight[h]);
      this.inflight[h++] = NOTHING;
    }
    if (h === n) {
      this.inflight.length = 0;
      this.inflightEnd.length = 0;
      h = 0;
    } else if (h >= 256 && h * 2 >= n) {
      this.inflight = this.inflight.slice(h);
      this.inflightEnd = this.inflightEnd.slice(h);
      h = 0;
    }
    this.inflightHead = h;
  }

  /** drop-oldest: queues a frame; beyond a window's worth, drops the oldest queued ones. */
  enqueue(frame: Buffer): void {
    if (frame.buffer === this.scratch) frame = Buffer.from(frame); // the scratch is reused
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    if (frame.length >= POOL_MIN) this.refs.ref(frame);
    while (this.pendingBytes > this.cfg.capacity && this.queued > 1) {
      const old = this.pending[this.head];
      this.pending[this.head++] = NOTHING;
      this.pendingBytes -= old.length;
      if (old.length >= POOL_MIN) this.refs.unref(old);
    }
    if (this.head >= 1024 && this.head * 2 >= this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.want();
  }

  /** Writes queued frames that fit the window now. */
  private flushPending(): void {
    const cap = this.cfg.capacity;
    while (this.queued > 0) {
      const f = this.pending[this.head];
      if (this.sent - this.acked + f.length > cap) break;
      this.pending[this.head++] = NOTHING;
      this.pendingBytes -= f.length;
      this.writeData(f);
      if (f.length >= POOL_MIN) this.refs.unref(f); // the queue's reference
    }
    if (this.queued === 0) {
      this.pending = [];
      this.head = 0;
      if (this.draining) this.end();
    } else {
      this.want();
    }
  }

  /** Asks the receiver for credit (once until its next ACK). */
  want(): void {
    if (this.wantSent) return;
    this.wantSent = true;
    this.write(WANT);
  }

  // ---- writing ----------------------------------------------------------------------------------

  /**
   * Writes a frame. What is written in one tick goes out on the next as one vectored write:
   * frames of up to {@link SMALL} bytes are copied into the connection's batch (cheaper than a
   * stream write each), larger ones are written as they are (no copy), all corked together; a
   * burst is flushed early once {@link FLUSH_BYTES} wait.
   */
  write(buf: Buffer): void {
    if (this.state === PeerState.Gone) return;
    this.liveness.sent();
    if (!this.scheduled) this.out.schedule(this);
    if (buf.length <= SMALL) {
      let b = this.batch;
      if (b === undefined || b.end + buf.length > b.buf.length) {
        if (b !== undefined) {
          this.flushBatch();
          b.retired = true;
          if (b.writing === 0) this.out.recycle(b);
        }
        b = this.batch = this.out.batch();
      }
      b.buf.set(buf, b.end);
      b.end += buf.length;
      return;
    }
    this.flushBatch();
    this.put(buf);
  }

  /** The tick's flush: hands the batch to the socket and uncorks it. */
  flush(): void {
    this.scheduled = false;
    if (this.state !== PeerState.Active || this.socket.destroyed) return;
    this.flushBatch();
    this.uncork();
  }

  /** Hands the batched small frames to the socket (the written part is never touched again). */
  private flushBatch(): void {
    const b = this.batch;
    if (b === undefined || b.end === b.start) return;
    const chunk = b.buf.subarray(b.start, b.end);
    b.start = b.end;
    b.writing++;
    this.put(chunk, (err) => {
      b.writing--;
      if (err) b.failed = true;
      if (b.retired && b.writing === 0) this.out.recycle(b);
    });
  }

  /** Writes to the corked socket; uncorks early after {@link FLUSH_BYTES}. */
  private put(buf: Buffer, done?: (err?: Error | null) => void): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    this.socket.write(buf, done);
    this.corkedBytes += buf.length;
    if (this.corkedBytes >= FLUSH_BYTES) this.uncork();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.corkedBytes = 0;
    this.socket.uncork();
  }

  /** Flushes everything and half-closes the connection. */
  private finishWrites(): void {
    this.flushBatch();
    this.corked = false; // end() uncorks
    this.corkedBytes = 0;
    this.socket.end();
  }

  // ---- reading ----------------------------------------------------------------------------------

  /** Bytes from the receiver: its HELLO, then 16-byte frames (ACK, BYE, PING). */
  onData(chunk: Buffer): void {
    this.liveness.heard();
    let off = 0;
    while (off < chunk.length && (this.state === PeerState.Handshake || this.state === PeerState.Active)) {
      const payload = this.helloPayload;
      if (payload !== undefined) {
        const n = Math.min(payload.length - this.staged, chunk.length - off);
        chunk.copy(payload, this.staged, off, off + n);
        this.staged += n;
        off += n;
        if (this.staged === payload.length) {
          this.staged = 0;
          this.helloPayload = undefined;
          this.host.hello(this, payload);
        }
        continue;
      }
      if (this.staged === 0 && chunk.length - off >= HEADER_BYTES) {
        this.onFrame(chunk, off);
        off += HEADER_BYTES;
        continue;
      }
      const n = Math.min(HEADER_BYTES - this.staged, chunk.length - off);
      chunk.copy(this.staging, this.staged, off, off + n);
      this.staged += n;
      off += n;
      if (this.staged === HEADER_BYTES) {
        this.staged = 0;
        this.onFrame(this.staging, 0);
      }
    }
  }

  /**
   * The first header: a HELLO's (its payload is read next; a HELLO without one is answered at
   * once), or a version-1 HELLO, answered with a refusal it understands. Anything else: dropped.
   */
  private onHelloHeader(buf: Buffer, at: number): void {
    if (isVersion1Block(buf, at)) {
      this.host.version1Hello(this, buf.readUInt16LE(at + 4));
      return;
    }
    try {
      const h = readFrameHeader(buf, at);
      if (h.type !== NetType.Hello) throw new ProtocolError(`a connection whose first frame is not a tcp HELLO (type 0x${h.type.toString(16)})`);
      checkNetHeader(h);
      if (h.length === 0) this.host.hello(this, Buffer.alloc(0));
      else this.helloPayload = Buffer.allocUnsafe(h.length);
    } catch (err) {
      this.drop(err as ProtocolError);
    }
  }

  private onFrame(buf: Buffer, at: number): void {
    if (this.state === PeerState.Handshake) {
      this.onHelloHeader(buf, at);
      return;
    }
    const length = get32(buf, at);
    const type = typeWord(buf, at);
    if (length !== 0) {
      this.drop(new FrameTooLargeError(`a receiver sent a frame with a ${length}-byte payload (receivers send none)`));
      return;
    }
    if (type === FrameType.Ack) {
      let value: number;
      try {
        value = readU64(buf, at);
      } catch (err) {
        this.drop(err as ProtocolError);
        return;
      }
      if (value < this.acked || value > this.sent) {
        this.drop(new ProtocolError(`a receiver acknowledged ${value} bytes; ${this.acked}..${this.sent} was possible`));
        return;
      }
      this.acked = value;
      this.wantSent = false;
      if (this.inflight.length > 0) this.settleInflight();
      if (this.queued > 0) this.flushPending();
      this.host.roomChanged();
    } else if (type === FrameType.Bye) {
      this.leave();
    } else if ((type & 0xff) === NetType.Ping) {
      try {
        checkNetHeader(readFrameHeader(buf, at)); // a heartbeat: every field zero
      } catch (err) {
        this.drop(err as ProtocolError);
      }
    } else if ((type & 0xff) >= FIRST_NET_TYPE) {
      this.drop(new ProtocolError(`an unexpected frame of the connection (type 0x${(type & 0xff).toString(16)}) from a receiver`));
    } else {
      this.drop(new ProtocolError(`unknown frame type 0x${type.toString(16)} from a receiver`));
    }
  }

  // ---- liveness and the end ---------------------------------------------------------------------

  /** One heartbeat tick: a PING if nothing was written for a while; cut off after too much silence. */
  tick(): void {
    if (this.state !== PeerState.Active && this.state !== PeerState.Ending) return;
    const alive = this.liveness.tick(() => {
      if (this.state === PeerState.Active) this.write(PING_FRAME);
    });
    if (!alive) this.drop(new PeerDeadError(`no data or heartbeat from a receiver for ${this.liveness.deadAfterMs} ms`));
  }

  /** The sender closed: END once the queue is written (a connection still in its handshake is dropped). */
  drain(): void {
    if (this.state === PeerState.Handshake) this.drop();
    else if (this.state === PeerState.Active) {
      this.draining = true;
      if (this.queued === 0) this.end();
      else this.want();
    }
  }

  /** Writes END (after which the receiver's stream is over) and finishes the connection. */
  private end(): void {
    const end = Buffer.allocUnsafe(HEADER_BYTES);
    writeFrameHeader64(end, 0, 0, FrameType.End, this.host.nextSequence());
    this.write(end);
    this.deactivate();
    this.state = PeerState.Ending;
    this.finishWrites();
  }

  private deactivate(): void {
    const active = this.host.active;
    const i = active.indexOf(this);
    if (i >= 0) active.splice(i, 1);
    // Frames written to a connection that will not acknowledge them may still be read by its
    // socket: never reuse them (they are simply collected). Queued ones were never written.
    for (let k = this.inflightHead; k < this.inflight.length; k++) this.refs.forget(this.inflight[k]);
    for (let k = this.head; k < this.pending.length; k++) if (this.pending[k].length >= POOL_MIN) this.refs.unref(this.pending[k]);
    this.inflight = [];
    this.inflightEnd = [];
    this.inflightHead = 0;
    this.pending = [];
    this.head = 0;
    this.pendingBytes = 0;
  }

  /**
   * The receiver said BYE: it is let go, and what was already written to it (its WELCOME, when
   * the BYE came in the same read as its HELLO) still goes out before the connection closes.
   */
  private leave(): void {
    if (this.state === PeerState.Gone) return;
    const wasActive = this.state === PeerState.Active;
    this.state = PeerState.Gone;
    clearTimeout(this.handshakeTimer);
    this.deactivate();
    if (!this.socket.destroyed) {
      this.finishWrites();
      // a receiver that said BYE but keeps its end open is cut off after the handshake timeout
      const cut = setTimeout(() => this.socket.destroy(), this.cfg.handshakeTimeout);
      cut.unref();
      this.socket.once("close", () => clearTimeout(cut));
    }
    if (wasActive) this.host.roomChanged();
  }

  /** Cuts the connection off (receiver died or misbehaved); waiting sends re-check. */
  drop(err?: PlexusError): void {
    if (this.state === PeerState.Gone) return;
    const wasActive = this.state === PeerState.Active;
    this.state = PeerState.Gone;
    clearTimeout(this.handshakeTimer);
    this.deactivate();
    this.socket.destroy();
    if (err) this.cfg.onPeerError?.(err);
    if (wasActive) this.host.roomChanged();
  }
}
