/** A raw TCP connection for protocol tests: writes what the test gives, collects what comes back. */
import { connect, type Socket } from "node:net";

/** A raw connection to `127.0.0.1:port`. */
export interface RawConnection {
  readonly sock: Socket;
  /** Everything received so far. */
  bytes(): Buffer;
  /** Resolves when the connection closed. */
  readonly closed: Promise<void>;
}

/** Connects to `127.0.0.1:port` and collects what the server sends. */
export function raw(port: number): RawConnection {
  const sock = connect({ host: "127.0.0.1", port });
  const got: Buffer[] = [];
  sock.on("data", (d: Buffer) => got.push(d));
  sock.on("error", () => {});
  const closed = new Promise<void>((r) => sock.on("close", () => r()));
  return { sock, bytes: () => Buffer.concat(got), closed };
}
