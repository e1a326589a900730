/**
 * Opening a channel with the one handshake of every Plexus connection (net/handshake.ts):
 * over tcp a HELLO / WELCOME with each end's heartbeat and no body; over the shm handshake's
 * Unix socket the same frames, whose bodies name the ring each side created (the other attaches
 * to it). Specified in docs/protocol.md §6.2–6.3.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { errorFromWire, ProtocolError, ResourceExhaustedError, SystemError } from "../errors.js";
import { connectShm, ShmSender } from "../transport/shm.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { ShmChannel } from "./shm-channel.js";
import { TcpChannel, type Heartbeats } from "./tcp-channel.js";
import { connectError, dial } from "../net/dial.js";
import { hostPort } from "../net/listen.js";
import { NetType } from "../net/frame.js";
import { readHandshakeFrame } from "../net/exchange.js";
import { encodeHello, encodeRefusal, encodeWelcome, readHello, readWelcome, refusal, Status, type Handshake, type HandshakeSpec } from "../net/handshake.js";

/**
 * Request/response's handshake: magic "PLXR", version 4 (versions 1–3 had a handshake of their
 * own, opening with "PXRH", and a length-prefixed message on tcp; 4 is built on the frame and
 * handshake of every Plexus connection).
 */
export const RPC_SPEC: HandshakeSpec = { name: "request/response", server: "request/response server", magic: 0x52584c50, version: 4, minVersion: 4, capabilities: 0 };
/** Version of the request/response protocol. */
export const RPC_VERSION = RPC_SPEC.version;
/** "PXRH": the first word of every handshake of versions 1–3 (told apart so that such a peer hears of a version mismatch). */
export const LEGACY_MAGIC = 0x48525850;

/** WELCOME statuses of request/response's own (the connection's are net/handshake.ts `Status`). */
export const enum RpcStatus {
  /** shm: the server could not create its response ring (no shared memory there); the client may use tcp. */
  NoSharedMemory = 16,
}

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

