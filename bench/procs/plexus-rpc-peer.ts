/**
 * Peer of the rr row: a Plexus request/response server that answers every request with the
 * request itself. Usage: `plexus-rpc-peer.js <graph-address> <service> <shm|tcp>`.
 * @module
 */
import { connect } from "../../src/index.js";
import { serve } from "./runtime.js";

const [address, service, transport] = process.argv.slice(2);
if (!address || !service || (transport !== "shm" && transport !== "tcp")) throw new Error("usage: plexus-rpc-peer.js <graph-address> <service> <shm|tcp>");
const node = await connect({ address, embedded: false });
await node.server(service, (req: unknown) => req, { transport });
serve(() => null, {}, () => void node.close());
