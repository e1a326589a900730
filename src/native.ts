/**
 * The typed contract of the C++ addon (`native/`) and its loader. Only what JavaScript cannot
 * do lives in the addon: shared-memory segments as SharedArrayBuffers, eventfd wake-ups watched
 * by the event loop, fd passing over Unix sockets, process liveness, lock files, a native
 * memcpy into shared memory and POSIX named semaphores.
 *
 * Every native function validates its arguments (throwing {@link InvalidArgumentError}) and
 * turns a failed system call into a {@link SystemError} (or {@link NoSpaceError} for
 * `ENOSPC`) carrying `errno`, its name and the system's text.
 * (Internal: not part of the public API.)
 * @module
 */
import { loadAddon } from "./native-loader.cjs";
import { InvalidArgumentError, NoSpaceError, SystemError } from "./errors.js";

/** Bits passed to a {@link Watcher} callback. */
export const enum PollEvent {
  /** The fd is readable (eventfd counter > 0, data or EOF on a socket, a pidfd's process exited). */
  Readable = 1,
  /** The peer hung up or the fd is in error (POLLHUP / POLLERR / UV_DISCONNECT). */
  Disconnect = 2,
}

/**
 * Watches a file descriptor from the event loop (`uv_poll`) and calls `callback` with
 * make-callback semantics (promise jobs and `nextTick` run afterwards). Starts referenced;
 * `unref()` lets the process exit while it waits. `close()` stops and frees it and is
 * idempotent. The watcher polls its own duplicate of the fd (closed by `close()`), so a reused
 * fd number is never watched by mistake — but a socket's peer sees EOF only once both the fd and
 * its watcher are closed. A started watcher is never garbage-collected: always `close()` it.
 */
export interface Watcher {
  /** Start watching for readability (and hang-up); idempotent. */
  start(): void;
  /** Stop watching; `start()` may be called again. */
  stop(): void;
  /** Keep the event loop alive while started (the default). */
  ref(): void;
  /** Do not keep the event loop alive for this watcher. */
  unref(): void;
  /** Stop and release the handle; safe to call twice. The fd stays open. */
  close(): void;
}

/** A POSIX named semaphore (`sem_open`), closed with `close()`. */
export interface Semaphore {
  /** `sem_post`. Returns false instead of throwing on `EOVERFLOW`. */
  post(): boolean;
  /** `sem_trywait`: true if decremented, false if the value was 0. */
  tryWait(): boolean;
  /**
   * `sem_timedwait` off the event loop (a waiter thread owned by this semaphore, not the libuv
   * pool). Resolves true if decremented, false on timeout. At most one wait at a time per
   * semaphore object (a second call throws). `cancelWait()` makes a pending wait resolve false.
   */
  wait(timeoutMs: number): Promise<boolean>;
  /** Makes a pending `wait` resolve false soon (used for abort signals and close). */
  cancelWait(): void;
  /** `sem_getvalue`. */
  value(): number;
  /** `sem_close`; idempotent. A pending wait resolves false first. */
  close(): void;
}

/** Result of {@link NativeAddon.recvFds}. */
export interface Received {
  /** Bytes received; length 0 means the peer closed the connection (EOF). */
  data: Uint8Array;
  /** File descriptors received with `SCM_RIGHTS` (now owned by the caller). */
  fds: number[];
}

/** The functions the addon exports. */
export interface NativeAddon {
  /**
   * Installs the factory the addon uses to build the errors it throws. `kind` is `"system"` for
   * a failed call (`syscall`, `errno`, `errnoName`, `message` = strerror, `detail` = what was
   * being done) or `"argument"` for a bad argument (`message` says which).
   */
  setErrorFactory(
    factory: (kind: "system" | "argument", message: string, syscall: string, errno: number, errnoName: string, detail: string) => Error,
  ): void;

