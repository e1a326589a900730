/**
 * The `shm` transport: a ring in a POSIX shared-memory segment shared between processes of
 * one host. A receiver maps the segment, claims a slot, and trades eventfds with the sender
 * over a Unix socket (`SCM_RIGHTS`); that connection stays open, so each side learns at once
 * (EOF) when the other process dies. The handshake is specified in docs/protocol.md.
 * @module
 */
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { EventfdBell, EventfdDoorbell } from "../ring/bell.js";
import { initRing, ringGeometry, S_STATE, slotIndex, WakeKind } from "../ring/layout.js";
import { RingReader } from "../ring/reader.js";
import { RingWriter } from "../ring/writer.js";
import { native, PollEvent, type Watcher } from "../native.js";
import { InvalidArgumentError, PeerDeadError, ProtocolError, SystemError, TimeoutError } from "../errors.js";
import { throwIfAborted } from "../util/blocking.js";
import { RingReceiver, RingSender } from "./ring-endpoints.js";
import { receiveMessage } from "../util/unix.js";
import { Deferred } from "../util/wait.js";
import { receiverSettings, ringSenderSettings, type ReceiverOptions, type RingSenderOptions } from "./transport.js";
import { readOptions } from "../util/options.js";

/** Where a receiver finds an `shm` sender: plain strings, valid anywhere on the host. */
export interface ShmAddress {
  /** Transport tag. */
  readonly kind: "shm";
  /** Shared-memory segment name (`/plexus-<pid>-<hex>`). */
  readonly name: string;
  /** Unix socket of the sender (abstract namespace, starts with NUL). */
  readonly socket: string;
}

/** "PXJ1": a receiver's join request. */
export const JOIN_MAGIC = 0x314a5850;
/** "PXA1": the sender's answer. */
export const ACCEPT_MAGIC = 0x31415850;
/** Answer status: joined. */
const STATUS_OK = 0;
/** Answer status: the slot named in the request is not owned by the requester. */
const STATUS_REFUSED = 1;
/** Prefix of every segment Plexus creates. */
const PREFIX = "plexus-";
/** Where POSIX shared memory lives on Linux. */
const SHM_DIR = "/dev/shm";

/**
 * Unlinks segments left by dead processes (`/dev/shm/plexus-<pid>-*` whose pid is gone).
 * Returns the names removed. Run by the first sender of each process (and `plexus shm sweep`).
 */
