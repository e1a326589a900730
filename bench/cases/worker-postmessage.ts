/**
 * lat: worker `postMessage` round trip (main <-> worker thread, one process), the in-process peer.
 * @module
 */
import { registerCase } from "../harness.js";
import { roundTrips } from "../measure.js";
import { WorkerEcho } from "../links/worker-link.js";
import { LAT_SIZES } from "../sizes.js";
import { EVENTFD_FLOOR } from "./eventfd-floor.js";

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: "worker postMessage",
    variant: size.label,
    kind: "latency",
    ratioTo: EVENTFD_FLOOR,
    quick: size.quick,
    method: "same process: main thread <-> worker thread, Uint8Array cloned both ways",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => WorkerEcho.open(scope, size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}