  // ---- segments -------------------------------------------------------------------------
  /**
   * `shm_open(name, O_CREAT|O_EXCL|O_RDWR, mode)`, `ftruncate`, `posix_fallocate` (ENOSPC is an
   * error, never a later SIGBUS), `mmap(MAP_SHARED)`; returns a SharedArrayBuffer over the
   * mapping. `name` must start with "/" and contain no other "/". On failure nothing is left behind.
   */
  segmentCreate(name: string, size: number, mode: number): SharedArrayBuffer;
  /** `shm_open(name, O_RDWR)` + `mmap` of its whole current size (from `fstat`). */
  segmentOpen(name: string): SharedArrayBuffer;
  /** `shm_unlink`; returns false if it did not exist. */
  segmentUnlink(name: string): boolean;
  /** `memfd_create` + `ftruncate` + `posix_fallocate` + `mmap`; the caller owns `fd`. */
  memfdCreate(name: string, size: number): { fd: number; buffer: SharedArrayBuffer };
  /** Maps an fd (a received memfd, a file) shared read-write, whole size from `fstat`. */
  mapFd(fd: number): SharedArrayBuffer;
  /**
   * Maps anonymous private zero pages over a buffer made by this addon (`MAP_FIXED`): every view
   * of it then reads zeros and the shared pages are released. Idempotent; throws for a
   * SharedArrayBuffer the addon did not map.
   */
  segmentRetire(buffer: SharedArrayBuffer): void;
  /** `close(fd)`; EBADF throws. */
  close(fd: number): void;
  /** `fcntl(fd, F_DUPFD_CLOEXEC)`: a second descriptor of the same open file. */
  dup(fd: number): number;
  /**
   * How many descriptors made by the addon in this thread are still open. Each is closed when
   * its thread's environment is torn down (a worker exits or is terminated), so the peers of a
   * vanished thread see EOF at once; `close()` forgets it.
   */
  ownedFdCount(): number;

  // ---- wake-ups -------------------------------------------------------------------------
  /** `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`. */
  eventfdCreate(): number;
  /** Adds 1 to the eventfd counter (`write`); a saturated counter (EAGAIN) is not an error. */
  eventfdSignal(fd: number): void;
  /** Reads and resets the counter; returns 0 if it was 0 (EAGAIN). Also consumes a timerfd's expirations. */
  eventfdDrain(fd: number): number;
  /** `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)`: a timer with µs precision to watch. */
  timerfdCreate(): number;
  /** Arms the timer to expire once, `delayNs` from now (0 or less: disarms it). */
  timerfdArm(fd: number, delayNs: number): void;
  /** A uv_poll watcher; `callback(events)` gets {@link PollEvent} bits. Started on creation. */
  Watcher: new (fd: number, callback: (events: number) => void) => Watcher;

  // ---- fd passing over Unix sockets ------------------------------------------------------
  /**
   * A non-blocking listening `AF_UNIX` stream socket. A path starting with "\0" is in the
   * abstract namespace (no file); otherwise a filesystem path (an existing socket file is
   * replaced). Returns the fd.
   */
  unixListen(path: string): number;
  /** Connects (blocking, local, immediate) and returns a non-blocking connected fd. */
  unixConnect(path: string): number;
  /** `accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)`; -1 when nothing is pending (EAGAIN). */
  unixAccept(fd: number): number;
  /**
   * A non-blocking listening TCP socket on an IP literal (v4 or v6, `SO_REUSEADDR`): its fd
   * (owned, close with {@link close}) and the port bound. Throws `SystemError` (EADDRINUSE ...).
   */
  tcpListen(ip: string, port: number, backlog: number): { fd: number; port: number };
  /**
   * The next connection of a {@link tcpListen} socket (`accept4`, non-blocking), or -1 when none
   * is pending; `SystemError` otherwise (EMFILE: the connection stays in the backlog). The fd is
   * not owned: hand it to `new net.Socket({ fd })`, which closes it.
   */
  tcpAccept(fd: number): number;
  /**
   * `sendmsg` of `data` (at least 1 byte) with `fds` as `SCM_RIGHTS` (at most 16); returns the
   * bytes sent (short on a full socket). Throws EAGAIN/EPIPE as SystemError.
   */
  sendFds(fd: number, data: Uint8Array, fds: number[]): number;
  /** `recvmsg` up to `maxBytes` with room for 16 fds; null on EAGAIN; `data.length === 0` on EOF. */
  recvFds(fd: number, maxBytes: number): Received | null;
  /** `SO_PEERCRED` of a connected Unix socket. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };

  // ---- liveness ---------------------------------------------------------------------------
  /** `pidfd_open(pid, 0)`; becomes readable when the process exits. Throws ESRCH if gone, ENOSYS on old kernels. */
  pidfdOpen(pid: number): number;
  /** `kill(pid, 0)`: true if the process exists (EPERM counts as alive). */
  processAlive(pid: number): boolean;
  /**
   * `open(path, O_CREAT|O_RDWR|O_CLOEXEC, mode)` + `flock(LOCK_EX|LOCK_NB)` (or `LOCK_SH` when
   * `shared`). Returns the fd holding the lock, or -1 if another holder has it (EWOULDBLOCK).
   * With `create` false (default true) the file must exist: `SystemError` `ENOENT` otherwise.
   */
  lockFile(path: string, mode: number, shared: boolean, create?: boolean): number;

