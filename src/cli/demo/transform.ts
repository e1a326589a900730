/**
 * Demo transform, run in a worker thread of the demo process: reads `demo/raw`, publishes
 * `demo/filtered` `{ seq, sentAt, mean, rms, envelope }` — new values, never the received
 * views (received data is read-only and goes back to the ring on release).
 * (Internal: not part of the public API.)
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "../../node/node.js";

interface Raw {
  seq: number;
  sentAt: number;
  samples: Float64Array;
}
const { address } = workerData as { address: string };
const node = await connect({ address, embedded: false, name: "demo transform (worker)" });
const out = await node.publisher<{ seq: number; sentAt: number; mean: number; rms: number; envelope: Float32Array }>("demo/filtered");
const sub = await node.subscriber<Raw>("demo/raw", { queue: 64 });
parentPort?.on("message", (m) => {
  if (m === "stop") void sub.close().then(() => node.close()).then(() => parentPort?.postMessage("stopped"));
});
parentPort?.postMessage("ready");
await sub.forEach(async (s) => {
  const x = s.value.samples;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    sq += x[i] * x[i];
  }
  const bins = 32;
  const envelope = new Float32Array(bins);
  const per = Math.max(1, Math.floor(x.length / bins));
  for (let b = 0; b < bins; b++) {
    let m = 0;
    for (let i = b * per; i < Math.min(x.length, (b + 1) * per); i++) m = Math.max(m, Math.abs(x[i]));
    envelope[b] = m;
  }
  const n = Math.max(1, x.length);
  await out.publish({ seq: s.value.seq, sentAt: s.value.sentAt, mean: sum / n, rms: Math.sqrt(sq / n), envelope }).catch(() => {});
});
