/**
 * The readers' stale scan (docs/zerobuffer-protocol.md §3 step 1, C++ behaviour) and the
 * removal of a buffer's objects.
 * (Internal: not part of the public API.)
 * @module
 */
import { fstatSync, mkdirSync, readdirSync, statSync, unlinkSync } from "node:fs";
import { SystemError } from "../errors.js";
import { native } from "../native.js";
import { ALL_SEM_KINDS, LOCK_DIR, checkName, lockPath, semName, shmName, type SemKind } from "./names.js";
import { alive } from "./waits.js";

/** Offsets of the two pids in every protocol version. */
const WRITER_PID_OFFSET = 0x50;
const READER_PID_OFFSET = 0x58;

/** `mkdir -p /tmp/zerobuffer` (mode 0777 minus umask, like the reference). */
export function ensureLockDir(): void {
  mkdirSync(LOCK_DIR, { recursive: true, mode: 0o777 });
}

/** Unlinks the named semaphores of `name`; missing ones are fine. */
export function unlinkSemaphores(name: string, kinds: readonly SemKind[] = ALL_SEM_KINDS): void {
  for (const kind of kinds) {
    try {
      native().semUnlink(semName(kind, name));
    } catch {
      // not ours to remove (EACCES): leave it
    }
  }
}

/** Unlinks the shared memory of `name`; true if it existed. */
export function unlinkShm(name: string): boolean {
  try {
    return native().segmentUnlink(shmName(name));
  } catch {
    return false;
  }
}

/** Reads the two pids of a segment (0 for a segment too small to hold them). */
export function readPids(buffer: SharedArrayBuffer): { writer: number; reader: number } {
  if (buffer.byteLength < READER_PID_OFFSET + 8) return { writer: 0, reader: 0 };
  const view = new DataView(buffer);
  const u64 = (o: number): number => view.getUint32(o + 4, true) * 4294967296 + view.getUint32(o, true);
  return { writer: u64(WRITER_PID_OFFSET), reader: u64(READER_PID_OFFSET) };
}

/**
 * Removes the buffer `name` if nobody uses it: opens its shm; when reader_pid and writer_pid
 * are both 0 or dead, unlinks the shm and its semaphores. When the shm cannot be opened, unlinks
 * the semaphores (C++). Returns false only when the buffer is still in use (a live pid).
 */
export function removeIfUnused(name: string): boolean {
  let buffer: SharedArrayBuffer;
  try {
    buffer = native().segmentOpen(shmName(name));
  } catch {
    unlinkSemaphores(name);
    return true;
  }
  const pids = readPids(buffer);
  if (alive(pids.reader) || alive(pids.writer)) return false;
  unlinkShm(name);
  unlinkSemaphores(name);
  return true;
}

/** True if `fd` and `path` name the same file (the path was not unlinked or replaced meanwhile). */
export function sameFile(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/**
 * The stale scan every reader runs before it creates its buffer: for every `*.lock` file in
 * `/tmp/zerobuffer` whose lock can be taken (its reader is gone), remove the buffer if unused
 * ({@link removeIfUnused}) and then the lock file. Two refinements over the reference: the lock
 * is held until the lock file is unlinked, so a reader starting meanwhile never takes a lock
 * file that is about to vanish; and the lock file of a buffer still in use is kept, so the
 * buffer is not orphaned (a killed reader releases its lock a moment before its pid is gone).
 * Returns the names whose lock files were removed.
 */
export function staleScan(): string[] {
  ensureLockDir();
  const removed: string[] = [];
  let files: string[];
  try {
    files = readdirSync(LOCK_DIR);
  } catch {
    return removed;
  }
  for (const file of files) {
    if (!file.endsWith(".lock")) continue;
    const name = file.slice(0, -".lock".length);
    try {
      checkName(name);
    } catch {
      continue;
    }
    const path = lockPath(name);
    let fd: number;
    try {
      // Never create it: its owner may have removed it since the listing (a clean close), and
      // a lock file recreated here would outlive everyone.
      fd = native().lockFile(path, 0o666, false, false);
    } catch (err) {
      if (err instanceof SystemError) continue; // another user's lock file, or it vanished
      throw err;
    }
    if (fd < 0) continue; // held: its reader is alive
    try {
      if (!sameFile(fd, path)) continue; // removed and recreated meanwhile
      // Still used by a live writer (or a reader that has released its lock but not yet left
      // the process table): keep the lock file, so a later scan removes the buffer.
      if (!removeIfUnused(name)) continue;
      try {
        unlinkSync(path);
        removed.push(name);
      } catch {
        // vanished meanwhile
      }
    } finally {
      native().close(fd);
    }
  }
  return removed;
}
