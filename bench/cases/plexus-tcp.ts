/**
 * Plexus `tcp` transport over loopback between two processes, through the public
 * Sender/Receiver API: lat (ping through one sender, pong through another) and thr (one-way
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
      const link = await ctx.keep("link", (scope) => PlexusEcho.open(scope, KITS.tcp, size.bytes, { spinMicros: 0, adaptiveSpin: true }));
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
      const link = await ctx.keep("link", (scope) => PlexusStream.open(scope, KITS.tcp, size.bytes));
      return link.stream(ctx.count);
    },
  });
}
