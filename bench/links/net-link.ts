/**
 * The suite's end of a Node `net` connection to a `net-peer.js` child: Unix socket or TCP
 * loopback, used for ping-pong (`echo`) or a one-way stream (`sink`).
 * @module
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import type { CaseScope, Resource, ThroughputSample } from "../harness.js";
import { ReplySlot, now, streamed } from "../measure.js";
import { Peer } from "../peer.js";

/** Which socket family. */
export type NetTransport = "unix" | "tcp";

/** A connected socket to a peer process. */
export class NetLink implements Resource {
  private readonly slot: ReplySlot;
  private received = 0;
  private sentBytes = 0;
  private readonly payload: Buffer;

  private constructor(
    private readonly socket: Socket,
    private readonly peer: Peer,
    private readonly size: number,
    private readonly signal: AbortSignal,
  ) {
    this.slot = new ReplySlot(signal);
    this.payload = Buffer.alloc(size, 0xa5);
  }

  /**
   * Starts the peer and connects.
   * @param scope - the case scope (owns the peer, the socket and the socket file)
   * @param transport - "unix" or "tcp" (loopback, TCP_NODELAY on both ends)
   * @param mode - "echo" for round trips, "sink" for streams
   * @param size - message size in bytes
   */
  static async open(scope: CaseScope, transport: NetTransport, mode: "echo" | "sink", size: number): Promise<NetLink> {
    const path = transport === "unix" ? scope.tempPath(".sock") : "-";
    const peer = await Peer.start(scope, "net-peer.js", { args: [transport, path, mode, String(size)] });
    const socket = transport === "unix" ? connect({ path }) : connect({ host: "127.0.0.1", port: Number(peer.info["port"]), noDelay: true });
    let closing = false;
    scope.defer(() => {
      closing = true;
      socket.destroy();
    });
    socket.on("error", (err) => scope.fail(new Error(`${transport} socket: ${err.message}`, { cause: err })));
    socket.on("close", () => {
      if (!closing) scope.fail(new Error(`${transport} socket closed by the peer`));
    });
    await once(socket, "connect", { signal: scope.signal });
    socket.setNoDelay(true);
    const link = new NetLink(socket, peer, size, scope.signal);
    if (mode === "echo") socket.on("data", (chunk: Buffer) => link.onEcho(chunk.length));
    return link;
  }

  private onEcho(bytes: number): void {
    this.received += bytes;
    if (this.received >= this.size) {
      this.received -= this.size;
      this.slot.settle();
    }
  }

  /** Sends one message and resolves when the whole echo is back. */
  roundTrip(): Promise<void> {
    const reply = this.slot.wait();
    this.socket.write(this.payload);
    return reply;
  }

  /** Writes `count` messages back to back (honouring backpressure) and waits until the peer read them all. */
  async stream(count: number): Promise<ThroughputSample> {
    this.sentBytes += count * this.size;
    const t0 = now();
    const done = this.peer.call("waitFor", this.sentBytes, 60_000);
    for (let i = 0; i < count; i++) {
      if (!this.socket.write(this.payload)) await once(this.socket, "drain", { signal: this.signal });
    }
    await done;
    return streamed(count, this.size, t0);
  }

  /** Everything is released by the case scope. */
  close(): void {}
}
