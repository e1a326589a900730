/**
 * A TCP relay between a client and a server that a test can cut (both sides dropped), freeze
 * (bytes swallowed, connections kept: a silent peer) or make refuse connections for a while (a
 * server that is down), or make deaf (the server's answers lost), to exercise reconnection,
 * keep-alives and retries.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/** A controllable relay. */
export interface Proxy {
  readonly port: number;
  /** Drops every relayed connection now (both sides see a reset). */
  cut(): void;
  /** While frozen, bytes in either direction are dropped and connections stay open. */
  frozen: boolean;
  /** While deaf, bytes from the server are dropped (the client's requests arrive, their answers are lost). */
  deaf: boolean;
  /** While refusing, every new connection is reset at once (the server seems down). */
  refusing: boolean;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

/** Starts a relay on a free loopback port toward `127.0.0.1:targetPort`. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  const state = { frozen: false, refusing: false, deaf: false };
  const server: Server = createServer((a) => {
    if (state.refusing) {
      a.resetAndDestroy();
      return;
    }
    accepted++;
    const b = connect({ host: "127.0.0.1", port: targetPort });
    const pair: [Socket, Socket] = [a, b];
    pairs.add(pair);
    const drop = (): void => {
      a.destroy();
      b.destroy();
      pairs.delete(pair);
    };
    a.on("data", (d: Buffer) => state.frozen || b.write(d));
    b.on("data", (d: Buffer) => state.frozen || state.deaf || a.write(d));
    a.on("error", drop).on("close", drop);
    b.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const proxy: Proxy = {
    port: (server.address() as AddressInfo).port,
    get frozen() {
      return state.frozen;
    },
    set frozen(v: boolean) {
      state.frozen = v;
    },
    get deaf() {
      return state.deaf;
    },
    set deaf(v: boolean) {
      state.deaf = v;
    },
    get refusing() {
      return state.refusing;
    },
    set refusing(v: boolean) {
      state.refusing = v;
    },
    get accepted() {
      return accepted;
    },
    cut() {
      for (const [a, b] of pairs) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
    },
    close() {
      proxy.cut();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
  return proxy;
}