  // ---- copy -------------------------------------------------------------------------------
  /**
   * `memcpy(target + targetOffset, source bytes, source.byteLength)`. `source` is any
   * ArrayBufferView (Buffer, typed array, DataView), not overlapping the target. Bounds are
   * checked (a detached `ArrayBuffer` has none). Copying out of a `SharedArrayBuffer` this way
   * is many times faster than `set()`, which V8 does with relaxed atomic loads.
   */
  copy(target: SharedArrayBuffer | ArrayBuffer, targetOffset: number, source: ArrayBufferView): void;

  // ---- POSIX named semaphores ----------------------------------------------------------------
  /**
   * `sem_open`. `create`: `O_CREAT|O_EXCL` with `mode` and `initial`; otherwise open existing.
   * `name` starts with "/".
   */
  semOpen(name: string, create: boolean, mode: number, initial: number): Semaphore;
  /** `sem_unlink`; false if it did not exist. */
  semUnlink(name: string): boolean;

  // ---- memory -----------------------------------------------------------------------------
  /**
   * glibc: `mallopt(M_MMAP_THRESHOLD, mmapBytes)` and `mallopt(M_TRIM_THRESHOLD, trimBytes)`
   * — freed memory is kept (up to `trimBytes` at the heap's top) instead of handed back to
   * the kernel and faulted in again. False where the C library is not glibc, or when it refused
   * (then nothing was changed).
   */
  retainFreedMemory(trimBytes: number, mmapBytes: number): boolean;
}

let cached: NativeAddon | undefined;

/** Freed heap memory glibc keeps at the heap's top before trimming (see docs/operations.md). */
const RETAIN_TRIM_BYTES = 64 << 20;
/** Blocks below this come from the heap (glibc's own dynamic limit), larger ones are mmap()ed. */
const RETAIN_MMAP_BYTES = 32 << 20;

/** Builds the typed errors the addon throws. */
function makeError(kind: "system" | "argument", message: string, syscall: string, errno: number, errnoName: string, detail: string): Error {
  if (kind === "argument") return new InvalidArgumentError(message);
  if (errnoName === "ENOSPC") return new NoSpaceError(syscall, message, detail);
  return new SystemError(syscall, errno, errnoName, message, detail);
}

/**
 * Whether Plexus may set glibc's thresholds: not with `PLEXUS_MALLOC_TUNING=0`, nor when the
 * operator set them already (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, or
 * `GLIBC_TUNABLES` naming `glibc.malloc.trim_threshold` / `mmap_threshold`).
 */
export function mayTuneAllocator(env: NodeJS.ProcessEnv): boolean {
  if (env["PLEXUS_MALLOC_TUNING"] === "0") return false;
  if (env["MALLOC_TRIM_THRESHOLD_"] !== undefined || env["MALLOC_MMAP_THRESHOLD_"] !== undefined) return false;
  return !/glibc\.malloc\.(trim|mmap)_threshold/.test(env["GLIBC_TUNABLES"] ?? "");
}

/** The addon, loaded once. Throws a {@link SystemError}-free plain error if the binary is missing. */
export function native(): NativeAddon {
  if (cached === undefined) {
    const addon = loadAddon() as NativeAddon;
    addon.setErrorFactory(makeError);
    // Message buffers are freed in batches by the garbage collector: keep that memory instead
    // of faulting it in again for the next batch.
    if (mayTuneAllocator(process.env)) addon.retainFreedMemory(RETAIN_TRIM_BYTES, RETAIN_MMAP_BYTES);
    cached = addon;
  }
  return cached;
}
