/**
 * zeromq.js over `ipc://` between two processes: lat with PAIR (echo), thr with PUSH/PULL.
 * zeromq is imported lazily so other rows do not load it.
 * @module
 */
import type { Pair, Push } from "zeromq";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { Peer } from "../peer.js";
import { LAT_SIZES, THR_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

/** A connected zeromq socket to a `zmq-peer.js` child. */
class ZmqLink<S extends Pair | Push> implements Resource {
  private sent = 0;
  private readonly payload: Buffer;

  private constructor(
    private readonly socket: S,
    private readonly peer: Peer,
    private readonly size: number,
  ) {
    this.payload = Buffer.alloc(size, 0xa5);
  }

  static async open(scope: CaseScope, mode: "echo", size: number): Promise<ZmqLink<Pair>>;
  static async open(scope: CaseScope, mode: "sink", size: number): Promise<ZmqLink<Push>>;
  static async open(scope: CaseScope, mode: "echo" | "sink", size: number): Promise<ZmqLink<Pair> | ZmqLink<Push>> {
    const zmq = await import("zeromq");
    const endpoint = `ipc://${scope.tempPath(".zmq")}`;
    const peer = await Peer.start(scope, "zmq-peer.js", { args: [mode, endpoint] });
    const socket = mode === "echo" ? new zmq.Pair({ linger: 0 }) : new zmq.Push({ linger: 0 });
    scope.defer(() => socket.close());
    socket.connect(endpoint);
    return socket instanceof zmq.Pair ? new ZmqLink(socket, peer, size) : new ZmqLink(socket as Push, peer, size);
  }

  /** Sends one message and waits for the echo (PAIR). */
  async roundTrip(this: ZmqLink<Pair>): Promise<void> {
    await this.socket.send(this.payload);
    await this.socket.receive();
  }

  /** Pushes `count` messages and waits until the peer pulled and touched them all. */
  async stream(this: ZmqLink<Push>, count: number): Promise<ThroughputSample> {
    this.sent += count;
    const t0 = now();
    const done = this.peer.call("waitFor", this.sent, 60_000);
    for (let i = 0; i < count; i++) await this.socket.send(this.payload);
    await done;
    return streamed(count, this.size, t0);
  }

  close(): void {}
}

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: "zeromq ipc PAIR",
    variant: size.label,
    kind: "latency",
    ratioTo: EVENTFD_FLOOR,
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => ZmqLink.open(scope, "echo", size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}

for (const size of THR_SIZES) {
  registerCase({
    row: "thr",
    name: "zeromq ipc PUSH/PULL",
    variant: size.label,
    kind: "throughput",
    ratioTo: MEMCPY_FLOOR,
    messageBytes: size.bytes,
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => ZmqLink.open(scope, "sink", size.bytes));
      return link.stream(ctx.count);
    },
  });
}
