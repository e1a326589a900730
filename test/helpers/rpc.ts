/** A GraphServer and a node for request/response tests. */
import { after } from "node:test";
import type { Socket } from "node:net";
import { connect, GraphServer, type Node } from "../../src/index.js";
import { frame, NetType } from "../../src/net/frame.js";
import { readHandshakeFrame, type Exchanged } from "../../src/net/exchange.js";
import { encodeHello } from "../../src/net/handshake.js";
import { RPC_SPEC } from "../../src/rpc/handshake.js";

/** Starts a GraphServer on a free port and a node on it; both close after the file. */
export async function graph(): Promise<{ node: Node; address: string; server: GraphServer }> {
  const server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  const node = await connect({ address, embedded: false });
  after(async () => {
    await node.close();
    await server.close();
  });
  return { node, address, server };
}

/** A promise with its resolve function. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits until `cond()` holds (polling every 5 ms), at most `ms`. */
export async function until(cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A request/response message as one net frame (tcp): the header (the body's length first), then the body. */
export function rpcFrame(type: number, id: number, body: Uint8Array = new Uint8Array(0), flags = 0, aux = 0): Buffer {
  return frame(type, flags, id, aux, body);
}

/** A tcp HELLO of this version announcing `heartbeat` ms. */
export function tcpHello(heartbeat = 1000): Buffer {
  return encodeHello(RPC_SPEC, heartbeat);
}

/** Reads the server's WELCOME from `socket` (then paused): its header, payload and what followed. */
export function readWelcomeFrame(socket: Socket, timeout = 5000): Promise<Exchanged> {
  return readHandshakeFrame(socket, { type: NetType.Welcome, what: "the server", timeout });
}
