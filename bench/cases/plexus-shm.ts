/**
 * Plexus `shm` transport between two processes, through the public Sender/Receiver API:
 * lat (ping on one ring, pong on another; event-driven and spinning) and thr (one-way stream,
 * the peer touches every message).
 * @module
 */
import { connectShm, ShmSender, type Frame, type Receiver, type ShmAddress } from "../../src/index.js";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { Peer } from "../peer.js";
import { LAT_SIZES, THR_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

/** Spin budget of the spinning variant, in µs. */
const SPIN_US = 2000;

/** Ring capacity for messages of `size` bytes: 8 MiB, or room for 4 messages. */
function capacityFor(size: number): number {
  return Math.max(8 << 20, 4 * (size + 64));
}

/** Releases a received frame; a null frame means the peer closed its ring. */
function release(f: Frame | null): void {
  if (f === null) throw new Error("echo peer closed its ring");
  f.release();
}

/** Ping-pong through two rings. */
class ShmEcho implements Resource {
  private constructor(
    private readonly tx: ShmSender,
    private readonly rx: Receiver,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, size: number, spinMicros: number, adaptive: boolean): Promise<ShmEcho> {
    const tx = ShmSender.create({ capacity: 1 << 20 });
    scope.defer(() => tx.close());
    const peer = await Peer.start(scope, "plexus-peer.js", { args: ["echo", JSON.stringify(tx.address), String(spinMicros), adaptive ? "1" : "0"] });
    const rx = await connectShm(peer.info.address as ShmAddress, { spinMicros, adaptiveSpin: adaptive });
    scope.defer(() => rx.close());
    return new ShmEcho(tx, rx, new Uint8Array(size).fill(0xa5));
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
class ShmStream implements Resource {
  private sent = 0;

  private constructor(
    private readonly tx: ShmSender,
    private readonly peer: Peer,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, size: number): Promise<ShmStream> {
    const tx = ShmSender.create({ capacity: capacityFor(size), timeout: 30_000 });
    scope.defer(() => tx.close());
    const peer = await Peer.start(scope, "plexus-peer.js", { args: ["sink", JSON.stringify(tx.address), "0"] });
    return new ShmStream(tx, peer, new Uint8Array(size).fill(0xa5));
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

/** The latency variants: default (adaptive polling), pure wake-ups, and spin mode. */
const LAT_VARIANTS = [
  { name: "plexus shm", spin: 0, adaptive: true, method: "send on one ring, receive on another; defaults: eventfd wake-ups after adaptive polling (≤50 µs)" },
  { name: "plexus shm wake-only", spin: 0, adaptive: false, method: "as plexus shm with adaptiveSpin: false: every wait sleeps, every message is an eventfd wake-up" },
  { name: "plexus shm spin", spin: SPIN_US, adaptive: true, method: `both ends busy-poll up to ${SPIN_US} µs before sleeping (spinMicros)` },
];

for (const size of LAT_SIZES) {
  for (const v of LAT_VARIANTS) {
    registerCase({
      row: "lat",
      name: v.name,
      variant: size.label,
      kind: "latency",
      ratioTo: [EVENTFD_FLOOR, "zeromq ipc PAIR", "unix socket"],
      quick: size.quick,
      method: v.method,
      async run(ctx) {
        const link = await ctx.keep("link", (scope) => ShmEcho.open(scope, size.bytes, v.spin, v.adaptive));
        return roundTrips(ctx, () => link.roundTrip());
      },
    });
  }
}

for (const size of THR_SIZES) {
  registerCase({
    row: "thr",
    name: "plexus shm",
    variant: size.label,
    kind: "throughput",
    ratioTo: [MEMCPY_FLOOR, "zeromq ipc PUSH/PULL", "unix socket"],
    messageBytes: size.bytes,
    quick: size.quick,
    method: `trySend/send into a ring of max(8 MiB, 4 messages); the peer receives views, touches 1 byte per 64, releases`,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => ShmStream.open(scope, size.bytes));
      return link.stream(ctx.count);
    },
  });
}
