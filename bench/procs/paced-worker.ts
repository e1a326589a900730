/**
 * The worker-thread subscriber of the paced row, started by `paced-peer.js` in its process.
 * `workerData = { address, topic, collectMs, anticipate }`: connects to the GraphServer, subscribes
 * to the topic (default options but `anticipate`), posts `{ ready: true }`, then answers `{ id, op: "begin" | "collect", arg }`
 * with `{ id, result }` or `{ id, error }` (see {@link Arrivals}).
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "../../src/index.js";
import { Arrivals, record, type PacedMessage } from "./paced-arrivals.js";

if (parentPort === null) throw new Error("paced-worker.js must run in a worker thread");
const port = parentPort;
const { address, topic, collectMs, anticipate } = workerData as { address: string; topic: string; collectMs: number; anticipate: boolean };
const node = await connect({ address, embedded: false });
const sub = await node.subscriber<PacedMessage>(topic, { anticipate });
const arrivals = new Arrivals();
record(sub, arrivals).catch((err: unknown) => {
  // Ends the worker with an error: its process fails the case.
  setImmediate(() => {
    throw err;
  });
});

port.on("message", (m: { id: number; op: string; arg: number }) => {
  Promise.resolve()
    .then((): unknown => {
      if (m.op === "begin") return arrivals.begin(m.arg);
      if (m.op === "collect") return arrivals.collect(m.arg, collectMs);
      throw new Error(`unknown op ${m.op}`);
    })
    .then(
      (result) => port.postMessage({ id: m.id, result: result ?? null }),
      (err: unknown) => port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) }),
    );
});
port.postMessage({ ready: true });
