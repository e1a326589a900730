/**
 * Peer of the zeromq.js cases: binds `endpoint` and either echoes every message on a PAIR
 * socket (`echo`) or pulls and touches every message on a PULL socket (`sink`, answering
 * `waitFor(totalMessages)`). Usage: `zmq-peer.js <echo|sink> <endpoint>`.
 * @module
 */
import * as zmq from "zeromq";
import { Counter, serve, touch } from "./runtime.js";

const [mode, endpoint] = process.argv.slice(2);
if ((mode !== "echo" && mode !== "sink") || endpoint === undefined) throw new Error("usage: zmq-peer.js <echo|sink> <endpoint>");

const counter = new Counter();
const socket = mode === "echo" ? new zmq.Pair({ linger: 0 }) : new zmq.Pull({ linger: 0 });
await socket.bind(endpoint);

serve(
  (op, args) => {
    if (op === "waitFor") return counter.waitFor(Number(args));
    throw new Error(`unknown op ${op}`);
  },
  { endpoint },
  () => socket.close(),
);

try {
  if (socket instanceof zmq.Pair) {
    for await (const [message] of socket) await socket.send(message as Buffer);
  } else {
    for await (const [message] of socket) {
      counter.checksum += touch(message as Buffer);
      counter.add(1);
    }
  }
} catch (err) {
  // The socket was closed on exit; anything else is a real failure.
  if (!socket.closed) throw err;
}
