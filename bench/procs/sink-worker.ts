/**
 * Worker of the postMessage throughput cases: touches one byte per 64 of every message
 * (a Uint8Array or a transferred ArrayBuffer) and grants credit: `{ acked }` every `ackEvery`
 * messages and on `{ flush: true }`. Configured with `workerData.ackEvery`.
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { touch } from "./runtime.js";

if (parentPort === null) throw new Error("sink-worker.js must run in a worker thread");
const port = parentPort;
const ackEvery = Math.max(1, Number((workerData as { ackEvery: number }).ackEvery));
let count = 0;
let sinceAck = 0;
let checksum = 0;

port.on("message", (m: unknown) => {
  if (m instanceof Uint8Array) checksum += touch(m);
  else if (m instanceof ArrayBuffer) checksum += touch(new Uint8Array(m));
  else {
    port.postMessage({ acked: count, checksum });
    sinceAck = 0;
    return;
  }
  count += 1;
  sinceAck += 1;
  if (sinceAck >= ackEvery) {
    port.postMessage({ acked: count, checksum });
    sinceAck = 0;
  }
});
