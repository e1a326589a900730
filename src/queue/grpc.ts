/**
 * The gRPC backend (`grpc://`, `grpcs://`): one bidirectional stream per client connection, on
 * the method `/plexus.queue.v1.Queue/Connect`; every gRPC message in either direction is
 * exactly one queue frame (the 16-byte header and its payload), with the same handshake,
 * serials, ACKs, keep-alives and sessions as over TCP. A client opens a channel of its own for
 * each connection attempt (closed with the stream), so its reconnection is the queue's, not
 * the channel's. TLS takes the same certificate options as `tls://`. Requires `@grpc/grpc-js`
 * (an optional peer dependency, loaded on first use).
 * (Internal: not part of the public API.)
 * @module
 */
import { createSecureContext } from "node:tls";
import type * as Grpc from "@grpc/grpc-js";
import { AccessDeniedError, FrameTooLargeError, InvalidArgumentError, PeerDeadError, PlexusError, ProtocolError, systemError } from "../errors.js";
import { loadOptionalPeer } from "../util/optional-peer.js";
import { receiveMessage, type Link, type LinkEvents } from "./link.js";
import type { QueueUrl } from "./options.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import type { FrameTable } from "../net/frame-parser.js";
import { frameTable, HEADER_BYTES } from "./wire.js";
import type { Liveness } from "../net/liveness.js";

/** The one method of the queue service. */
const PATH = "/plexus.queue.v1.Queue/Connect";

/** A queue frame is already bytes: no (de)serialisation. */
const same = (b: Buffer): Buffer => b;

/** The service: one bidirectional streaming method carrying queue frames. */
const SERVICE = {
  connect: {
    path: PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: same,
    requestDeserialize: same,
    responseSerialize: same,
    responseDeserialize: same,
    originalName: "connect",
  },
} as const;

type GrpcModule = typeof Grpc;
type Stream = Grpc.ClientDuplexStream<Buffer, Buffer> | Grpc.ServerDuplexStream<Buffer, Buffer>;

/** Loads `@grpc/grpc-js` (`MissingDependencyError` if it is not installed). */
function loadGrpc(): Promise<GrpcModule> {
  return loadOptionalPeer<GrpcModule>("@grpc/grpc-js", "grpc:// and grpcs:// queue URLs");
}

/** `host:port` of a URL, IPv6 hosts in brackets. */
function target(url: QueueUrl, port = url.port): string {
  return `${url.host.includes(":") ? `[${url.host}]` : url.host}:${port}`;
}

/** Channel and server options: messages up to a frame of `maxMessage` bytes are accepted, larger ones refused before they are read. */
function limits(maxMessage: number): Grpc.ChannelOptions {
  return { "grpc.max_receive_message_length": maxMessage + HEADER_BYTES, "grpc.max_send_message_length": -1 };
}

/** A list option (one PEM or several) as Buffers. */
function buffers(v: string | Buffer | (string | Buffer)[] | undefined): Buffer[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (typeof x === "string" ? Buffer.from(x) : x));
}

/**
 * The typed error for a gRPC status that ended a stream (`where`: the peer, for the message).
 * A status the peer's gRPC stack sends for a method it does not have means that no Plexus queue
 * server answered.
 */
export function grpcError(grpc: GrpcModule, err: Partial<Grpc.ServiceError>, where: string): PlexusError {
  const code = err.code ?? grpc.status.UNKNOWN;
  const name = grpc.status[code] ?? String(code);
  const details = err.details ?? err.message ?? "";
  if (code === grpc.status.UNIMPLEMENTED) return new ProtocolError(`${where} is not a Plexus queue server (it answered gRPC status ${name}: ${details})`, { cause: err });
  if (code === grpc.status.RESOURCE_EXHAUSTED) return new FrameTooLargeError(`a gRPC message exceeded the receiver's limit (${details})`, { cause: err });
  if (/certificate|ssl|tls|handshake|self.signed/i.test(details)) return new AccessDeniedError(`TLS with ${where} failed: ${details}`, { cause: err });
  return new PeerDeadError(`the gRPC stream with ${where} ended with status ${name}${details ? `: ${details}` : ""}`, { cause: err });
}

