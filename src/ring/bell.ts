/**
 * Wake-ups. A {@link Bell} lets one party sleep; a {@link Doorbell} wakes it. Threads of one
 * process use `Atomics.waitAsync`/`Atomics.notify` on a word of the ring; processes use an
 * eventfd watched by the event loop. Both are only rung when the sleeper raised its sleeping
 * flag, so a busy reader costs the writer nothing (see the ring's wake protocol).
 * (Internal: not part of the public API.)
 * @module
 */
import { native, PollEvent, type Watcher } from "../native.js";
import { Sleeper } from "../util/blocking.js";

/** Wakes a sleeping party. */
export interface Doorbell {
  /** Wake the party (cheap; safe to call when nobody sleeps). */
  ring(): void;
}

/** Lets one party sleep until rung. */
export interface Bell {
  /** A token read before the party re-checks its condition; pass it to `sleep`. */
  token(): number;
  /** Sleeps until rung after `token` was read, `timeoutMs` passed (resolves), or `signal` aborted (rejects). */
  sleep(token: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Wakes the sleeper from this side (used to interrupt a wait, e.g. on peer death). */
  interrupt(): void;
  /** Releases resources; a pending sleep resolves. */
  close(): void;
}

/** Bell over a 32-bit word of a SharedArrayBuffer (threads of one process). */
export class AtomicsBell implements Bell {
  private readonly sleeper = new Sleeper();

  /** @param words - the ring's header words; @param index - the wake word's index */
  constructor(
    private readonly words: Int32Array,
    private readonly index: number,
  ) {}

  token(): number {
    return Atomics.load(this.words, this.index);
  }

  sleep(token: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const p = this.sleeper.sleep(timeoutMs, signal);
    const r = Atomics.waitAsync(this.words, this.index, token);
    if (r.async) {
      void r.value.then(() => this.sleeper.wake());
    } else {
      this.sleeper.wake();
    }
    return p;
  }

  interrupt(): void {
    this.sleeper.wake();
  }

  close(): void {
    this.sleeper.dispose();
  }
}

/** Doorbell for an {@link AtomicsBell}. */
export class AtomicsDoorbell implements Doorbell {
  /** @param words - the ring's header words; @param index - the wake word's index */
  constructor(
    private readonly words: Int32Array,
    private readonly index: number,
  ) {}

  ring(): void {
    Atomics.add(this.words, this.index, 1);
    Atomics.notify(this.words, this.index);
  }
}

/**
 * Bell over an eventfd this party owns. The watcher stays started and never keeps the process
 * alive by itself: a sleep does, with its timer (see {@link Sleeper}), so an idle party does not.
 */
export class EventfdBell implements Bell {
  /** The eventfd; give it to peers (over a Unix socket) so they can ring. */
  readonly fd: number;
  private readonly sleeper = new Sleeper();
  private readonly watcher: Watcher;
  private closed = false;

  /** @param fd - an eventfd to adopt (closed by `close()`); default: a new one */
  constructor(fd?: number) {
    const n = native();
    this.fd = fd ?? n.eventfdCreate();
    this.watcher = new n.Watcher(this.fd, (events) => {
      if (events & PollEvent.Readable) n.eventfdDrain(this.fd);
      this.sleeper.wake();
    });
    this.watcher.unref();
  }

  token(): number {
    return 0;
  }

  sleep(_token: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.sleeper.sleep(timeoutMs, signal);
  }

  interrupt(): void {
    this.sleeper.wake();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sleeper.dispose();
    this.watcher.close();
    native().close(this.fd);
  }
}

/** Doorbell for an eventfd received from a peer; owns (and closes) its copy of the fd. */
export class EventfdDoorbell implements Doorbell {
  private descriptor: number;
  /** @param fd - an eventfd (this doorbell closes it) */
  constructor(fd: number) {
    this.descriptor = fd;
  }
  /** The eventfd, -1 once closed. */
  get fd(): number {
    return this.descriptor;
  }
  ring(): void {
    if (this.descriptor >= 0) native().eventfdSignal(this.descriptor);
  }
  /** Closes the fd; ringing afterwards does nothing. */
  close(): void {
    if (this.descriptor >= 0) native().close(this.descriptor);
    this.descriptor = -1;
  }
}
