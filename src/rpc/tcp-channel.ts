/**
 * The tcp channel: one TCP (or TLS) socket carrying request/response messages as the frames of
 * every Plexus connection (net/frame.ts: the message's header with the body's length in place
 * of the ring's magic; specified in docs/protocol.md §6.3), and the liveness of an end's tcp
 * channels: each writes at least every `heartbeat` ms (the connection's PING when it has nothing
 * else to send) and declares its peer dead after `max(peerTimeout, 3 × the peer's heartbeat)` ms
 * without a byte from it ({@link Liveness}; one timer per client or server: {@link Heartbeats}).
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { nextTick } from "node:process";
import type { Socket } from "node:net";
import { PeerDeadError, PlexusError, ProtocolError } from "../errors.js";
import { FRAME_HEADER, PING_FRAME, writeFrameHeader, type FrameHeader } from "../net/frame.js";
import { FrameParser } from "../net/frame-parser.js";
import { Liveness, Ticker, tickInterval } from "../net/liveness.js";
import { Channel, type Outgoing, type Releasable } from "./channel.js";
import { rpcFrameTable, type Body, type RpcType } from "./wire.js";

/** Default of the `heartbeat` option: this end writes at least this often (ms). */
export const DEFAULT_HEARTBEAT = 1000;
/** Default of the `peerTimeout` option: silence after which the peer is dead (ms; at least 3 of its heartbeats). */
export const DEFAULT_PEER_TIMEOUT = 10000;

/**
 * The tcp channels of one end (a client, a server): the net {@link Ticker} that runs while there
 * is a channel — each tick writes a PING on the channels that wrote nothing for a heartbeat and
 * ends those whose peer was silent too long — and the liveness rule they share.
 */
export class Heartbeats extends Ticker<TcpChannel> {
  /**
   * @param heartbeat - this end writes at least this often (ms)
   * @param peerTimeout - silence after which a peer is dead (ms; at least 3 of its heartbeats)
   */
  constructor(
    readonly heartbeat: number,
    private readonly peerTimeout: number,
  ) {
    super(tickInterval(heartbeat, peerTimeout));
  }

  /** Liveness counters for a new channel whose peer announced `peerHeartbeat` (ms). */
  liveness(peerHeartbeat: number): Liveness {
    const l = new Liveness(this.tickMs, this.heartbeat, this.peerTimeout);
    l.setPeerHeartbeat(peerHeartbeat);
    return l;
  }
}

