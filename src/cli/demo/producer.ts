/**
 * Demo producer process: publishes `{ seq, sentAt, samples }` on `demo/raw` at a steady rate
 * (a noisy sine in a Float64Array). argv[2]: JSON `{ address, rate, size }`.
 * (Internal: not part of the public API.)
 * @module
 */
import { connect } from "../../node/node.js";
import { now } from "./clock.js";

const { address, rate, size } = JSON.parse(process.argv[2]) as { address: string; rate: number; size: number };
const node = await connect({ address, embedded: false, name: "demo producer" });
const pub = await node.publisher<{ seq: number; sentAt: number; samples: Float64Array }>("demo/raw");
let seq = 0;
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref(); // never outlive the demo for long
  await node.close();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
process.on("disconnect", () => void stop()); // the demo process is gone (even killed -9)
process.stdout.write("ready\n");
const tick = 1; // ms: small batches, so latency is not queueing behind a burst
const started = now();
for (;;) {
  if (stopping) break;
  const due = Math.floor(((now() - started) * rate) / 1000);
  while (seq < due && !stopping) {
    const samples = new Float64Array(size);
    const phase = seq / 50;
    for (let i = 0; i < size; i++) samples[i] = Math.sin(phase + i / 16) + (Math.random() - 0.5) * 0.2;
    try {
      await pub.publish({ seq: seq++, sentAt: now(), samples });
    } catch (err) {
      if (stopping) break;
      process.stderr.write(`producer: ${String(err)}\n`);
    }
  }
  await new Promise((r) => setTimeout(r, tick));
}
