/**
 * Demo consumer process: reads `demo/filtered` over one transport (`shm` or `tcp`) and prints
 * one JSON line per second: `{ count, p50, p90, p99 }` (end-to-end latency in ms, producer to
 * here). With `every` > 0 it also asks the `demo/peak` service (request/response, served by the
 * demo process) about one message in `every`, and adds `rpc: { count, errors, p50, p99 }` (round
 * trip in ms) to its line. With `queue` (a queue server URL) and `putEvery` > 0 it puts a
 * summary of one message in `putEvery` to that acknowledged queue and adds `queue: { count,
 * errors, p50, p99 }` (put to acknowledgement, ms). argv[2]: JSON `{ address, transport, every?,
 * queue?, putEvery? }`.
 * (Internal: not part of the public API.)
 * @module
 */
import { connect } from "../../node/node.js";
import { queue as queues } from "../../queue/index.js";
import { now, percentile } from "./clock.js";

const { address, transport, every = 0, queue, putEvery = 0 } = JSON.parse(process.argv[2]) as { address: string; transport: "shm" | "tcp"; every?: number; queue?: string; putEvery?: number };
const node = await connect({ address, embedded: false, name: `demo consumer (${transport})` });
const sub = await node.subscriber<{ seq: number; sentAt: number; envelope: Float32Array }>("demo/filtered", { transport, queue: 64 });
const client = every > 0 ? await node.client<{ seq: number; envelope: Float32Array }, { seq: number; peak: number; bin: number }>("demo/peak", { timeout: 2000 }) : undefined;
const summaries = queue !== undefined && putEvery > 0 ? await queues.client({ url: queue, linger: 500 }) : undefined;
let latencies: number[] = [];
let acks: number[] = [];
let putErrors = 0;
let count = 0;
let rtts: number[] = [];
let rpcErrors = 0;
const timer = setInterval(() => {
  const sorted = latencies.sort((a, b) => a - b);
  const line: Record<string, unknown> = { count, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
  if (client) {
    const r = rtts.sort((a, b) => a - b);
    line.rpc = { count: r.length, errors: rpcErrors, p50: percentile(r, 0.5), p99: percentile(r, 0.99) };
  }
  if (summaries) {
    const a = acks.sort((x, y) => x - y);
    line.queue = { count: a.length, errors: putErrors, p50: percentile(a, 0.5), p99: percentile(a, 0.99) };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
  latencies = [];
  count = 0;
  rtts = [];
  rpcErrors = 0;
  acks = [];
  putErrors = 0;
}, 1000);
const stop = (): void => {
  clearInterval(timer);
  setTimeout(() => process.exit(0), 2000).unref(); // never outlive the demo for long
  void sub
    .close()
    .then(() => summaries?.close())
    .then(() => node.close())
    .then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop); // the demo process is gone (even killed -9)
process.stdout.write("ready\n");
await sub.forEach((s) => {
  count++;
  if (latencies.length < 100_000) latencies.push(now() - s.value.sentAt);
  if (client && s.value.seq % every === 0) {
    // The received envelope is a view of the ring, valid only in this callback: the request
    // may wait for an in-flight slot, so it gets its own copy.
    const sent = performance.now();
    client.request({ seq: s.value.seq, envelope: s.value.envelope.slice() }).then(
      () => void (rtts.length < 100_000 && rtts.push(performance.now() - sent)),
      () => void rpcErrors++,
    );
  }
  if (summaries && s.value.seq % putEvery === 0) {
    // A summary of the message (plain numbers, nothing borrowed from the ring), acknowledged by the queue server.
    const sent = performance.now();
    summaries.put({ seq: s.value.seq, latency: now() - s.value.sentAt }).then(
      () => void (acks.length < 100_000 && acks.push(performance.now() - sent)),
      () => void putErrors++,
    );
  }
});
