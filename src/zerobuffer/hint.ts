/**
 * The wake hint: a shortcut between two Plexus ends of a v1 buffer, outside the ZeroBuffer
 * protocol (foreign peers never see it and lose nothing). A v1 frame is announced by `sem-w`; a
 * reader in Node can only wait for a semaphore on a helper thread, which then wakes the event
 * loop — two thread wake-ups per frame, 80–120 µs on a VM. The reader therefore also listens on
 * an abstract Unix socket named after the buffer and hands an eventfd to the writer that
 * connects there; that writer signals the eventfd after each `sem_post`, and the reader's event
 * loop waits on the eventfd directly (one wake-up), then takes the frame from the semaphore as
 * usual. The semaphore stays the only source of truth: a lost or spurious hint costs at most one
 * wait slice, never a frame.
 *
 * Handshake: the writer connects to `\0plexus-zb-<sha256(name)[0..32]>`; the reader sends 4
 * bytes ("PXH1") with the eventfd (SCM_RIGHTS); the writer answers one byte once it holds it.
 * The reader counts the hint as live only if the answering process is the buffer's current
 * writer (`SO_PEERCRED` pid == `writer_pid`), so no other local process can make it sleep on a
 * descriptor nobody signals. EOF on the socket ends the hint.
 * (Internal: not part of the public API.)
 * @module
 */
import { createHash } from "node:crypto";
import { native, type Watcher } from "../native.js";
import { receiveMessage } from "../util/unix.js";
import { EventfdBell } from "../ring/bell.js";

/** "PXH1". */
const HINT_MAGIC = 0x31485850;

/** The abstract socket of buffer `name` (fixed length whatever the name's). */
export function hintAddress(name: string): string {
  return `\0plexus-zb-${createHash("sha256").update(name).digest("hex").slice(0, 32)}`;
}

interface Peer {
  fd: number;
  watcher: Watcher;
  live: boolean;
}

/** The reader's end: an eventfd, handed to the buffer's Plexus writer. */
export class HintListener {
  private readonly bell = new EventfdBell();
  private readonly peers = new Set<Peer>();
  private live = 0;
  private closed = false;
  private listener: Watcher | undefined;

  private constructor(
    private readonly listenFd: number,
    private readonly writerPid: () => number,
  ) {}

  /**
   * Listens for the writer of buffer `name`; undefined if the socket cannot be made (the hint is
   * an optimisation: the reader works without it).
   * @param writerPid - reads `writer_pid` from the buffer's header
   */
  static open(name: string, writerPid: () => number): HintListener | undefined {
    const n = native();
    let fd = -1;
    try {
      fd = n.unixListen(hintAddress(name));
      const self = new HintListener(fd, writerPid);
      self.listener = new n.Watcher(fd, () => self.acceptAll());
      self.listener.unref();
      return self;
    } catch {
      if (fd >= 0) n.close(fd);
      return undefined;
    }
  }

  /** True while the buffer's writer holds the eventfd and signals it. */
  get active(): boolean {
    return this.live > 0;
  }

  /** Sleeps until the writer signals, `ms` passes, the hint ends or `signal` aborts (all resolve). */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return this.bell.sleep(0, ms, signal).catch(() => undefined);
  }

  /** Stops listening and drops every writer's connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.peers]) this.drop(p);
    this.listener?.close();
    native().close(this.listenFd);
    this.bell.close();
  }

  private acceptAll(): void {
    const n = native();
    for (let fd = n.unixAccept(this.listenFd); fd >= 0; fd = n.unixAccept(this.listenFd)) {
      const hello = new Uint8Array(4);
      new DataView(hello.buffer).setUint32(0, HINT_MAGIC, true);
      let sent = false;
      try {
        sent = n.sendFds(fd, hello, [this.bell.fd]) === hello.length;
      } catch {
        sent = false;
      }
      if (!sent) {
        n.close(fd);
        continue;
      }
      const peer: Peer = { fd, watcher: undefined as unknown as Watcher, live: false };
      peer.watcher = new n.Watcher(fd, (events) => this.onPeer(peer, events));
      peer.watcher.unref();
      this.peers.add(peer);
    }
  }

  private onPeer(peer: Peer, events: number): void {
    const n = native();
    const msg = receiveMessage(peer.fd, 8, events);
    if (msg === null) return;
    for (const fd of msg.fds) n.close(fd);
    if (msg.data.length === 0 || peer.live) return this.drop(peer); // EOF, or bytes after the answer
    let pid = 0;
    try {
      pid = n.peerCredentials(peer.fd).pid;
    } catch {
      pid = 0;
    }
    if (pid === 0 || pid !== this.writerPid()) return this.drop(peer); // not the buffer's writer
    peer.live = true;
    this.live++;
  }

  private drop(peer: Peer): void {
    if (!this.peers.delete(peer)) return;
    peer.watcher.close();
    native().close(peer.fd);
    if (peer.live) {
      this.live--;
      this.bell.interrupt(); // a reader sleeping on the hint goes back to the semaphore
    }
  }
}

/** The writer's end: signals the reader's eventfd once it has it. */
export class HintSender {
  private eventfd = -1;
  private closed = false;
  private watcher: Watcher | undefined;

  private constructor(private readonly fd: number) {}

  /** Connects to the reader of buffer `name`; undefined if it offers no hint (a foreign reader). */
  static connect(name: string): HintSender | undefined {
    const n = native();
    let fd = -1;
    try {
      fd = n.unixConnect(hintAddress(name));
      const self = new HintSender(fd);
      self.watcher = new n.Watcher(fd, (events) => self.onEvent(events));
      self.watcher.unref();
      return self;
    } catch {
      if (fd >= 0) n.close(fd);
      return undefined;
    }
  }

  /** Signals the reader (after a `sem_post`); nothing before the handshake completed. */
  signal(): void {
    if (this.eventfd >= 0) native().eventfdSignal(this.eventfd);
  }

  /** Ends the hint (the reader sees EOF). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const n = native();
    this.watcher?.close();
    n.close(this.fd);
    if (this.eventfd >= 0) n.close(this.eventfd);
    this.eventfd = -1;
  }

  private onEvent(events: number): void {
    const n = native();
    const msg = receiveMessage(this.fd, 8, events);
    if (msg === null) return;
    const ok = msg.data.length === 4 && msg.fds.length === 1 && this.eventfd < 0 && new DataView(msg.data.buffer, msg.data.byteOffset, 4).getUint32(0, true) === HINT_MAGIC;
    if (!ok) {
      for (const fd of msg.fds) n.close(fd);
      this.close(); // EOF, a second hello or garbage: no hint
      return;
    }
    this.eventfd = msg.fds[0];
    try {
      n.sendFds(this.fd, new Uint8Array([1]), []);
    } catch {
      this.close();
    }
  }
}