/** A channel over one TCP (or TLS) socket: each message is one frame. */
export class TcpChannel extends Channel {
  readonly kind = "tcp";
  private corked = false;
  /** Writes of one turn go out together (one writev instead of one syscall per message). */
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  /** Bytes that came with the handshake, parsed by {@link start}. */
  private early: Buffer | undefined;
  /** This end's heartbeat and the peer's silence, counted in the owner's ticks. */
  private readonly liveness: Liveness;
  /** While paused: the socket's `bytesRead` and `writableLength` at the last tick. */
  private readMark = 0;
  private unsentMark = 0;
  private readonly beat = (): void => {
    if (!this.socket.destroyed) this.socket.write(PING_FRAME);
  };
  /** Splits the socket's bytes into frames (PINGs taken there), each checked before it is allocated. */
  private readonly parser: FrameParser;
  /** The plain view of the memory the last frame was in, and that memory: one view per slab or read buffer, not per message. */
  private plain: Uint8Array = EMPTY_BYTES;
  private plainOf: ArrayBufferLike | undefined;
  /** Frames parsed while paused (from the read that paused it), delivered in order by {@link onResume}. */
  private held: Buffer[] = [];
  private heldAt = 0;
  /**
   * @param socket - the connected socket, after the handshake
   * @param maxMessage - largest message accepted from the peer (checked before allocating)
   * @param rest - bytes that arrived after the handshake
   * @param heartbeats - the liveness of this end's tcp channels (this one joins them)
   * @param peerHeartbeat - how often the peer writes, as its handshake announced (ms)
   */
  constructor(
    private readonly socket: Socket,
    maxMessage: number,
    rest: Buffer | undefined,
    private readonly heartbeats: Heartbeats,
    peerHeartbeat: number,
  ) {
    super();
    this.parser = new FrameParser(rpcFrameTable(maxMessage), (_h: FrameHeader, frame: Buffer) => this.onFrame(frame));
    this.liveness = heartbeats.liveness(peerHeartbeat);
    heartbeats.add(this);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.onDrain());
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.end(new PeerDeadError("the request/response peer closed the connection or died")));
    this.early = rest !== undefined && rest.length > 0 ? rest : undefined;
  }

  override start(): void {
    const early = this.early;
    this.early = undefined;
    if (early !== undefined) this.onData(early);
  }

  protected override transportFull(): boolean {
    return this.socket.writableNeedDrain;
  }

  protected onPause(): void {
    this.socket.pause();
  }

  protected onResume(): void {
    this.socket.resume();
    if (this.heldAt < this.held.length) queueMicrotask(() => this.deliverHeld()); // frames that came with the read that paused us
  }

  /**
   * One tick of the owner's timer: a PING if this end wrote nothing for a heartbeat; the end
   * (PeerDeadError) if the peer was silent for its dead time.
   */
  tick(): void {
    if (this.ended) return;
    if (this.paused && this.stirs()) this.liveness.heard();
    if (this.liveness.tick(this.beat)) return;
    this.end(new PeerDeadError(`no byte from the request/response peer for ${this.liveness.deadAfterMs} ms`));
    this.socket.destroy();
  }

  /**
   * Paused (a server holding a client back), this end reads nothing: the peer's bytes wait in
   * the socket. The peer counts as alive while the pause is this end's doing (requests being
   * handled, not answers piling up), or while bytes still move either way since the last tick.
   */
  private stirs(): boolean {
    const s = this.socket;
    const moved = s.bytesRead !== this.readMark || s.writableLength < this.unsentMark;
    this.readMark = s.bytesRead;
    this.unsentMark = s.writableLength;
    return moved || !s.writableNeedDrain;
  }

  protected override end(error: Error | undefined): void {
    this.heartbeats.delete(this);
    super.end(error);
  }

  private onData(chunk: Buffer): void {
    this.liveness.heard();
    if (this.ended) return;
    try {
      this.parser.push(chunk);
    } catch (err) {
      // An unknown type or flags, a length above maxMessage: the connection is broken.
      this.end(err instanceof PlexusError ? err : new ProtocolError("malformed request/response frame", { cause: err }));
      this.socket.destroy();
    }
  }

  /** One whole frame from the parser: delivered now, or held while paused (or behind held ones). */
  private onFrame(frame: Buffer): void {
    if (this.ended) return;
    if (this.paused || this.heldAt < this.held.length) {
      this.held.push(frame);
      return;
    }
    this.deliver(frame);
  }

  /** Hands `frame` to the owner as a range of a plain `Uint8Array` (cached per ArrayBuffer). */
  private deliver(frame: Buffer): void {
    const ab = frame.buffer;
    if (ab !== this.plainOf) {
      this.plain = new Uint8Array(ab);
      this.plainOf = ab;
    }
    const at = frame.byteOffset;
    this.onMessage(this.plain, at, at + frame.length, NOTHING_HELD);
  }

  /** Delivers the frames held while paused, in order, until paused again. */
  private deliverHeld(): void {
    const held = this.held;
    while (this.heldAt < held.length && !this.ended && !this.paused) this.deliver(held[this.heldAt++]);
    if (this.heldAt === held.length || this.ended) {
      this.held = [];
      this.heldAt = 0;
    }
  }

  protected trySend(type: RpcType, id: number, aux: number, body: Body): boolean {
    if (this.socket.destroyed) throw this.endError ?? new PeerDeadError("the request/response connection is gone");
    this.liveness.sent();
    const frame = Buffer.allocUnsafe(FRAME_HEADER + body.size);
    writeFrameHeader(frame, 0, body.size, type, body.flags, id, aux);
    body.writeTo(frame, FRAME_HEADER);
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
