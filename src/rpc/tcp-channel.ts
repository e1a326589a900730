/**
 * The tcp channel: one TCP (or TLS) socket carrying length-prefixed messages (its own framing,
 * specified in docs/protocol.md §6.3).
 * @internal
 * @module
 */
import { Buffer } from "node:buffer";
import { nextTick } from "node:process";
import type { Socket } from "node:net";
import { PeerDeadError } from "../errors.js";
import { Channel, type Outgoing, type Releasable } from "./channel.js";
import { RPC_HEADER, writeMessage, type Body, type RpcType } from "./wire.js";

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

  /**
   * @param socket - the connected socket, after the handshake
   * @param maxMessage - largest message accepted from the peer (checked before allocating)
   * @param rest - bytes that arrived after the handshake
   */
  constructor(
    private readonly socket: Socket,
    private readonly maxMessage: number,
    rest?: Buffer,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.onDrain());
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.end(new PeerDeadError("the request/response peer closed the connection or died")));
    if (rest !== undefined && rest.length > 0) queueMicrotask(() => this.onData(rest));
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

  private onData(chunk: Buffer): void {
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
      this.onMessage(plain, at, at + length, NOTHING_HELD);
    }
  }

  protected trySend(type: RpcType, id: number, aux: number, body: Body): boolean {
    if (this.socket.destroyed) throw this.endError ?? new PeerDeadError("the request/response connection is gone");
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
