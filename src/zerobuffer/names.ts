/**
 * Names of the operating-system objects of a ZeroBuffer buffer (docs/zerobuffer-protocol.md
 * §1): the shared memory `/NAME`, the semaphores `/sem-w-NAME` and `/sem-r-NAME` (plus
 * `/sem-p-NAME` and `/sem-c-NAME` for the protocol 2 in-place duplex) and the reader's lock
 * file `/tmp/zerobuffer/NAME.lock`.
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

/** Directory of the readers' lock files (C++ and Python; C# uses another one). */
export const LOCK_DIR = "/tmp/zerobuffer";

/** Longest buffer name in bytes: `sem.sem-w-` + NAME must fit NAME_MAX with room to spare. */
export const MAX_NAME_BYTES = 240;

/**
 * Semaphore kinds: `w` data (request) ready, `r` space available; protocol 2 adds `p` response
 * ready and `c` response consumed.
 */
export type SemKind = "w" | "r" | "p" | "c";

/** Every semaphore kind, for cleanup. */
export const ALL_SEM_KINDS: readonly SemKind[] = ["w", "r", "p", "c"];

/**
 * Checks a buffer name: a single path component (no "/"), no NUL, not "." or "..", at most
 * {@link MAX_NAME_BYTES} bytes of UTF-8.
 * @param name - the name to check
 * @param what - how to call it in the error message
 */
export function checkName(name: unknown, what = "buffer name"): asserts name is string {
  if (typeof name !== "string" || name.length === 0) throw new InvalidArgumentError(`${what} must be a non-empty string`);
  if (name.includes("/") || name.includes("\0")) throw new InvalidArgumentError(`${what} must not contain "/" or NUL, got ${JSON.stringify(name)}`);
  if (name === "." || name === "..") throw new InvalidArgumentError(`${what} must not be "." or ".."`);
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) throw new InvalidArgumentError(`${what} is ${bytes} bytes long, at most ${MAX_NAME_BYTES} are allowed`);
}

/** The name passed to `shm_open`. */
export function shmName(name: string): string {
  return `/${name}`;
}

/** The file of the shared memory on Linux. */
export function shmFile(name: string): string {
  return `/dev/shm/${name}`;
}

/** The name passed to `sem_open`. */
export function semName(kind: SemKind, name: string): string {
  return `/sem-${kind}-${name}`;
}

/** The file glibc uses for a named semaphore. */
export function semFile(kind: SemKind, name: string): string {
  return `/dev/shm/sem.sem-${kind}-${name}`;
}

/** The reader's lock file. */
export function lockPath(name: string): string {
  return `${LOCK_DIR}/${name}.lock`;
}

/** The request buffer of a duplex channel (owned by the server). */
export function requestName(channel: string): string {
  return `${channel}_request`;
}

/** The response buffer of a v1 duplex channel (owned by the client). */
export function responseName(channel: string): string {
  return `${channel}_response`;
}
