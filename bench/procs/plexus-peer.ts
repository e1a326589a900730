/**
 * Peer of the Plexus transport cases.
 * Usage: `plexus-peer.js <shm|tcp> <echo|sink> <address-json> <spin-micros> <adaptive 1|0>`.
 * - `echo`: attaches to the suite's sender and answers every message through its own sender
 *   (its address is in the ready info), with the same bytes;
 * - `sink`: attaches to the suite's sender, touches one byte per 64 of every message, counts
 *   them (`waitFor(messages)`).
 * @module
 */
import { KITS } from "../transport-kit.js";
import { Counter, serve, touch } from "./runtime.js";

const [kitName, mode, addressJson, spinArg, adaptiveArg] = process.argv.slice(2);
const kit = KITS[kitName as keyof typeof KITS];
if (kit === undefined || (mode !== "echo" && mode !== "sink") || addressJson === undefined) {
  throw new Error("usage: plexus-peer.js <shm|tcp> <echo|sink> <address-json> <spin-micros> <adaptive 1|0>");
}
const opts = { spinMicros: Number(spinArg ?? 0), adaptiveSpin: adaptiveArg !== "0" };
const rx = await kit.attach(JSON.parse(addressJson), opts);

if (mode === "echo") {
  const { sender: back, address, close } = await kit.sender(1 << 20, 5000);
  serve(() => null, { address }, () => void close());
  for (;;) {
    const f = await rx.receive();
    if (f === null) break;
    if (!back.trySend(f.bytes)) await back.send(f.bytes);
    f.release();
  }
} else {
  const counter = new Counter();
  serve((op, args) => {
    if (op === "waitFor") return counter.waitFor(Number(args));
    throw new Error(`unknown op ${op}`);
  }, {});
  for (;;) {
    const f = await rx.receive();
    if (f === null) break;
    counter.checksum += touch(f.bytes);
    f.release();
    let n = 1;
    for (let g = rx.tryReceive(); g !== null; g = rx.tryReceive()) {
      counter.checksum += touch(g.bytes);
      g.release();
      n++;
    }
    counter.add(n);
  }
}
