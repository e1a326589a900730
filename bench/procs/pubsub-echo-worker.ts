/**
 * Worker of the thread row's pub/sub latency case: `workerData = { address, topic }`; connects to
 * the GraphServer (its own node), subscribes to `<topic>/ping` and publishes every value back on
 * `<topic>/pong` from a for-await loop, as the process peer of the lat row does; posts "ready".
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "../../src/index.js";

if (parentPort === null) throw new Error("pubsub-echo-worker.js must run in a worker thread");
const port = parentPort;
const { address, topic } = workerData as { address: string; topic: string };
const node = await connect({ address, embedded: false });
const pong = await node.publisher(`${topic}/pong`);
const ping = await node.subscriber(`${topic}/ping`, { queue: 4 });
port.on("message", () => void node.close());
port.postMessage("ready");
for await (const s of ping) await pong.publish(s.value);
