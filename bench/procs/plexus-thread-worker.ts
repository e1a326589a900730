/**
 * Worker of the Plexus thread cases. `workerData = { mode, endpoint }`:
 * - `echo`: creates its own ring, posts its endpoint, answers every message with the same bytes;
 * - `sink`: touches one byte per 64 of every message; answers `{ until: n }` with `{ count }`
 *   once it has read n messages.
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { connectThread, ThreadSender, type ThreadEndpoint } from "../../src/index.js";
import { touch } from "./runtime.js";

if (parentPort === null) throw new Error("plexus-thread-worker.js must run in a worker thread");
const port = parentPort;
const { mode, endpoint, spinMicros } = workerData as { mode: "echo" | "sink"; endpoint: ThreadEndpoint; spinMicros: number };
const rx = connectThread(endpoint, { spinMicros });

if (mode === "echo") {
  const back = ThreadSender.create({ capacity: 1 << 20 });
  const { endpoint: out, transfer } = back.endpoint();
  port.postMessage(out, transfer);
  for (;;) {
    const f = await rx.receive();
    if (f === null) break;
    if (!back.trySend(f.bytes)) await back.send(f.bytes);
    f.release();
  }
} else {
  let count = 0;
  let checksum = 0;
  let until = Infinity;
  port.on("message", (m: { until: number }) => {
    until = m.until;
    if (count >= until) port.postMessage({ count, checksum });
  });
  for (;;) {
    const f = await rx.receive();
    if (f === null) break;
    checksum += touch(f.bytes);
    f.release();
    count++;
    for (let g = rx.tryReceive(); g !== null; g = rx.tryReceive()) {
      checksum += touch(g.bytes);
      g.release();
      count++;
    }
    if (count >= until) {
      port.postMessage({ count, checksum });
      until = Infinity;
    }
  }
}