/** One connection over a gRPC bidirectional stream: a client's call, or the server's side of it. */
export class GrpcLink implements Link {
  closed = false;
  private events: LinkEvents | undefined;
  private readonly closedWaiters: (() => void)[] = [];
  private readonly table: FrameTable;
  private failure: Error | undefined;

  /**
   * @param stream - the call (client) or the server's stream of it
   * @param client - the client's channel, closed with the stream (undefined on the server)
   * @param maxMessage - largest DATA payload this end accepts
   * @param liveness - this connection's heartbeat and silence counters
   * @param grpc - the loaded package (its status codes)
   * @param where - the peer, for errors
   */
  constructor(
    private readonly stream: Stream,
    private readonly client: Grpc.Client | undefined,
    maxMessage: number,
    readonly liveness: Liveness,
    private readonly grpc: GrpcModule,
    where: string,
  ) {
    this.table = frameTable(maxMessage);
    stream.on("data", (m: Buffer) => this.receive(m));
    stream.on("error", (err: Grpc.ServiceError) => {
      this.failure ??= grpcError(grpc, err, where);
      if (client === undefined) this.finish(); // the server's stream ends with its error
    });
    if (client !== undefined) {
      // A client's call ends with its status, after every message and any error.
      stream.on("status", () => this.finish());
    } else {
      stream.on("cancelled", () => {
        this.failure ??= new PeerDeadError(`${where} went away (its gRPC stream was cancelled)`);
        this.finish();
      });
      stream.on("end", () => this.end()); // the client half-closed: the stream is over
      stream.on("finish", () => this.finish()); // our status is sent
      stream.on("close", () => this.finish());
    }
  }

  bind(events: LinkEvents): void {
    this.events = events;
  }

  whenClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((r) => this.closedWaiters.push(r));
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.closed || this.stream.writableEnded) return;
    const only = chunks.length === 1 ? chunks[0] : undefined;
    this.stream.write(only !== undefined && Buffer.isBuffer(only) ? only : Buffer.concat(chunks));
    this.liveness.sent();
  }

  /** One gRPC message from the peer: exactly one frame. */
  private receive(message: Buffer): void {
    receiveMessage(this, this.table, this.events, message, "gRPC message");
  }

  /** Ends the stream after what was written: the client half-closes, the server sends its status. */
  end(): void {
    if (this.closed || this.stream.writableEnded) return;
    this.stream.end();
  }

  destroy(): void {
    if (this.closed) return;
    this.finish();
    this.cancel();
  }

  fail(err: Error): void {
    if (this.closed) return;
    this.failure = err;
    this.finish();
    this.cancel(err);
  }

  /** Drops the stream: a client cancels its call, the server ends it with an error status. */
  private cancel(err?: Error): void {
    if (this.client !== undefined) {
      (this.stream as Grpc.ClientDuplexStream<Buffer, Buffer>).cancel();
    } else if (!this.stream.writableEnded && !this.stream.destroyed) {
      const code = err instanceof ProtocolError ? this.grpc.status.INVALID_ARGUMENT : this.grpc.status.ABORTED;
      this.stream.emit("error", { code, details: err?.message ?? "the queue server dropped the connection" });
    }
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.client?.close();
    this.events?.gone(this.failure);
    for (const w of this.closedWaiters.splice(0)) w();
  }
}

/** How a queue client opens its gRPC connections. */
export class GrpcDialer {
  private constructor(
    private readonly grpc: GrpcModule,
    private readonly Client: Grpc.ServiceClientConstructor,
    private readonly address: string,
    private readonly credentials: Grpc.ChannelCredentials,
    private readonly options: Grpc.ChannelOptions,
    private readonly maxMessage: number,
  ) {}

