/**
 * Demo consumer process: reads `demo/filtered` over one transport (`shm` or `tcp`) and prints
 * one JSON line per second: `{ count, p50, p90, p99 }` (end-to-end latency in ms, producer to
 * here). argv[2]: JSON `{ address, transport }`.
 * @internal
 * @module
 */
import { connect } from "../../pubsub/node.js";
import { now, percentile } from "./clock.js";

const { address, transport } = JSON.parse(process.argv[2]) as { address: string; transport: "shm" | "tcp" };
const node = await connect({ address, embedded: false, name: `demo consumer (${transport})` });
const sub = await node.subscriber<{ sentAt: number }>("demo/filtered", { transport, queue: 64 });
let latencies: number[] = [];
let count = 0;
const timer = setInterval(() => {
  const sorted = latencies.sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ count, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) })}\n`);
  latencies = [];
  count = 0;
}, 1000);
const stop = (): void => {
  clearInterval(timer);
  setTimeout(() => process.exit(0), 2000).unref(); // never outlive the demo for long
  void sub.close().then(() => node.close()).then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop); // the demo process is gone (even killed -9)
process.stdout.write("ready\n");
await sub.forEach((s) => {
  count++;
  if (latencies.length < 100_000) latencies.push(now() - s.value.sentAt);
});
