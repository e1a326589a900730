/** A GraphServer and a node for request/response tests. */
import { after } from "node:test";
import { connect, GraphServer, type Node } from "../../src/index.js";

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
