/**
 * The tcp channel: one TCP (or TLS) socket carrying length-prefixed messages (its own framing,
 * specified in docs/protocol.md §6.3), and the liveness of an end's tcp channels: each writes at
 * least every `heartbeat` ms (a PING when it has nothing else to send) and declares its peer
 * dead after `max(peerTimeout, 3 × the peer's heartbeat)` ms without a byte from it
 * ({@link Liveness}; one timer per client or server: {@link Heartbeats}).
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { nextTick } from "node:process";
import type { Socket } from "node:net";
import { PeerDeadError } from "../errors.js";
import { Liveness, tickInterval } from "../net/liveness.js";
import { Channel, type Outgoing, type Releasable } from "./channel.js";
import { get32, RPC_HEADER, RPC_MAGIC, RpcType, writeHeader, writeMessage, type Body } from "./wire.js";

/** Default of the `heartbeat` option: this end writes at least this often (ms). */
export const DEFAULT_HEARTBEAT = 1000;
/** Default of the `peerTimeout` option: silence after which the peer is dead (ms; at least 3 of its heartbeats). */
export const DEFAULT_PEER_TIMEOUT = 10000;

/**
 * The tcp channels of one end (a client, a server) and their one timer, which runs while there
 * is a channel: each tick writes a PING on the channels that wrote nothing for a heartbeat and
 * ends those whose peer was silent too long.
 */
export class Heartbeats {
  private readonly channels = new Set<TcpChannel>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly tickMs: number;

  /**
   * @param heartbeat - this end writes at least this often (ms)
   * @param peerTimeout - silence after which a peer is dead (ms; at least 3 of its heartbeats)
   */
  constructor(
    readonly heartbeat: number,
    private readonly peerTimeout: number,
  ) {
    this.tickMs = tickInterval(heartbeat, peerTimeout);
  }

  /** Liveness counters for a new channel whose peer announced `peerHeartbeat` (ms). */
  liveness(peerHeartbeat: number): Liveness {
    const l = new Liveness(this.tickMs, this.heartbeat, this.peerTimeout);
    l.setPeerHeartbeat(peerHeartbeat);
    return l;
  }

  /** Starts ticking `ch`. */
  add(ch: TcpChannel): void {
    this.channels.add(ch);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref(); // the sockets keep the process alive, not their heartbeats
    }
  }

  /** Stops ticking `ch` (ended); the timer stops with the last channel. */
  delete(ch: TcpChannel): void {
    this.channels.delete(ch);
    if (this.channels.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    for (const ch of this.channels) ch.tick(); // (a channel that ends leaves the set: fine while iterating)
  }
}

/** A whole PING frame: length, then the header of an empty {@link RpcType.Ping} message. */
const PING_FRAME = ((): Buffer => {
  const b = Buffer.alloc(4 + RPC_HEADER);
  b.writeUInt32LE(RPC_HEADER, 0);
  writeHeader(b, 4, RpcType.Ping, 0, 0, 0);
  return b;
})();

/**
 * True if the message `bytes[at .. end)` is a PING (its id and aux are not looked at). Any other
 * message of that type is delivered, and refused by the owner's header check.
 */
function isPing(bytes: Uint8Array, at: number, end: number): boolean {
  return end - at === RPC_HEADER && bytes[at + 4] === RpcType.Ping && bytes[at + 5] === 0 && bytes[at + 6] === 0 && bytes[at + 7] === 0 && get32(bytes, at) === RPC_MAGIC;
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
  /** Bytes that came with the handshake, delivered by {@link start}. */
  private early: Buffer | undefined;
  /** This end's heartbeat and the peer's silence, counted in the owner's ticks. */
  private readonly liveness: Liveness;
  /** While paused: the socket's `bytesRead` and `writableLength` at the last tick. */
  private readMark = 0;
  private unsentMark = 0;
  private readonly beat = (): void => {
    if (!this.socket.destroyed) this.socket.write(PING_FRAME);
  };

  /**
   * @param socket - the connected socket, after the handshake
   * @param maxMessage - largest message accepted from the peer (checked before allocating)
   * @param rest - bytes that arrived after the handshake
   * @param heartbeats - the liveness of this end's tcp channels (this one joins them)
   * @param peerHeartbeat - how often the peer writes, as its handshake announced (ms)
   */
  constructor(
    private readonly socket: Socket,
    private readonly maxMessage: number,
    rest: Buffer | undefined,
    private readonly heartbeats: Heartbeats,
    peerHeartbeat: number,
  ) {
    super();
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
    queueMicrotask(() => this.parse()); // frames that came with the chunk that paused us
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
      if (!isPing(plain, at, at + length)) this.onMessage(plain, at, at + length, NOTHING_HELD);
    }
  }

  protected trySend(type: RpcType, id: number, aux: number, body: Body): boolean {
    if (this.socket.destroyed) throw this.endError ?? new PeerDeadError("the request/response connection is gone");
    this.liveness.sent();
    const frame = Buffer.allocUnsafe(4 + RPC_HEADER + body.size);
    frame.writeUInt32LE(RPC_HEADER + body.size, 0);
    writeMessage(frame, 4, type, id, aux, body);
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
