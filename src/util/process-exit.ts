/**
 * Noticing that another process ended, as it ends: a pidfd (`pidfd_open`) watched from the
 * event loop becomes readable when the process exits, whatever killed it.
 * (Internal: not part of the public API.)
 * @module
 */
import { SystemError } from "../errors.js";
import { native } from "../native.js";

/** A watch on a process; `close()` stops it (idempotent). */
export interface ExitWatch {
  /** Stops watching and releases the pidfd. */
  close(): void;
}

/**
 * Calls `onExit` once when the process `pid` ends — at once (on a later turn) if it is already
 * gone. The watch does not keep the event loop alive. Undefined when this kernel has no pidfds
 * (ENOSYS) or the process cannot be watched (EPERM): the caller keeps its other means.
 */
export function whenProcessExits(pid: number, onExit: () => void): ExitWatch | undefined {
  const n = native();
  let fd: number;
  try {
    fd = n.pidfdOpen(pid);
  } catch (err) {
    if (err instanceof SystemError && err.errnoName === "ESRCH") {
      const t = setImmediate(onExit);
      return { close: () => clearImmediate(t) };
    }
    return undefined;
  }
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    watcher.close();
    n.close(fd);
  };
  const watcher = new n.Watcher(fd, () => {
    close();
    onExit();
  });
  watcher.unref();
  return { close };
}
