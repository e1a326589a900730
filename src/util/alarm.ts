/**
 * A one-shot timer with microsecond precision for the event loop: a timerfd watched by the
 * loop. The loop's own timers count whole milliseconds (and often fire a millisecond late),
 * which is the whole period of a 1 kHz stream; an anticipating reader needs to wake up tens of
 * µs before a frame is due.
 * (Internal: not part of the public API.)
 * @module
 */
import { native, type Watcher } from "../native.js";

/** Wakes up once, `delayMs` after {@link Alarm.set}; never keeps the process alive by itself. */
export class Alarm {
  private readonly fd: number;
  private readonly watcher: Watcher;
  private armed = false;
  private closed = false;

  /** @param onFire - called (from the event loop) when an armed alarm expires */
  constructor(onFire: () => void) {
    const n = native();
    const fd = n.timerfdCreate();
    try {
      this.watcher = new n.Watcher(fd, () => {
        // No expiration to read: the timer was cleared or re-armed after the loop saw it expire.
        if (n.eventfdDrain(fd) === 0 || !this.armed) return;
        this.armed = false;
        onFire();
      });
    } catch (err) {
      n.close(fd);
      throw err;
    }
    this.fd = fd;
    this.watcher.unref();
  }

  /** Arms the alarm `delayMs` from now (replacing an armed one). */
  set(delayMs: number): void {
    if (this.closed) return;
    native().timerfdArm(this.fd, Math.max(1000, delayMs * 1e6));
    this.armed = true;
  }

  /** Disarms the alarm (cheap when it is not armed). */
  clear(): void {
    if (!this.armed || this.closed) return;
    this.armed = false;
    native().timerfdArm(this.fd, 0);
  }

  /** Releases the timer. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.armed = false;
    this.watcher.close();
    native().close(this.fd);
  }
}
