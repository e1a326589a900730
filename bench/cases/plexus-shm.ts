/**
 * Plexus `shm` transport between two processes, through the public Sender/Receiver API:
 * lat (ping on one ring, pong on another: default, wake-ups only, spinning) and thr (one-way
 * stream, the peer touches every message).
 * @module
 */
import { registerCase } from "../harness.js";
import { PlexusEcho, PlexusStream } from "../links/plexus-link.js";
import { roundTrips } from "../measure.js";
import { LAT_SIZES, THR_SIZES } from "../sizes.js";
import { KITS } from "../transport-kit.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

/** Spin budget of the spinning variant, in µs. */
const SPIN_US = 2000;

/** The latency variants: default (adaptive polling), pure wake-ups, and spin mode. */
const LAT_VARIANTS = [
  { name: "plexus shm", spinMicros: 0, adaptiveSpin: true, method: "send on one ring, receive on another; defaults: eventfd wake-ups after adaptive polling (≤50 µs)" },
  { name: "plexus shm wake-only", spinMicros: 0, adaptiveSpin: false, method: "as plexus shm with adaptiveSpin: false: every wait sleeps, every message is an eventfd wake-up" },
  { name: "plexus shm spin", spinMicros: SPIN_US, adaptiveSpin: true, method: `both ends busy-poll up to ${SPIN_US} µs before sleeping (spinMicros)` },
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
        const link = await ctx.keep("link", (scope) => PlexusEcho.open(scope, KITS.shm, size.bytes, v));
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
    method: "trySend/send into a ring of max(8 MiB, 4 messages); the peer receives views, touches 1 byte per 64, releases",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => PlexusStream.open(scope, KITS.shm, size.bytes));
      return link.stream(ctx.count);
    },
  });
}
