/**
 * Peer of the rr row: a Plexus request/response server that answers every request with the
 * request itself (`inplace`: an in-place server, answering with the request's own bytes).
 * Usage: `plexus-rpc-peer.js <graph-address> <service> <shm|tcp> [inplace]`.
 * @module
 */
import { connect } from "../../src/index.js";
import { serve } from "./runtime.js";

const [address, service, transport, mode] = process.argv.slice(2);
if (!address || !service || (transport !== "shm" && transport !== "tcp")) throw new Error("usage: plexus-rpc-peer.js <graph-address> <service> <shm|tcp>");
const node = await connect({ address, embedded: false });
if (mode === "inplace") await node.server(service, (req: Uint8Array) => req, { transport, inPlace: true });
else await node.server(service, (req: unknown) => req, { transport });
serve(() => null, {}, () => void node.close());
