// A worker thread reads a ring the main thread writes: zero-copy views, no postMessage per
// message. Run: node dist/examples/worker-ring.js
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { once } from "node:events";
import { connectThread, ThreadSender, type ThreadEndpoint } from "plexus";

if (isMainThread) {
  await using tx = ThreadSender.create();
  const { endpoint, transfer } = tx.endpoint();
  const worker = new Worker(new URL(import.meta.url), { workerData: endpoint, transferList: transfer });
  while (tx.receivers === 0) await new Promise((r) => setTimeout(r, 1));
  const sample = new Float64Array(1024);
  for (let i = 0; i < 1000; i++) {
    sample.fill(i);
    await tx.send(sample); // copied once into the ring
  }
  await tx.close();
  const [sum] = (await once(worker, "message")) as [number];
  console.log(`worker summed ${sum} (expected ${1024 * ((999 * 1000) / 2)})`);
} else {
  const rx = connectThread(workerData as ThreadEndpoint);
  let sum = 0;
  for await (const frame of rx) {
    const values = new Float64Array(frame.bytes.buffer, frame.bytes.byteOffset, frame.bytes.length / 8); // a view, no copy
    for (const v of values) sum += v;
  }
  parentPort!.postMessage(sum);
}
