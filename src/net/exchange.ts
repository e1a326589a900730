/**
 * Reading the one handshake frame of a connection (handshake.ts) from a socket: the server's
 * HELLO, the client's WELCOME. The frame is read whole, bounded by a timeout and an abort
 * signal; then the socket is paused and what came after the frame in the same reads (a client
 * may write its first messages together with its HELLO) is handed back, for the protocol's
 * parser to take first.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { PeerDeadError, ProtocolError, TimeoutError } from "../errors.js";
import { Deferred } from "../util/wait.js";
import { checkNetHeader, FRAME_HEADER, get32, NetType, readFrameHeader, type FrameHeader } from "./frame.js";
import { ANSWER_BYTES, foreignAnswer, type HandshakeSpec } from "./handshake.js";
import { connectError } from "./dial.js";

/** One handshake frame and what followed it. */
export interface Exchanged {
  /** Its header. */
  header: FrameHeader;
  /** Its payload (the preamble and the protocol's body). */
  payload: Buffer;
  /** Bytes that came after the frame (empty if none). */
  rest: Buffer;
}

/** How {@link readHandshakeFrame} reads. */
export interface ExchangeOptions {
  /** The frame expected: {@link NetType.Hello} (a server) or {@link NetType.Welcome} (a client). */
  type: NetType.Hello | NetType.Welcome;
  /** The protocol and the peer, for messages ("request/response server 10.0.0.1:4000"). */
  what: string;
  /** No whole frame within this many ms: `TimeoutError`. */
  timeout: number;
  /** Aborts the read (`AbortError`). */
  signal?: AbortSignal | undefined;
  /**
   * Looks at the first 4 bytes before they are read as a frame's length: an error to end with
   * (a peer of an older version of the protocol, whose handshake opened with a magic), or
   * undefined to read on.
   */
  recognize?: (firstWord: number) => Error | undefined;
  /**
   * A client reading its server's WELCOME: the protocol and the server's `host:port`. An answer
   * that cannot begin a WELCOME (an HTTP server's, any other program's) is then the
   * `ProtocolError` of {@link foreignAnswer} ("… is not a Plexus GraphServer (it answered
   * HTTP)") rather than a complaint about a frame.
   */
  server?: { spec: HandshakeSpec; peer: string };
}

/**
 * Reads exactly one handshake frame of `opts.type` from `socket`, then pauses it. Rejects with a
 * `ProtocolError` for any other first frame (another type, a malformed header, a payload above
 * `MAX_HANDSHAKE_PAYLOAD`; with `opts.server`, an answer no Plexus server gives, named as such),
 * `PeerDeadError` if the socket closes first, `TimeoutError` /
 * `AbortError` per `opts`. The payload is checked by the caller (handshake.ts).
 */
export function readHandshakeFrame(socket: Socket, opts: ExchangeOptions): Promise<Exchanged> {
  let got: Buffer = Buffer.alloc(0);
  let header: FrameHeader | undefined;
  /** The answer was seen to begin as a WELCOME does (or nobody asked). */
  let judged = opts.server === undefined;
  const onData = (chunk: Buffer): void => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    try {
      if (header === undefined && got.length >= 4 && opts.recognize !== undefined) {
        const err = opts.recognize(get32(got, 0));
        if (err !== undefined) return void wait.reject(err);
      }
      if (!judged && opts.server !== undefined) {
        const err = foreignAnswer(opts.server.spec, opts.server.peer, got);
        if (err !== undefined) return void wait.reject(err);
        judged = got.length >= ANSWER_BYTES;
      }
      if (header === undefined) {
        if (got.length < FRAME_HEADER) return;
        const h = readFrameHeader(got, 0);
        if (h.type !== opts.type) {
          throw new ProtocolError(`${opts.what}: the first frame is of type 0x${h.type.toString(16)}, not a ${opts.type === NetType.Hello ? "HELLO" : "WELCOME"}`);
        }
        checkNetHeader(h);
        header = h;
      }
      const end = FRAME_HEADER + header.length;
      if (got.length < end) return;
      wait.resolve({ header, payload: got.subarray(FRAME_HEADER, end), rest: got.subarray(end) });
    } catch (err) {
      wait.reject(err);
    }
  };
  const onClose = (): void => void wait.reject(new PeerDeadError(`${opts.what} closed the connection during the handshake`));
  // A failure on the socket during the handshake (a TLS alert, such as a client certificate the
  // server requires, arrives on the first read): the handshake's typed error, never an unhandled 'error'.
  const onError = (err: NodeJS.ErrnoException): void => void wait.reject(connectError(err, opts.what));
  const wait = new Deferred<Exchanged>(
    { timeout: opts.timeout, signal: opts.signal, what: "connect", timeoutError: () => new TimeoutError(`${opts.what}: no handshake within ${opts.timeout} ms`) },
    undefined,
    () => {
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("error", onError);
      socket.pause();
    },
  );
  if (wait.settled) return wait.promise;
  socket.on("data", onData);
  socket.once("close", onClose);
  socket.on("error", onError);
  socket.resume();
  return wait.promise;
}
