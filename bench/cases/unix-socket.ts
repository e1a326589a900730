/**
 * Node Unix socket (`net`) between two processes: lat (echo, payload carried) and thr (stream).
 * @module
 */
import { registerCase } from "../harness.js";
import { roundTrips } from "../measure.js";
import { NetLink } from "../links/net-link.js";
import { LAT_SIZES, THR_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";
import { MEMCPY_FLOOR } from "./memcpy-floor.js";

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: "unix socket",
    variant: size.label,
    kind: "latency",
    ratioTo: EVENTFD_FLOOR,
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => NetLink.open(scope, "unix", "echo", size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}

for (const size of THR_SIZES) {
  registerCase({
    row: "thr",
    name: "unix socket",
    variant: size.label,
    kind: "throughput",
    ratioTo: MEMCPY_FLOOR,
    messageBytes: size.bytes,
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => NetLink.open(scope, "unix", "sink", size.bytes));
      return link.stream(ctx.count);
    },
  });
}
