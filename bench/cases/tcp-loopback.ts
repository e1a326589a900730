/**
 * Node TCP over loopback with TCP_NODELAY between two processes: lat (echo, payload carried).
 * @module
 */
import { registerCase } from "../harness.js";
import { roundTrips } from "../measure.js";
import { NetLink } from "../links/net-link.js";
import { LAT_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: "tcp loopback",
    variant: size.label,
    kind: "latency",
    ratioTo: EVENTFD_FLOOR,
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => NetLink.open(scope, "tcp", "echo", size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}
