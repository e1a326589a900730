/**
 * Capturing valid traffic: a recording relay (like `test/helpers/proxy.ts`, for TCP ports and
 * Unix sockets) that keeps what each client wrote, chunk by chunk, and a redirect that sends
 * this process's own connections to a port or socket through such a relay (for clients that
 * find their server's address themselves, as request/response clients do through the graph).
 * The fuzzer mutates what it recorded, so it follows the wire formats wherever they go.
 */
import { connect, createServer, Socket, type AddressInfo, type Server } from "node:net";
import { randomBytes } from "node:crypto";
import { native, type Watcher } from "../../src/native.js";

/** Connection options of the relays themselves, which no redirect touches. */
const direct = new WeakSet<object>();

/** What one client wrote on one connection, in the chunks the relay read. */
export interface Capture {
  target: string;
  chunks: Buffer[];
}

/**
 * Where a listening endpoint is. `exact`: an abstract Unix socket named by its exact length, as
 * the addon binds them (Node pads abstract names to the whole address, so it reaches only those
 * it bound itself); reached through the addon.
 */
export type Endpoint = { port: number } | { path: string; exact?: boolean };

/** A recording relay toward `to`. */
export interface Recorder {
  readonly at: Endpoint;
  /** Connections recorded so far (those with at least one byte). */
  captures(): Capture[];
  close(): Promise<void>;
}

/** Starts a recording relay toward `to` (loopback port or Unix socket path, abstract ones included). */
export async function record(target: string, to: Endpoint): Promise<Recorder> {
  const captures: Capture[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((a) => {
    const cap: Capture = { target, chunks: [] };
    captures.push(cap);
    const onward = "port" in to ? { host: "127.0.0.1", port: to.port } : { path: to.path };
    direct.add(onward);
    const b = connect(onward);
    sockets.add(a).add(b);
    const drop = (): void => {
      a.destroy();
      b.destroy();
      sockets.delete(a);
      sockets.delete(b);
    };
    a.on("data", (d: Buffer) => {
      cap.chunks.push(Buffer.from(d));
      b.write(d);
    });
    b.on("data", (d: Buffer) => a.write(d));
    a.on("error", drop).on("close", drop);
    b.on("error", drop).on("close", drop);
  });
  const path = "path" in to ? `\0plexus-capture-${randomBytes(6).toString("hex")}` : undefined;
  await new Promise<void>((r) => (path ? server.listen(path, r) : server.listen(0, "127.0.0.1", r)));
  return {
    at: path ? { path } : { port: (server.address() as AddressInfo).port },
    captures: () => captures.filter((c) => c.chunks.length > 0),
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type ConnectFn = (...args: unknown[]) => Socket;

/**
 * Until the returned function is called, this process's connections to a port or path that is a
 * key of `map` go to its value instead.
 */
export function redirect(map: Map<number | string, Endpoint>): () => void {
  const proto = Socket.prototype as unknown as { connect: ConnectFn };
  const original = proto.connect;
  proto.connect = function (this: Socket, ...args: unknown[]): Socket {
    const first = args[0];
    const opts = (Array.isArray(first) ? first[0] : first) as { port?: number | string; path?: string; host?: string } | undefined;
    if (opts && typeof opts === "object" && !direct.has(opts)) {
      const key = opts.path ?? (opts.port === undefined ? undefined : Number(opts.port));
      const to = key === undefined ? undefined : map.get(key);
      if (to && "port" in to) {
        opts.port = to.port;
        opts.host = "127.0.0.1";
      } else if (to) opts.path = to.path;
    }
    return original.apply(this, args);
  };
  return () => {
    proto.connect = original;
  };
}

/**
 * A recorder for an `exact` abstract socket (the shm transport's handshake socket): it keeps
 * what each client wrote (closing any descriptor passed along) and hangs up after the first
 * message, so the client fails its handshake — only its bytes are needed.
 */
export function recordExact(target: string): Recorder {
  const n = native();
  const path = `\0plexus-capture-${randomBytes(6).toString("hex")}`;
  const captures: Capture[] = [];
  const open = new Map<number, Watcher>();
  const listenFd = n.unixListen(path);
  const drop = (fd: number): void => {
    open.get(fd)?.close();
    open.delete(fd);
    n.close(fd);
  };
  const listener = new n.Watcher(listenFd, () => {
    for (let fd = n.unixAccept(listenFd); fd >= 0; fd = n.unixAccept(listenFd)) {
      const cap: Capture = { target, chunks: [] };
      captures.push(cap);
      const cfd = fd;
      open.set(
        cfd,
        new n.Watcher(cfd, () => {
          let m;
          try {
            m = n.recvFds(cfd, 1 << 16);
          } catch {
            return drop(cfd);
          }
          if (m === null) return;
          for (const passed of m.fds) n.close(passed);
          if (m.data.length > 0) cap.chunks.push(Buffer.from(m.data));
          drop(cfd);
        }),
      );
    }
  });
  return {
    at: { path, exact: true },
    captures: () => captures.filter((c) => c.chunks.length > 0),
    async close() {
      for (const fd of [...open.keys()]) drop(fd);
      listener.close();
      n.close(listenFd);
    },
  };
}

/** Writes `bytes` to an `exact` abstract socket through the addon (in `pieces` with pauses for a slow writer), then hangs up. */
export async function writeExact(path: string, bytes: Buffer, pause?: () => Promise<void>): Promise<void> {
  const n = native();
  let fd: number;
  try {
    fd = n.unixConnect(path);
  } catch {
    return;
  }
  try {
    for (let at = 0; at < bytes.length; ) {
      const piece = pause ? bytes.subarray(at, at + 1 + (at % 3)) : bytes.subarray(at);
      const sent = n.sendFds(fd, piece, []);
      if (sent <= 0) break;
      at += sent;
      if (pause) await pause();
      else if (sent < piece.length) await new Promise((r) => setImmediate(r));
    }
  } catch {
    // the target hung up or its buffer is full: that is its answer
  } finally {
    await new Promise((r) => setTimeout(r, 5));
    n.close(fd);
  }
}
