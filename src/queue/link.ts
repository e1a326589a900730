/**
 * A link: one live connection to a peer, carrying queue frames. The TCP/TLS link wraps a
 * socket and a {@link FrameParser}; the MQTT backend has its own. Sessions (which survive
 * reconnection) write through whichever link is current.
 * (Internal: not part of the public API.)
 * @module
 */
import type { OnReadOpts, Socket } from "node:net";
import { FrameParser, readMessageFrame, type FrameTable } from "../net/frame-parser.js";
import type { HandshakeSpec } from "../net/handshake.js";
import { frameTable, HEADER_BYTES, type Header } from "./wire.js";
import type { Liveness } from "../net/liveness.js";

/** What a session needs from a connection. */
export interface Link {
  /** Sets (or replaces) the receiver of this link's frames and its end. */
  bind(events: LinkEvents): void;
  /** Resolves once the connection is gone. */
  whenClosed(): Promise<void>;
  /** Writes one frame given as pieces (header, payload...). */
  write(chunks: readonly Uint8Array[]): void;
  /** Ends the connection after what was written (graceful). */
  end(): void;
  /** Drops the connection now. */
  destroy(): void;
  /** Drops the connection because of `err` (reported as the reason it ended). */
  fail(err: Error): void;
  /** Heartbeats and the peer's silence: bytes in and out mark it, the endpoint's timer ticks it. */
  readonly liveness: Liveness;
  /** True once the connection is gone. */
  readonly closed: boolean;
}

/** Callbacks of a {@link SocketLink}. */
export interface LinkEvents {
  /** A complete frame arrived. Throwing (a typed error) drops the link with that error. */
  frame(h: Header, payload: Buffer): void;
  /** The connection ended; `err` says why (undefined: the peer closed it cleanly). */
  gone(err: Error | undefined): void;
}

/**
 * An incoming message of a link that carries one frame per message (MQTT, gRPC): the peer is
 * heard, the frame checked and handed to `events`; a violation fails the link with its typed
 * error. `what` names the message in errors ("gRPC message").
 */
export function receiveMessage(link: Link, table: FrameTable, events: LinkEvents | undefined, message: Buffer, what: string): void {
  link.liveness.heard();
  if (link.closed) return;
  try {
    const f = readMessageFrame(table, message, what);
    if (f !== undefined) events?.frame(f.header, f.payload);
  } catch (err) {
    link.fail(err instanceof Error ? err : new Error(String(err)));
  }
}

/** A queue link over a TCP or TLS socket. */
export class SocketLink implements Link {
  closed = false;
  private corked = false;
  private events: LinkEvents | undefined;
  private readonly parser: FrameParser;
  private failure: Error | undefined;
  private readonly uncork = (): void => {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
  };

  /** The connection. */
  readonly socket: Socket;

  /**
   * @param socket - a connected socket (TCP_NODELAY set), or a function that makes the socket
   *   with the `onread` options it is given (plain TCP: `net.connect`, or `new net.Socket({ fd })`
   *   for an accepted connection): the link then chooses where each read goes, and a large
   *   message's payload is read straight into its own buffer (no copy from 64 KiB reads)
   * @param maxMessage - largest DATA payload this end accepts
   * @param liveness - this connection's heartbeat and silence counters
   */
  constructor(
    socket: Socket | ((onread: OnReadOpts) => Socket),
    maxMessage: number,
    readonly liveness: Liveness,
  ) {
    this.parser = new FrameParser(frameTable(maxMessage), (h, f) => {
      if (!this.closed) this.events?.frame(h, f.subarray(HEADER_BYTES));
    });
    if (typeof socket === "function") {
      socket = socket({ buffer: () => this.parser.readTarget(), callback: (n, target) => this.onRead(n, target) });
    } else {
      socket.on("data", (chunk: Buffer) => this.onChunk(chunk));
    }
    this.socket = socket;
    socket.on("error", (err) => {
      this.failure ??= err;
    });
    socket.on("close", () => this.finish());
  }

  /** `n` bytes were read into `target`, which the parser chose ({@link FrameParser.readTarget}). */
  private onRead(n: number, target: Uint8Array): boolean {
    this.liveness.heard();
    if (this.closed) return true;
    try {
      this.parser.read(n, target);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
    return true;
  }

  /** A chunk of Node's own reads arrived. */
  private onChunk(chunk: Buffer): void {
    this.liveness.heard();
    if (this.closed) return;
    try {
      this.parser.push(chunk);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  bind(events: LinkEvents): void {
    this.events = events;
  }

  /** A client's link: the server at `peer` must answer as a Plexus server of `spec` does (see {@link FrameParser.expectWelcome}). */
  expectWelcome(spec: HandshakeSpec, peer: string): void {
    this.parser.expectWelcome(spec, peer);
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.closed || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork); // after the I/O callbacks of this loop turn: their writes (ACKs) go out together
    }
    for (const c of chunks) if (c.byteLength > 0) this.socket.write(c);
    this.liveness.sent();
  }

  end(): void {
    if (this.closed) return;
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Drops the link because of `err` (a protocol violation, a dead peer). */
  fail(err: Error): void {
    this.failure = err;
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.events?.gone(this.failure);
  }
}
