/**
 * Creating and removing the buffer a reader owns (docs/zerobuffer-protocol.md §3): stale scan,
 * lock file, shared memory, header, semaphores, in that order; removal per §8 (C++ behaviour).
 * Shared by the protocol 1 {@link Reader} and the protocol 2 in-place server.
 * (Internal: not part of the public API.)
 * @module
 */
import { readFileSync, unlinkSync } from "node:fs";
import { SystemError } from "../errors.js";
import { native, type Semaphore } from "../native.js";
import { ReaderAlreadyConnectedError } from "./errors.js";
import { lockPath, semName, shmName, type SemKind } from "./names.js";
import { Header, Q, initHeader } from "./oieb.js";
import { readPids, sameFile, staleScan, unlinkSemaphores, unlinkShm } from "./stale.js";
import { alive, sleep } from "./waits.js";

/** The file mode every object is asked for (0666); the umask applies, as in the reference. */
export const REQUESTED_MODE = 0o666;

/** The process umask, read without changing it (from /proc, falling back to process.umask()). */
export function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m?.[1] !== undefined) return parseInt(m[1], 8);
  } catch {
    // no /proc: fall through
  }
  return process.umask();
}

/** What to create. */
export interface OwnedSpec {
  /** Buffer name (checked by the caller). */
  name: string;
  /** `oieb_size` (128 or 256). */
  oiebSize: number;
  /** Protocol major version (1 or 2). */
  major: number;
  /** Metadata block size, already aligned. */
  metadataSize: number;
  /** Payload size, already aligned. */
  payloadSize: number;
  /** Semaphores to create, in order. */
  sems: readonly SemKind[];
}

/** A created buffer: the mapping, its header, the held lock and the semaphores. */
export interface Owned {
  /** The mapping. */
  buffer: SharedArrayBuffer;
  /** Its header. */
  header: Header;
  /** fd holding the flock on the lock file. */
  lockFd: number;
  /** Open semaphores by kind. */
  sems: Map<SemKind, Semaphore>;
}

/** How often and how long to retry a lock that a concurrent stale scan may hold for a moment. */
const LOCK_TRIES = 5;
const LOCK_RETRY_MS = 4;

/** Takes `/tmp/zerobuffer/NAME.lock`; throws ReaderAlreadyConnectedError if a live reader holds it. */
async function takeLock(name: string): Promise<number> {
  const path = lockPath(name);
  for (let attempt = 1; ; attempt++) {
    const fd = native().lockFile(path, REQUESTED_MODE, false);
    if (fd >= 0) {
      if (sameFile(fd, path)) return fd;
      native().close(fd); // a stale scan unlinked it meanwhile: take the new one
    } else if (attempt >= LOCK_TRIES) {
      throw new ReaderAlreadyConnectedError(`buffer "${name}" already has a reader (lock ${path} is held)`);
    }
    await sleep(LOCK_RETRY_MS);
  }
}

/** Releases a lock: unlink first, then close, so nobody locks a file that is about to vanish. */
function dropLock(name: string, fd: number): void {
  try {
    if (sameFile(fd, lockPath(name))) unlinkSync(lockPath(name));
  } catch {
    // already gone
  }
  try {
    native().close(fd);
  } catch {
    // already closed
  }
}

/** `shm_open(O_CREAT|O_EXCL)`; an existing segment of a dead owner is removed and creation retried once. */
function createSegment(name: string, size: number): SharedArrayBuffer {
  const mode = REQUESTED_MODE & ~currentUmask();
  try {
    return native().segmentCreate(shmName(name), size, mode);
  } catch (err) {
    if (!(err instanceof SystemError) || err.errnoName !== "EEXIST") throw err;
  }
  // A leftover: of a dead reader (remove it, like C++ and C#), or of a live one that keeps its
  // lock elsewhere (C# uses another lock directory) — refuse, like C#.
  let pids = { reader: 0, writer: 0 };
  try {
    pids = readPids(native().segmentOpen(shmName(name)));
  } catch {
    // vanished meanwhile
  }
  if (pids.reader !== 0 && pids.reader !== process.pid && alive(pids.reader)) {
    throw new ReaderAlreadyConnectedError(`buffer "${name}" already exists and its reader (pid ${pids.reader}) is alive`);
  }
  unlinkShm(name);
  unlinkSemaphores(name);
  return native().segmentCreate(shmName(name), size, mode);
}

/**
 * Creates a buffer as its reader: stale scan, lock, segment (`oiebSize + metadataSize +
 * payloadSize` bytes, zero-filled by the kernel), header with `reader_pid = getpid()`, then
 * the semaphores (stale ones unlinked first, as Python does; created with 0666 and value 0).
 * On failure nothing is left behind.
 */
export async function createOwned(spec: OwnedSpec): Promise<Owned> {
  staleScan();
  const lockFd = await takeLock(spec.name);
  let buffer: SharedArrayBuffer | undefined;
  const sems = new Map<SemKind, Semaphore>();
  try {
    buffer = createSegment(spec.name, spec.oiebSize + spec.metadataSize + spec.payloadSize);
    const header = new Header(buffer, spec.oiebSize);
    initHeader(header, spec.oiebSize, spec.major, spec.metadataSize, spec.payloadSize);
    for (const kind of spec.sems) {
      native().semUnlink(semName(kind, spec.name));
      sems.set(kind, native().semOpen(semName(kind, spec.name), true, REQUESTED_MODE, 0));
    }
    return { buffer, header, lockFd, sems };
  } catch (err) {
    for (const sem of sems.values()) sem.close();
    if (buffer !== undefined) {
      new Header(buffer, 128).store(Q.readerPid, 0);
      unlinkShm(spec.name);
    }
    unlinkSemaphores(spec.name, spec.sems);
    dropLock(spec.name, lockFd);
    throw err;
  }
}

/**
 * Removes an owned buffer (§8, C++): reader_pid = 0, close the semaphores, unlink the shm and
 * every semaphore, unlink and close the lock file. Closing semaphores with a pending wait is
 * the caller's business (cancel and await first).
 */
export function destroyOwned(name: string, owned: Owned, kinds: readonly SemKind[]): void {
  owned.header.store(Q.readerPid, 0);
  for (const sem of owned.sems.values()) sem.close();
  unlinkShm(name);
  unlinkSemaphores(name, kinds);
  dropLock(name, owned.lockFd);
}

