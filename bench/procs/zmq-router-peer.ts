/**
 * Peer of the rr row's zeromq.js cases: a ROUTER bound to `endpoint` that sends every request
 * back to the DEALER it came from. Usage: `zmq-router-peer.js <endpoint>`.
 * @module
 */
import * as zmq from "zeromq";
import { serve } from "./runtime.js";

const [endpoint] = process.argv.slice(2);
if (endpoint === undefined) throw new Error("usage: zmq-router-peer.js <endpoint>");
const socket = new zmq.Router({ linger: 0 });
await socket.bind(endpoint);
serve(() => null, { endpoint }, () => socket.close());
try {
  for await (const [identity, message] of socket) await socket.send([identity, message]);
} catch (err) {
  if (!socket.closed) throw err;
}
