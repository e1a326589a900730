/**
 * The errors Plexus throws. Every error is a {@link PlexusError} with a stable `code`
 * (`ERR_PLEXUS_*`) and a fixed `name`; match on `code`, not on the message.
 * @module
 */

/** Options accepted by every Plexus error constructor. */
export interface PlexusErrorOptions {
  /** The error or value that caused this one. */
  cause?: unknown;
}

/** Base class of every error Plexus throws. */
export class PlexusError extends Error {
  /** Stable machine-readable code, `ERR_PLEXUS_*`. */
  readonly code: string;

  /**
   * @param message - human-readable text
   * @param code - the stable code (subclasses pass their own)
   * @param options - `cause`
   */
  constructor(message: string, code = "ERR_PLEXUS", options?: PlexusErrorOptions) {
    super(message, options);
    this.code = code;
  }

  /** Fixed name, not derived from the (minified) constructor. */
  override get name(): string {
    return "PlexusError";
  }
}

/** A `timeout` passed before a blocking operation completed. */
export class TimeoutError extends PlexusError {
  /** @param message - what timed out; @param options - `cause` */
  constructor(message = "operation timed out", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_TIMEOUT", options);
  }
  override get name(): string {
    return "TimeoutError";
  }
}

/** An `AbortSignal` aborted the operation; `cause` is `signal.reason`. */
export class AbortError extends PlexusError {
  /** @param message - what was aborted; @param options - `cause` (the signal's reason) */
  constructor(message = "operation aborted", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_ABORTED", options);
  }
  override get name(): string {
    return "AbortError";
  }
}

/** The handle was closed (locally) before or during the operation. */
export class ClosedError extends PlexusError {
  /** @param message - which handle; @param options - `cause` */
  constructor(message = "handle is closed", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_CLOSED", options);
  }
  override get name(): string {
    return "ClosedError";
  }
}

/** The peer process or thread died (or vanished) while it was needed. */
export class PeerDeadError extends PlexusError {
  /** @param message - which peer; @param options - `cause` */
  constructor(message = "peer died", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_PEER_DEAD", options);
  }
  override get name(): string {
    return "PeerDeadError";
  }
}

/** A reader with the `fail` policy had no room for the message. */
export class BackpressureError extends PlexusError {
  /** @param message - which reader was full; @param options - `cause` */
  constructor(message = "a reader has no room for the message", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_BACKPRESSURE", options);
  }
  override get name(): string {
    return "BackpressureError";
  }
}

/** A message is larger than the ring, frame or configured limit allows. */
export class FrameTooLargeError extends PlexusError {
  /** @param message - sizes involved; @param options - `cause` */
  constructor(message = "frame too large", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_FRAME_TOO_LARGE", options);
  }
  override get name(): string {
    return "FrameTooLargeError";
  }
}

/** Shared state or a frame from a peer violates the protocol (magic, version, sizes). */
export class ProtocolError extends PlexusError {
  /** @param message - what was wrong; @param options - `cause` */
  constructor(message = "protocol violation", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_PROTOCOL", options);
  }
  override get name(): string {
    return "ProtocolError";
  }
}

/** A sequence number was not the expected one. */
export class SequenceError extends PlexusError {
  /** The sequence number that was expected. */
  readonly expected: number;
  /** The sequence number that arrived. */
  readonly got: number;
  /** @param expected - expected sequence; @param got - received sequence; @param options - `cause` */
  constructor(expected: number, got: number, options?: PlexusErrorOptions) {
    super(`sequence error: expected ${expected}, got ${got}`, "ERR_PLEXUS_SEQUENCE", options);
    this.expected = expected;
    this.got = got;
  }
  override get name(): string {
    return "SequenceError";
  }
}

/** The caller may not do this (permissions, tokens). */
export class AccessDeniedError extends PlexusError {
  /** @param message - what was denied; @param options - `cause` */
  constructor(message = "access denied", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_ACCESS_DENIED", options);
  }
  override get name(): string {
    return "AccessDeniedError";
  }
}