export function sweepStaleSegments(): string[] {
  let names: string[];
  try {
    names = readdirSync(SHM_DIR);
  } catch {
    return [];
  }
  const n = native();
  const removed: string[] = [];
  for (const f of names) {
    if (!f.startsWith(PREFIX)) continue;
    const pid = Number(f.slice(PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || n.processAlive(pid)) continue;
    try {
      if (n.segmentUnlink(`/${f}`)) removed.push(f);
    } catch {
      // not ours to remove (permissions): leave it
    }
  }
  return removed;
}

/** Whether this process already swept stale segments. */
let swept = false;

/** One receiver's connection, seen from the sender. */
interface Peer {
  fd: number;
  watcher: Watcher;
  slot: number;
  stateWord: number;
  doorbell: EventfdDoorbell | undefined;
}

/** The sending end of an `shm` transport. */
export class ShmSender extends RingSender {
  /** Where receivers connect. */
  readonly address: ShmAddress;
  private readonly peers = new Set<Peer>();

  private constructor(
    address: ShmAddress,
    writer: RingWriter,
    private readonly bell: EventfdBell,
    private readonly listenFd: number,
    private readonly listener: Watcher,
  ) {
    super("shm", writer, () => this.teardown());
    this.address = address;
  }

  /**
   * Creates the segment (`/dev/shm/plexus-<pid>-<hex>`, mode 0600, space reserved up front: a
   * full `/dev/shm` is a `NoSpaceError` now, not a crash later) and starts listening.
   */
  static create(opts: RingSenderOptions = {}): ShmSender {
    const n = native();
    if (!swept) {
      // Once per process: stale segments belong to processes that died before this one started.
      swept = true;
      sweepStaleSegments();
    }
    const set = ringSenderSettings("ShmSender.create", opts);
    const geo = ringGeometry({ capacity: set.capacity, maxReaders: set.maxReceivers });
    const id = `${PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
    const address: ShmAddress = { kind: "shm", name: `/${id}`, socket: `\0${id}` };
    const buffer = n.segmentCreate(address.name, geo.byteLength, 0o600);
    let bell: EventfdBell | undefined;
    let listenFd = -1;
    try {
      initRing(buffer, geo, process.pid);
      bell = new EventfdBell();
      listenFd = n.unixListen(address.socket);
      const writer = new RingWriter(buffer, bell, { timeout: set.timeout });
      const listener = new n.Watcher(listenFd, () => sender.acceptAll());
      listener.unref();
      const sender = new ShmSender(address, writer, bell, listenFd, listener);
      return sender;
    } catch (err) {
      bell?.close();
      if (listenFd >= 0) n.close(listenFd);
      n.segmentUnlink(address.name);
      throw err;
    }
  }

  private acceptAll(): void {
    const n = native();
    for (let fd = n.unixAccept(this.listenFd); fd >= 0; fd = n.unixAccept(this.listenFd)) {
      const peer: Peer = { fd, watcher: undefined as unknown as Watcher, slot: -1, stateWord: 0, doorbell: undefined };
      peer.watcher = new n.Watcher(fd, (events) => this.onPeer(peer, events));
      peer.watcher.unref();
      this.peers.add(peer);
    }
  }

  private onPeer(peer: Peer, events: number): void {
    const n = native();
    const msg = receiveMessage(peer.fd, 64, events);
    if (msg === null) return;
    if (msg.data.length === 0 || peer.slot >= 0) {
      // EOF (the receiver left or died), or bytes after the handshake: both end the peer.
      for (const fd of msg.fds) n.close(fd);
      this.dropPeer(peer);
      return;
    }
    const ok = this.join(peer, msg.data, msg.fds);
    if (!ok) {
      for (const fd of msg.fds) n.close(fd);
      this.dropPeer(peer);
    }
  }

  /** Handles a join request; false if it is malformed or refused (then the caller closes `fds`). */
  private join(peer: Peer, data: Uint8Array, fds: number[]): boolean {
    if (data.length !== 16 || fds.length !== 1) return false;
    const v = new DataView(data.buffer, data.byteOffset, 16);
    if (v.getUint32(0, true) !== JOIN_MAGIC) return false;
    const slot = v.getUint32(4, true);
    const stateWord = v.getInt32(8, true);
    const ring = this.writer.ring;
    const owned = slot < ring.maxReaders && Atomics.load(ring.words, slotIndex(slot, S_STATE)) === stateWord;
    const answer = new Uint8Array(8);
    const a = new DataView(answer.buffer);
    a.setUint32(0, ACCEPT_MAGIC, true);
    a.setUint32(4, owned ? STATUS_OK : STATUS_REFUSED, true);
    const n = native();
    if (owned) {
      peer.slot = slot;
      peer.stateWord = stateWord;
      peer.doorbell = new EventfdDoorbell(fds[0]);
      this.writer.setDoorbell(slot, peer.doorbell);
    }
    try {
      if (n.sendFds(peer.fd, answer, [this.bell.fd]) !== answer.length) return false;
    } catch {
      return false;
    }
    return owned;
  }

  private dropPeer(peer: Peer): void {
    if (!this.peers.delete(peer)) return;
    peer.watcher.close();
    native().close(peer.fd);
    if (peer.slot >= 0) this.writer.evict(peer.slot, peer.stateWord);
    peer.doorbell?.close();
  }

  private teardown(): void {
    const n = native();
    this.listener.close();
    n.close(this.listenFd);
    for (const peer of [...this.peers]) {
      this.peers.delete(peer);
      peer.watcher.close();
      n.close(peer.fd);
      peer.doorbell?.close();
    }
    n.segmentUnlink(this.address.name);
    this.bell.close();
  }
}

/** Options for {@link connectShm}. */
export interface ShmConnectOptions extends ReceiverOptions {
  /** Milliseconds to wait for the sender's answer (default 5000). */
  connectTimeout?: number;
  /** Aborts the handshake. */
  signal?: AbortSignal;
}

/**
 * Attaches a receiver to an `shm` sender (in this or another process of the host). Rejects
 * with `PeerDeadError` if the sender is gone, `TimeoutError` if it does not answer.
 */
export async function connectShm(address: ShmAddress, opts: ShmConnectOptions = {}): Promise<RingReceiver> {
  if (address?.kind !== "shm" || typeof address.name !== "string" || typeof address.socket !== "string") {
    throw new InvalidArgumentError("not an shm address (use ShmSender.address)");
  }
  const set = receiverSettings("connectShm", opts);
  const o = readOptions("connectShm", opts);
  const timeout = o.timeout("connectTimeout", 5000);
  throwIfAborted(o.signal("signal"), "connect");
  const n = native();
  let buffer: SharedArrayBuffer;
  try {
    buffer = n.segmentOpen(address.name);
  } catch (err) {
    if (err instanceof SystemError && err.errnoName === "ENOENT") throw new PeerDeadError(`no shm sender at ${address.name}`, { cause: err });
    throw err;
  }
  const bell = new EventfdBell();
  let reader: RingReader;
  try {
    reader = new RingReader(buffer, bell, undefined, {
      policy: set.backpressure,
      spinMicros: set.spinMicros,
      adaptiveSpin: set.adaptiveSpin,
      anticipate: set.anticipate,
      timeout: set.timeout,
      wakeKind: WakeKind.Eventfd,
      pid: process.pid,
    });
  } catch (err) {
    bell.close();
    throw err;
  }
  let fd = -1;
  const fail = (err: unknown): never => {
    reader.leave();
    if (fd >= 0) n.close(fd);
    bell.close();
    throw err;
  };
  try {
    fd = n.unixConnect(address.socket);
  } catch (err) {
    fail(new PeerDeadError(`the shm sender of ${address.name} does not answer`, { cause: err }));
  }
  const join = new Uint8Array(16);
  const j = new DataView(join.buffer);
  j.setUint32(0, JOIN_MAGIC, true);
  j.setUint32(4, reader.slot, true);
  j.setInt32(8, reader.stateWord, true);
  j.setUint32(12, process.pid, true);
  try {
    if (n.sendFds(fd, join, [bell.fd]) !== join.length) throw new ProtocolError("short write of the join request");
  } catch (err) {
    fail(new PeerDeadError(`the shm sender of ${address.name} went away`, { cause: err }));
  }
  let joined = false;
  let leaving = false;
  const answer = new Deferred<void>({
    timeout,
    signal: opts.signal,
    what: "connect",
    timeoutError: () => new TimeoutError(`the shm sender of ${address.name} did not answer within ${timeout} ms`),
  }, undefined);
  const settle = (err?: Error): void => void (err ? answer.reject(err) : answer.resolve());
  const onEvent = (events: number): void => {
    let msg;
    try {
      msg = n.recvFds(fd, 64);
    } catch (err) {
      msg = { data: new Uint8Array(0), fds: [], err };
    }
    if (msg === null && !(events & PollEvent.Disconnect)) return;
    if (!joined && msg !== null && msg.data.length > 0) {
      const ok = msg.data.length === 8 && msg.fds.length === 1 && new DataView(msg.data.buffer, msg.data.byteOffset, 8).getUint32(0, true) === ACCEPT_MAGIC;
      const status = ok ? new DataView(msg.data.buffer, msg.data.byteOffset, 8).getUint32(4, true) : -1;
      if (ok && status === STATUS_OK) {
        joined = true;
        reader.setWriterDoorbell(new EventfdDoorbell(msg.fds[0]));
        watcher.unref();
        settle();
        return;
      }
      for (const f of msg.fds) n.close(f);
      settle(new ProtocolError(ok ? `the shm sender refused slot ${reader.slot}` : "malformed answer from the shm sender"));
      return;
    }
    for (const f of msg?.fds ?? []) n.close(f);
    // EOF or hang-up: the sender closed (gracefully: the ring says so) or died.
    watcher.stop();
    if (!joined) settle(new PeerDeadError(`the shm sender of ${address.name} closed during the handshake`));
    else if (!leaving && !reader.writerClosed) {
      reader.markWriterDead(new PeerDeadError(`the shm sender of ${address.name} died`));
      try {
        n.segmentUnlink(address.name);
      } catch {
        // already gone
      }
    }
  };
  const watcher = new n.Watcher(fd, onEvent);
  try {
    await answer.promise;
  } catch (err) {
    watcher.close();
    fail(err);
  }
  return new RingReceiver("shm", reader, () => {
    leaving = true;
    watcher.close();
    n.close(fd);
    bell.close();
  });
}
