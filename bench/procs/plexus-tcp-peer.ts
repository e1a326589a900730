/**
 * Peer of the Plexus tcp cases. Usage: `plexus-tcp-peer.js <echo|sink> <address-json>`.
 * - `echo`: connects to the suite's sender, answers every message through its own TcpSender
 *   (reported in the ready info as `address`), with the same bytes.
 * - `sink`: connects to the suite's sender, touches one byte per 64 of every message, counts
 *   them (`waitFor(messages)`).
 * @module
 */
import { connectTcp, TcpSender, type TcpAddress } from "../../src/transport/tcp.js";
import type { Receiver } from "../../src/index.js";
import { Counter, serve, touch } from "./runtime.js";

const [mode, addressJson] = process.argv.slice(2);
if ((mode !== "echo" && mode !== "sink") || addressJson === undefined) throw new Error("usage: plexus-tcp-peer.js <echo|sink> <address-json>");
const rx: Receiver = await connectTcp(JSON.parse(addressJson) as TcpAddress);

if (mode === "echo") {
  const back = await TcpSender.create({ capacity: 1 << 20 });
  serve(() => null, { address: back.address }, () => back.destroy());
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
