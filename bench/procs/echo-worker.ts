/**
 * Worker of the postMessage latency cases: posts every message straight back.
 * @module
 */
import { parentPort } from "node:worker_threads";

if (parentPort === null) throw new Error("echo-worker.js must run in a worker thread");
const port = parentPort;
port.on("message", (m: unknown) => port.postMessage(m));
