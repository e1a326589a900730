/**
 * Peer of the Plexus pub/sub cases. Usage: `plexus-pubsub-peer.js <echo|echo-callback|echo-wake|sink> <graph-address> <topic>`.
 * - `echo`: subscribes to `<topic>/ping` and publishes every value back on `<topic>/pong`
 *   (a for-await loop); `echo-callback` does the same from a `forEach` callback; `echo-wake` as
 *   `echo` with `adaptiveSpin: false` (every message wakes the subscriber up);
 * - `sink`: subscribes to `<topic>`, touches one byte per 64 of the `data` typed array of every
 *   message and counts them (`waitFor(messages)`).
 * @module
 */
import { connect } from "../../src/index.js";
import { Counter, serve, touch } from "./runtime.js";

const [mode, address, topic] = process.argv.slice(2);
if ((mode !== "echo" && mode !== "echo-callback" && mode !== "echo-wake" && mode !== "sink") || !address || !topic) {
  throw new Error("usage: plexus-pubsub-peer.js <echo|echo-callback|echo-wake|sink> <graph-address> <topic>");
}
const node = await connect({ address, embedded: false });

if (mode === "echo" || mode === "echo-callback" || mode === "echo-wake") {
  const pong = await node.publisher(`${topic}/pong`);
  const ping = await node.subscriber(`${topic}/ping`, { queue: 4, adaptiveSpin: mode !== "echo-wake" });
  serve(() => null, {}, () => void node.close());
  if (mode !== "echo-callback") for await (const s of ping) await pong.publish(s.value);
  else await ping.forEach((s) => pong.publish(s.value));
} else {
  const sub = await node.subscriber<{ data: Float64Array }>(topic, { queue: Number(process.env.PLEXUS_BENCH_QUEUE ?? 1) });
  const counter = new Counter();
  serve((op, args) => {
    if (op === "waitFor") return counter.waitFor(Number(args));
    throw new Error(`unknown op ${op}`);
  }, {}, () => void node.close());
  for await (const s of sub) {
    const d = s.value.data;
    counter.checksum += touch(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    counter.add(1);
  }
}
