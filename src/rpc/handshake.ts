/**
 * Opening a channel: the shm handshake over a Unix socket (each side creates the ring it
 * writes, the other attaches to it) and the TCP/TLS hello. Specified in docs/protocol.md.
 * (Internal: not part of the public API.)
 * @module
 */
import type { Socket } from "node:net";
import { errorFromWire, PeerDeadError, PlexusError, ProtocolError, TimeoutError } from "../errors.js";
import { connectShm, ShmSender } from "../transport/shm.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { ShmChannel } from "./shm-channel.js";
import { TcpChannel, type Heartbeats } from "./tcp-channel.js";
import { connectError, dial } from "../net/dial.js";
import { Deferred } from "../util/wait.js";

/** "PXRH": first bytes of a handshake message. */
export const HELLO_MAGIC = 0x48525850;
/** Version of the request/response protocol (3: tcp hellos announce a heartbeat, tcp PING messages). */
export const RPC_VERSION = 3;
/** Handshake kinds. */
export const enum HelloKind {
  /** shm: the body is JSON `{ name, socket }` of the sender's ring. */
  Shm = 1,
  /** tcp: the body is JSON `{ heartbeat }`: how often the sender writes (ms). */
  Tcp = 2,
  /** server -> client: refused; the body is JSON `{ code, message }`. */
  Refused = 0xff,
}
/** Bytes of the handshake header: magic (4), version (1), kind (1), body length (2). */
export const HELLO_HEADER = 8;
/** Largest handshake body. */
export const MAX_HELLO_BODY = 1024;

/** Options common to opening channels. */
export interface OpenOptions {
  /** Handshake timeout, ms. */
  timeout: number;
  /** Aborts the handshake. */
  signal?: AbortSignal;
  /** Ring capacity of this side (shm). */
  capacity: number;
  /** Largest message accepted (tcp). */
  maxMessage: number;
  /** TLS (tcp). */
  tls?: TcpTlsOptions;
  /** This end's tcp channels: their heartbeat, their peers' timeout, their one timer. */
  heartbeats: Heartbeats;
  /** Busy-poll on ring reads, µs. */
  spinMicros?: number;
}

/** Encodes a handshake message. */
export function hello(kind: HelloKind, body?: unknown): Buffer {
  const json = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
  if (json.length > MAX_HELLO_BODY) throw new ProtocolError("handshake body too large");
  const out = Buffer.alloc(HELLO_HEADER + json.length);
  out.writeUInt32LE(HELLO_MAGIC, 0);
  out.writeUInt8(RPC_VERSION, 4);
  out.writeUInt8(kind, 5);
  out.writeUInt16LE(json.length, 6);
  json.copy(out, HELLO_HEADER);
  return out;
}

/**
 * Reads one handshake message from `socket` (bounded by `timeout`), then stops reading.
 * Resolves with its kind, parsed body and any bytes that followed it.
 */
export function readHello(socket: Socket, timeout: number, signal?: AbortSignal): Promise<{ kind: number; body: unknown; rest: Buffer }> {
  type Hello = { kind: number; body: unknown; rest: Buffer };
  let got: Buffer = Buffer.alloc(0);
  const done = (err: Error | undefined, value?: Hello): void => void (err ? hello.reject(err) : hello.resolve(value!));
  const onData = (chunk: Buffer): void => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    if (got.length < HELLO_HEADER) return;
    if (got.readUInt32LE(0) !== HELLO_MAGIC) return done(new ProtocolError("not a Plexus request/response handshake (bad magic)"));
    const version = got.readUInt8(4);
    if (version !== RPC_VERSION) return done(new ProtocolError(`request/response protocol version ${version} is not supported (this is ${RPC_VERSION})`));
    const length = got.readUInt16LE(6);
    if (length > MAX_HELLO_BODY) return done(new ProtocolError(`handshake body of ${length} bytes exceeds ${MAX_HELLO_BODY}`));
    if (got.length < HELLO_HEADER + length) return;
    let body: unknown;
    try {
      body = length === 0 ? undefined : JSON.parse(got.subarray(HELLO_HEADER, HELLO_HEADER + length).toString());
    } catch (err) {
      return done(new ProtocolError("malformed handshake body", { cause: err }));
    }
    done(undefined, { kind: got.readUInt8(5), body, rest: got.subarray(HELLO_HEADER + length) });
  };
  const onClose = (): void => done(new PeerDeadError("the request/response peer closed the connection during the handshake"));
  const hello = new Deferred<Hello>({ timeout, signal, what: "connect", timeoutError: () => new TimeoutError(`no request/response handshake within ${timeout} ms`) }, undefined, () => {
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.pause();
  });
  if (hello.settled) return hello.promise;
  socket.on("data", onData);
  socket.once("close", onClose);
  socket.resume();
  return hello.promise;
}

/** Checks an shm ring address from a peer: a Plexus segment name and its socket. */
export function checkRingAddress(body: unknown): { name: string; socket: string } {
  const b = body as { name?: unknown; socket?: unknown } | null;
  const name = b?.name;
  if (typeof name !== "string" || !/^\/plexus-\d{1,10}-[0-9a-f]{1,32}$/.test(name) || b?.socket !== `\0${name.slice(1)}`) {
    throw new ProtocolError("the handshake does not name a Plexus ring");
  }
  return { name, socket: b.socket };
}

