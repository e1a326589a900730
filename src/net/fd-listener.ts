/**
 * A TCP listener whose connections become `net.Socket`s built from their file descriptor, so
 * each can read straight into buffers of its owner's choosing (`onread`): Node offers that only
 * on sockets it creates, not on those a `net.Server` accepts. The queue server uses it for
 * plain TCP, where a large message is then read by the kernel into its own buffer instead of
 * being copied there from 64 KiB reads.
 * (Internal: not part of the public API.)
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { SystemError } from "../errors.js";
import { native, type Watcher } from "../native.js";

/** How long accepting pauses when the process is out of fds (ms). */
const ACCEPT_BACKOFF_MS = 100;

/** Listens on `host:port`; {@link onConnection} gets each accepted connection's fd (its to close). */
export class FdTcpListener {
  private closed = false;
  /** Takes each accepted connection's fd; may throw (the connection is then closed). Set it any time. */
  onConnection: (fd: number) => void;

  private constructor(
    /** The port bound. */
    readonly port: number,
    private readonly fd: number,
    private readonly watcher: Watcher,
    onConnection: (fd: number) => void,
  ) {
    this.onConnection = onConnection;
  }

  /**
   * Binds and listens (`host` may be a name: its first address is used; an IPv6 address listens
   * dual-stack, like Node's). Rejects with `SystemError` when the kernel refuses (`EADDRINUSE`)
   * or the name does not resolve (`ENOTFOUND`). The listener keeps the process alive until
   * {@link close}. Connections go to `onConnection` (default: closed until one is set).
   */
  static async listen(host: string, port: number, onConnection: (fd: number) => void = (fd) => native().close(fd)): Promise<FdTcpListener> {
    let ip = host;
    if (isIP(host) === 0) {
      try {
        ip = (await lookup(host)).address;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new SystemError("getaddrinfo", typeof e.errno === "number" ? Math.abs(e.errno) : 0, e.code ?? "EAI_FAIL", e.message, host);
      }
    }
    const n = native();
    const bound = n.tcpListen(ip, port, 511);
    let listener: FdTcpListener | undefined;
    try {
      const watcher = new n.Watcher(bound.fd, () => listener?.acceptAll());
      listener = new FdTcpListener(bound.port, bound.fd, watcher, onConnection);
      return listener;
    } catch (err) {
      n.close(bound.fd);
      throw err;
    }
  }

  private acceptAll(): void {
    const n = native();
    while (!this.closed) {
      let fd: number;
      try {
        fd = n.tcpAccept(this.fd);
      } catch {
        // Out of fds (or memory): the connection waits in the backlog. Look again in a while
        // rather than at once (the listener stays readable: that would spin).
        this.watcher.stop();
        setTimeout(() => {
          if (!this.closed) this.watcher.start();
        }, ACCEPT_BACKOFF_MS);
        return;
      }
      if (fd < 0) return;
      try {
        this.onConnection(fd);
      } catch {
        native().close(fd); // the owner could not take it (it reports why): the peer sees the close
      }
    }
  }

  /** Stops listening (connections accepted so far live on). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    native().close(this.fd);
  }
}
