/**
 * Plexus `tcp` transport over loopback between two processes, through the public
 * Sender/Receiver API: lat (ping through one sender, pong through another) and thr (one-way
 * stream, the peer touches every message).
 * @module
 */
import type { Frame, Receiver } from "../../src/index.js";
import { connectTcp, TcpSender, type TcpAddress } from "../../src/transport/tcp.js";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { Peer } from "../peer.js";
import { LAT_SIZES, THR_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

/** Window for messages of `size` bytes: 8 MiB, or room for 4 messages. */
function capacityFor(size: number): number {
  return Math.max(8 << 20, 4 * (size + 64));
}

/** Releases a received frame; a null frame means the peer closed its sender. */
function release(f: Frame | null): void {
  if (f === null) throw new Error("echo peer closed its sender");
  f.release();
}

/** Ping-pong through two tcp senders. */
class TcpEcho implements Resource {
  private constructor(
    private readonly tx: TcpSender,
    private readonly rx: Receiver,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, size: number): Promise<TcpEcho> {
    const tx = await TcpSender.create({ capacity: 1 << 20 });
    scope.defer(() => tx.destroy());
    const peer = await Peer.start(scope, "plexus-tcp-peer.js", { args: ["echo", JSON.stringify(tx.address)] });
    const rx = await connectTcp(peer.info.address as TcpAddress);
    scope.defer(() => rx.close());
    return new TcpEcho(tx, rx, new Uint8Array(size).fill(0xa5));
  }

  roundTrip(): Promise<void> {
    const sent = this.tx.trySend(this.payload) ? undefined : this.tx.send(this.payload);
    if (sent) return sent.then(() => this.roundTripReceive());
    return this.roundTripReceive();
  }

  private roundTripReceive(): Promise<void> {
    return this.rx.receive({ timeout: 10_000 }).then(release);
  }

  close(): void {}
}

/** A stream to a sink process. */
class TcpStream implements Resource {
  private sent = 0;

  private constructor(
    private readonly tx: TcpSender,
    private readonly peer: Peer,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, size: number): Promise<TcpStream> {
    const tx = await TcpSender.create({ capacity: capacityFor(size), timeout: 30_000 });
    scope.defer(() => tx.destroy());
    const peer = await Peer.start(scope, "plexus-tcp-peer.js", { args: ["sink", JSON.stringify(tx.address)] });
    return new TcpStream(tx, peer, new Uint8Array(size).fill(0xa5));
  }

  async stream(count: number): Promise<ThroughputSample> {
    this.sent += count;
    const done = this.peer.call("waitFor", this.sent, 120_000);
    const t0 = now();
    const tx = this.tx;
    const payload = this.payload;
    for (let i = 0; i < count; i++) if (!tx.trySend(payload)) await tx.send(payload);
    await done;
    return streamed(count, payload.length, t0);
  }

  close(): void {}
}

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: "plexus tcp",
    variant: size.label,
    kind: "latency",
    ratioTo: [EVENTFD_FLOOR, "tcp loopback"],
    quick: size.quick,
    method: "send through one TcpSender, receive from another (loopback, TCP_NODELAY, credit acks); event-driven",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => TcpEcho.open(scope, size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}

for (const size of THR_SIZES) {
  registerCase({
    row: "thr",
    name: "plexus tcp",
    variant: size.label,
    kind: "throughput",
    ratioTo: [MEMCPY_FLOOR, "unix socket", "plexus shm"],
    messageBytes: size.bytes,
    quick: size.quick,
    method: "trySend/send with a window of max(8 MiB, 4 messages) over loopback TCP; the peer receives views, touches 1 byte per 64, releases",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => TcpStream.open(scope, size.bytes));
      return link.stream(ctx.count);
    },
  });
}
