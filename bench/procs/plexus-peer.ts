/**
 * Peer of the Plexus shm cases. Usage: `plexus-peer.js <echo|sink> <address-json> <spin-micros> [adaptive 1|0]`.
 * - `echo`: attaches to the suite's ring, answers every message on its own ring (reported in
 *   the ready info as `address`), with the same bytes.
 * - `sink`: attaches to the suite's ring, touches one byte per 64 of every message, counts them
 *   (`waitFor(messages)`).
 * @module
 */
import { connectShm, ShmSender, type Receiver, type ShmAddress } from "../../src/index.js";
import { Counter, serve, touch } from "./runtime.js";

const [mode, addressJson, spinArg, adaptiveArg] = process.argv.slice(2);
if ((mode !== "echo" && mode !== "sink") || addressJson === undefined) throw new Error("usage: plexus-peer.js <echo|sink> <address-json> <spin-micros>");
const spinMicros = Number(spinArg ?? 0);
const rx: Receiver = await connectShm(JSON.parse(addressJson) as ShmAddress, { spinMicros, adaptiveSpin: adaptiveArg !== "0" });

if (mode === "echo") {
  const back = ShmSender.create({ capacity: 1 << 20 });
  serve(() => null, { address: back.address }, () => void back.close());
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