  /**
   * Loads `@grpc/grpc-js` and prepares the credentials of `url` (TLS with `tls`'s certificates
   * for `grpcs://` or when `tls` is given). Rejects with `MissingDependencyError` when the
   * package is missing, `InvalidArgumentError` for unusable certificate options.
   */
  static async create(url: QueueUrl, useTls: boolean, tls: TcpTlsOptions | undefined, maxMessage: number): Promise<GrpcDialer> {
    const grpc = await loadGrpc();
    let credentials = grpc.credentials.createInsecure();
    const options: Grpc.ChannelOptions = { ...limits(maxMessage) };
    if (useTls) {
      try {
        const { servername, rejectUnauthorized, requestCert: _ignored, ...context } = tls ?? {};
        credentials = grpc.credentials.createFromSecureContext(createSecureContext(context), rejectUnauthorized === false ? { rejectUnauthorized: false } : {});
        if (servername !== undefined) options["grpc.ssl_target_name_override"] = servername;
      } catch (err) {
        throw new InvalidArgumentError(`the tls options of a grpcs:// queue client are not usable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
    const Client = grpc.makeGenericClientConstructor(SERVICE, "Queue");
    return new GrpcDialer(grpc, Client, target(url), credentials, options, maxMessage);
  }

  /** A new channel and its one stream to the server. */
  open(liveness: Liveness): GrpcLink {
    const client = new this.Client(this.address, this.credentials, this.options);
    const call = (client as unknown as { connect(): Grpc.ClientDuplexStream<Buffer, Buffer> }).connect();
    return new GrpcLink(call, client, this.maxMessage, liveness, this.grpc, `the queue server at ${this.address}`);
  }
}

/** A queue server's gRPC listener. */
export class GrpcListener {
  private constructor(
    private readonly server: Grpc.Server,
    /** The port listened on. */
    readonly port: number,
  ) {}

  /**
   * Listens on `url` (port 0: any) and hands each stream to `accept` as a link. TLS (for
   * `grpcs://` or when `tls` is given) needs `tls.key` and `tls.cert` in PEM; with
   * `tls.requestCert` clients must present a certificate signed by `tls.ca`. Rejects with
   * `MissingDependencyError`, `InvalidArgumentError` (certificates), `SystemError` (the
   * address is in use or cannot be bound).
   */
  static async listen(
    url: QueueUrl,
    useTls: boolean,
    tls: TcpTlsOptions | undefined,
    maxMessage: number,
    liveness: () => Liveness,
    accept: (link: GrpcLink) => void,
  ): Promise<GrpcListener> {
    const grpc = await loadGrpc();
    let credentials = grpc.ServerCredentials.createInsecure();
    if (useTls) {
      const keys = buffers(tls?.key);
      const certs = buffers(tls?.cert);
      if (tls?.pfx !== undefined || tls?.passphrase !== undefined || keys.length === 0 || keys.length !== certs.length) {
        throw new InvalidArgumentError("a TLS gRPC queue server needs tls.key and tls.cert in PEM, one key per certificate (tls.pfx and tls.passphrase are not supported)");
      }
      const ca = buffers(tls?.ca);
      const pairs = keys.map((k, i) => ({ private_key: k, cert_chain: certs[i] as Buffer }));
      try {
        credentials = grpc.ServerCredentials.createSsl(ca.length > 0 ? Buffer.concat(ca) : null, pairs, tls?.requestCert === true);
      } catch (err) {
        throw new InvalidArgumentError(`the tls options of a grpcs:// queue server are not usable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
    const server = new grpc.Server(limits(maxMessage));
    server.addService(SERVICE, {
      connect: (call: Grpc.ServerDuplexStream<Buffer, Buffer>) => accept(new GrpcLink(call, undefined, maxMessage, liveness(), grpc, `the client at ${call.getPeer()}`)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target(url), credentials, (err, p) => {
        if (err === null) resolve(p);
        else {
          // grpc-js reports the bind failure as text; its code, when it names one, is the system's.
          const e: NodeJS.ErrnoException = Object.assign(new Error(err.message), { code: /EADDRINUSE|address already in use/i.test(err.message) ? "EADDRINUSE" : "EADDRNOTAVAIL" });
          reject(systemError(e, "bind", `gRPC queue server on ${target(url)}`));
        }
      }),
    );
    return new GrpcListener(server, port);
  }

  /** Stops listening and drops what is left of the streams. */
  close(): void {
    this.server.forceShutdown();
  }
}
