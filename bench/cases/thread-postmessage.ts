/**
 * thread row peers: `postMessage` latency (64 B) and throughput (64 KiB, 1 MiB) with a copy
 * (structured clone) and with a transfer of a freshly allocated ArrayBuffer.
 * @module
 */
import { registerCase } from "../harness.js";
import { roundTrips } from "../measure.js";
import { WorkerEcho, WorkerSink } from "../links/worker-link.js";
import { THREAD_LAT_SIZES, THREAD_THR_SIZES } from "../sizes.js";

/** Baseline of the thread row's latency. */
export const POSTMESSAGE = "postMessage";
/** Baseline of the thread row's throughput. */
export const POSTMESSAGE_COPY = "postMessage copy";

for (const size of THREAD_LAT_SIZES) {
  registerCase({
    row: "thread",
    name: POSTMESSAGE,
    variant: size.label,
    kind: "latency",
    quick: size.quick,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => WorkerEcho.open(scope, size.bytes));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}

for (const size of THREAD_THR_SIZES) {
  for (const transfer of [false, true]) {
    registerCase({
      row: "thread",
      name: transfer ? "postMessage transfer" : POSTMESSAGE_COPY,
      variant: size.label,
      kind: "throughput",
      ...(transfer ? { ratioTo: POSTMESSAGE_COPY } : {}),
      messageBytes: size.bytes,
      quick: size.quick,
      method: transfer ? "new ArrayBuffer per message, transferred" : "same Uint8Array, cloned per message",
      async run(ctx) {
        const link = await ctx.keep("link", (scope) => WorkerSink.open(scope, size.bytes));
        return link.stream(ctx.count, transfer);
      },
    });
  }
}