/** A server's reason to refuse a HELLO: the WELCOME status and text {@link refuse} answers with. */
export class HandshakeRefusal extends ProtocolError {
  constructor(
    readonly status: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** A HELLO of versions 1–3 ("PXRH"): answered in their own format, so that such a client reports a version mismatch. */
class LegacyHello extends ProtocolError {}

/**
 * What a server answers a client of versions 1–3: their refusal with this version in it (magic
 * "PXRH", version 4, kind 0xff, no body) — such a client reports "version 4 is not supported".
 */
export const LEGACY_REFUSAL: Buffer = Buffer.from([0x50, 0x58, 0x52, 0x48, RPC_VERSION, 0xff, 0, 0]);

/** The ring a HELLO or WELCOME body names (UTF-8 `/plexus-<pid>-<hex>`), and its socket; undefined if it names none. */
export function ringAddress(body: Uint8Array): { name: string; socket: string } | undefined {
  if (body.length > 64) return undefined;
  const name = Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8");
  if (!/^\/plexus-\d{1,10}-[0-9a-f]{1,32}$/.test(name)) return undefined;
  return { name, socket: `\0${name.slice(1)}` };
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

/**
 * The client's reading of the server's WELCOME: the accepted handshake and the bytes after it,
 * or the refusal's typed error (a full server: `ResourceExhaustedError`; no shared memory at
 * the server: `SystemError`; else `ProtocolError`).
 */
async function welcome(socket: Socket, where: string, opts: OpenOptions, peer?: string): Promise<{ w: Handshake; rest: Buffer }> {
  const f = await readHandshakeFrame(socket, {
    type: NetType.Welcome,
    what: where,
    timeout: opts.timeout,
    signal: opts.signal,
    server: peer !== undefined ? { spec: RPC_SPEC, peer } : undefined,
    recognize: (word) =>
      word === LEGACY_MAGIC ? new ProtocolError(`request/response version mismatch with ${where}: it speaks an older version (1..3), this end ${RPC_SPEC.minVersion}..${RPC_SPEC.version}`) : undefined,
  });
  const w = readWelcome(RPC_SPEC, f.header, f.payload, where);
  if (w.status !== Status.Ok) {
    throw refusal(RPC_SPEC, w, where, {
      protocolStatus: (status, reason) => (status === RpcStatus.NoSharedMemory ? errorFromWire(SystemError.code, `${where} has no shared memory: ${reason}`) : undefined),
    });
  }
  return { w, rest: f.rest };
}

/** The server's reading of a client's HELLO (throws {@link HandshakeRefusal}, or what reading failed with). */
async function hello(socket: Socket, opts: OpenOptions): Promise<{ h: Handshake; rest: Buffer }> {
  const f = await readHandshakeFrame(socket, {
    type: NetType.Hello,
    what: "a request/response client",
    timeout: opts.timeout,
    recognize: (word) => (word === LEGACY_MAGIC ? new LegacyHello("a request/response client of version 1..3") : undefined),
  });
  const v = readHello(RPC_SPEC, f.payload);
  if (!v.ok) throw new HandshakeRefusal(v.status, v.reason);
  return { h: v.hello, rest: f.rest };
}

/** Client side of the shm handshake: creates the request ring, sends its name, attaches to the response ring. */
export async function openShm(socketPath: string, opts: OpenOptions): Promise<ShmChannel> {
  const tx = ShmSender.create({ capacity: opts.capacity, maxReceivers: 1 });
  let control: Socket | undefined;
  try {
    control = await connectSocket({ path: socketPath }, opts);
    const where = "the request/response server's shm socket";
    control.write(encodeHello(RPC_SPEC, 0, Buffer.from(tx.address.name, "utf8")));
    const { w } = await welcome(control, where, opts);
    const address = ringAddress(w.body);
    if (address === undefined) throw new ProtocolError(`${where} named no Plexus ring in its WELCOME`);
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
  const { h, rest } = await hello(control, opts);
  const address = ringAddress(h.body);
  if (address === undefined) throw new HandshakeRefusal(Status.Malformed, "the HELLO names no Plexus ring (/plexus-<pid>-<hex>)");
  if (rest.length > 0) throw new HandshakeRefusal(Status.Malformed, "bytes after the HELLO on the shm socket");
  let rx;
  try {
    rx = await connectShm({ kind: "shm", ...address }, { connectTimeout: opts.timeout, spinMicros: opts.spinMicros });
  } catch (err) {
    throw new HandshakeRefusal(Status.Malformed, `the ring ${address.name} cannot be attached (${err instanceof Error ? err.message : String(err)})`);
  }
  let tx: ShmSender | undefined;
  try {
    try {
      tx = ShmSender.create({ capacity: opts.capacity, maxReceivers: 1 });
    } catch (err) {
      throw err instanceof SystemError ? new HandshakeRefusal(RpcStatus.NoSharedMemory, err.message) : err;
    }
    control.write(encodeWelcome(RPC_SPEC, h, 0, Buffer.from(tx.address.name, "utf8")));
    return new ShmChannel(tx, rx, control);
  } catch (err) {
    await rx.close();
    await tx?.close();
    throw err;
  }
}

/** The heartbeat a tcp HELLO or WELCOME announces must be one (ms > 0), and its body empty; else why not. */
function tcpFault(w: Handshake): string | undefined {
  if (w.heartbeat === 0) return "a tcp handshake must announce a heartbeat (ms > 0)";
  if (w.body.length !== 0) return `a tcp handshake has no body (this one has ${w.body.length} bytes)`;
  return undefined;
}

/** Client side of the tcp handshake. */
export async function openTcp(target: { host: string; port: number; tls: boolean }, opts: OpenOptions): Promise<TcpChannel> {
  const socket = await connectSocket({ host: target.host, port: target.port, tls: target.tls ? (opts.tls ?? {}) : undefined }, opts);
  try {
    const peer = hostPort(target.host, target.port);
    const where = `the request/response server at ${peer}`;
    socket.write(encodeHello(RPC_SPEC, Math.ceil(opts.heartbeats.heartbeat)));
    const { w, rest } = await welcome(socket, where, opts, peer);
    const fault = tcpFault(w);
    if (fault !== undefined) throw new ProtocolError(`${where}: ${fault}`);
    const channel = new TcpChannel(socket, opts.maxMessage, rest, opts.heartbeats, w.heartbeat);
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
  const { h, rest } = await hello(socket, opts);
  const fault = tcpFault(h);
  if (fault !== undefined) throw new HandshakeRefusal(Status.Malformed, fault);
  socket.write(encodeWelcome(RPC_SPEC, h, Math.ceil(opts.heartbeats.heartbeat)));
  const channel = new TcpChannel(socket, opts.maxMessage, rest, opts.heartbeats, h.heartbeat);
  socket.resume();
  return channel;
}

/**
 * Answers a failed handshake and hangs up: a WELCOME refusing with the status `err` implies
 * ({@link HandshakeRefusal}; a full server; a malformed first frame), version 1–3's own refusal
 * to a client of those versions, nothing to a client that went silent or away.
 */
export function refuse(socket: Socket, err: unknown): void {
  if (socket.destroyed) return;
  let answer: Buffer | undefined;
  if (err instanceof LegacyHello) answer = LEGACY_REFUSAL;
  else if (err instanceof HandshakeRefusal) answer = encodeRefusal(RPC_SPEC, err.status, err.message);
  else if (err instanceof ResourceExhaustedError) answer = encodeRefusal(RPC_SPEC, Status.Full, err.message);
  else if (err instanceof ProtocolError) answer = encodeRefusal(RPC_SPEC, Status.Malformed, err.message);
  if (answer === undefined) {
    socket.destroy();
    return;
  }
  socket.end(answer);
  socket.destroySoon();
}