/** Checks the heartbeat a tcp hello announces (ms, a positive integer). */
export function checkHeartbeat(body: unknown): number {
  const heartbeat = (body as { heartbeat?: unknown } | null)?.heartbeat;
  if (typeof heartbeat !== "number" || !Number.isInteger(heartbeat) || heartbeat < 1 || heartbeat > 2 ** 31 - 1) {
    throw new ProtocolError("the tcp handshake announces no heartbeat (a whole number of ms, 1..2^31-1)");
  }
  return heartbeat;
}

/** A tcp hello announcing this end's heartbeat. */
function tcpHello(heartbeats: Heartbeats): Buffer {
  return hello(HelloKind.Tcp, { heartbeat: Math.ceil(heartbeats.heartbeat) });
}

/** Turns a refusal body into an error. */
function refusal(body: unknown): PlexusError {
  const b = body as { code?: unknown; message?: unknown } | null;
  return errorFromWire(b?.code, typeof b?.message === "string" ? b.message : "refused by the server", "ERR_PLEXUS_PROTOCOL");
}

/** Connects a socket (`path`: Unix socket, else host/port with optional TLS); TLS failures are `AccessDeniedError`. */
function connectSocket(target: { path: string } | { host: string; port: number; tls?: TcpTlsOptions }, opts: OpenOptions): Promise<Socket> {
  const tls = "host" in target ? target.tls : undefined;
  return dial("path" in target ? { path: target.path } : { host: target.host, port: target.port }, {
    tls,
    timeout: opts.timeout,
    timeoutMessage: `the server did not accept within ${opts.timeout} ms`,
    signal: opts.signal,
    onError: (e) => connectError(e, "the server"),
  });
}

/** Client side of the shm handshake: creates the request ring, sends its address, attaches to the response ring. */
export async function openShm(socketPath: string, opts: OpenOptions): Promise<ShmChannel> {
  const tx = ShmSender.create({ capacity: opts.capacity, maxReceivers: 1 });
  let control: Socket | undefined;
  try {
    control = await connectSocket({ path: socketPath }, opts);
    control.write(hello(HelloKind.Shm, { name: tx.address.name, socket: tx.address.socket }));
    const answer = await readHello(control, opts.timeout, opts.signal);
    if (answer.kind === HelloKind.Refused) throw refusal(answer.body);
    if (answer.kind !== HelloKind.Shm) throw new ProtocolError(`unexpected handshake kind ${answer.kind}`);
    const address = checkRingAddress(answer.body);
    const rx = await connectShm({ kind: "shm", ...address }, { connectTimeout: opts.timeout, signal: opts.signal, spinMicros: opts.spinMicros });
    return new ShmChannel(tx, rx, control);
  } catch (err) {
    control?.destroy();
    await tx.close();
    throw err;
  }
}

/** Server side of the shm handshake, on an accepted socket. */
export async function acceptShm(control: Socket, opts: OpenOptions): Promise<ShmChannel> {
  const { kind, body } = await readHello(control, opts.timeout);
  if (kind !== HelloKind.Shm) throw new ProtocolError(`unexpected handshake kind ${kind}`);
  const address = checkRingAddress(body);
  const rx = await connectShm({ kind: "shm", ...address }, { connectTimeout: opts.timeout, spinMicros: opts.spinMicros });
  let tx: ShmSender | undefined;
  try {
    tx = ShmSender.create({ capacity: opts.capacity, maxReceivers: 1 });
    control.write(hello(HelloKind.Shm, { name: tx.address.name, socket: tx.address.socket }));
    return new ShmChannel(tx, rx, control);
  } catch (err) {
    await rx.close();
    await tx?.close();
    throw err;
  }
}

/** Client side of the tcp handshake. */
export async function openTcp(target: { host: string; port: number; tls: boolean }, opts: OpenOptions): Promise<TcpChannel> {
  const socket = await connectSocket({ host: target.host, port: target.port, tls: target.tls ? (opts.tls ?? {}) : undefined }, opts);
  try {
    socket.write(tcpHello(opts.heartbeats));
    const answer = await readHello(socket, opts.timeout, opts.signal);
    if (answer.kind === HelloKind.Refused) throw refusal(answer.body);
    if (answer.kind !== HelloKind.Tcp) throw new ProtocolError(`unexpected handshake kind ${answer.kind}`);
    const channel = new TcpChannel(socket, opts.maxMessage, answer.rest, opts.heartbeats, checkHeartbeat(answer.body));
    socket.resume();
    return channel;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** Server side of the tcp handshake, on an accepted socket. */
export async function acceptTcp(socket: Socket, opts: OpenOptions): Promise<TcpChannel> {
  socket.setNoDelay(true);
  const { kind, body, rest } = await readHello(socket, opts.timeout);
  if (kind !== HelloKind.Tcp) throw new ProtocolError(`unexpected handshake kind ${kind}`);
  const peerHeartbeat = checkHeartbeat(body);
  socket.write(tcpHello(opts.heartbeats));
  const channel = new TcpChannel(socket, opts.maxMessage, rest, opts.heartbeats, peerHeartbeat);
  socket.resume();
  return channel;
}

/** Answers a broken handshake and hangs up. */
export function refuse(socket: Socket, err: unknown): void {
  const e = err instanceof PlexusError ? err : new ProtocolError(String(err));
  if (!socket.destroyed) {
    socket.end(hello(HelloKind.Refused, { code: e.code, message: e.message.slice(0, 500) }));
    socket.destroySoon();
  }
}