/** An argument is out of range or of the wrong type. */
export class InvalidArgumentError extends PlexusError {
  /** @param message - which argument; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_INVALID_ARGUMENT", options);
  }
  override get name(): string {
    return "InvalidArgumentError";
  }
}

/** A resource (ring slots, shared memory) is exhausted. */
export class ResourceExhaustedError extends PlexusError {
  /** @param message - which resource; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_RESOURCE_EXHAUSTED", options);
  }
  override get name(): string {
    return "ResourceExhaustedError";
  }
}

/**
 * A system call failed. `errno` is the numeric value, `errnoName` its symbol (`ENOSPC`),
 * `syscall` the call that failed; the message carries the system's own text.
 */
export class SystemError extends PlexusError {
  /** Numeric errno. */
  readonly errno: number;
  /** Symbolic errno, e.g. `ENOSPC`. */
  readonly errnoName: string;
  /** The failing system call, e.g. `shm_open`. */
  readonly syscall: string;
  /**
   * @param syscall - the failing call
   * @param errno - numeric errno
   * @param errnoName - symbolic errno
   * @param text - the system's description (strerror)
   * @param detail - what Plexus was doing (a name, a path)
   * @param code - the stable code (subclasses pass their own)
   */
  constructor(syscall: string, errno: number, errnoName: string, text: string, detail = "", code = "ERR_PLEXUS_SYSTEM") {
    super(`${syscall}${detail ? ` (${detail})` : ""}: ${text} [${errnoName}]`, code);
    this.errno = errno;
    this.errnoName = errnoName;
    this.syscall = syscall;
  }
  override get name(): string {
    return "SystemError";
  }
}

/** Shared memory could not be created because there is no room (`ENOSPC`, e.g. a full `/dev/shm`). */
export class NoSpaceError extends SystemError {
  /** @param syscall - the failing call; @param text - strerror text; @param detail - segment name and size */
  constructor(syscall: string, text: string, detail = "") {
    super(syscall, 28, "ENOSPC", text, detail, "ERR_PLEXUS_NO_SPACE");
  }
  override get name(): string {
    return "NoSpaceError";
  }
}

/**
 * A value cannot be encoded into a frame (a function, a symbol, a cycle, a class instance...).
 * Thrown by the sender (`publish()`), never by a receiver; the message says where in the value.
 */
export class EncodeError extends PlexusError {
  /** @param message - what cannot be encoded and where; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_ENCODE", options);
  }
  override get name(): string {
    return "EncodeError";
  }
}

/** A request found no server for its service (none registered, or none reachable over the allowed transports). */
export class NoServerError extends PlexusError {
  /** @param message - which service; @param options - `cause` */
  constructor(message = "no server for this service", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_NO_SERVER", options);
  }
  override get name(): string {
    return "NoServerError";
  }
}

/**
 * The remote handler of a request threw (or rejected). `remoteCode` and `remoteName` are the
 * thrown error's `code` (e.g. `ERR_PLEXUS_INVALID_ARGUMENT`, or the handler's own) and `name`;
 * the message is the thrown error's message. The server kept serving.
 */
export class RemoteError extends PlexusError {
  /** The `code` of the error the handler threw (`ERR_PLEXUS_HANDLER` if it had none). */
  readonly remoteCode: string;
  /** The `name` of the error the handler threw (`Error` if unknown). */
  readonly remoteName: string;
  /**
   * @param message - the remote error's message
   * @param remoteCode - the remote error's code
   * @param remoteName - the remote error's name
   * @param options - `cause`
   */
  constructor(message: string, remoteCode = "ERR_PLEXUS_HANDLER", remoteName = "Error", options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_REMOTE", options);
    this.remoteCode = remoteCode;
    this.remoteName = remoteName;
  }
  override get name(): string {
    return "RemoteError";
  }
}
