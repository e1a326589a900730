/**
 * The errors Plexus throws. Every error is a {@link PlexusError} with a stable `code`
 * (`ERR_PLEXUS_*`) and a fixed `name`; match on `code`, not on the message.
 *
 * The classes form a hierarchy in which the specific extends the general (a ZeroBuffer
 * `WriterDeadError` is a {@link PeerDeadError}, {@link NoSpaceError} a {@link SystemError}), and
 * `instanceof` holds across the package's ESM and CommonJS copies and across the wire: an error
 * a GraphServer or a server sends back is rebuilt as the class of its code (docs/errors.md).
 * @module
 */

/** Options accepted by every Plexus error constructor. */
export interface PlexusErrorOptions {
  /** The error or value that caused this one. */
  cause?: unknown;
}

/**
 * The brand every Plexus error carries: the codes of the Plexus classes it is an instance of,
 * most specific first. A registered symbol, so the ESM and CJS copies of the package (and two
 * installed copies) see the same brand and `instanceof` agrees between them.
 */
const BRAND = Symbol.for("plexus.error.kinds");

/** The codes a class's instances are branded with, per class. */
const kindsOf = new WeakMap<object, readonly string[]>();

/** The codes of the Plexus classes on the prototype chain of `ctor` (classes with their own static `code`). */
function kinds(ctor: object): readonly string[] {
  let k = kindsOf.get(ctor);
  if (k === undefined) {
    const codes: string[] = [];
    for (let c: object | null = ctor; c !== null && c !== Function.prototype; c = Object.getPrototypeOf(c) as object | null) {
      if (Object.hasOwn(c, "code")) codes.push((c as { code: string }).code);
    }
    k = Object.freeze(codes);
    kindsOf.set(ctor, k);
  }
  return k;
}

/** Base class of every error Plexus throws. */
export class PlexusError extends Error {
  /** The code of this class's instances; each Plexus error class has its own. */
  static readonly code: string = "ERR_PLEXUS";

  /** Stable machine-readable code, `ERR_PLEXUS_*`. */
  readonly code: string;

  /**
   * @param message - human-readable text
   * @param code - the stable code; default: the class's own (`static code`)
   * @param options - `cause`
   */
  constructor(message: string, code?: string, options?: PlexusErrorOptions) {
    super(message, options);
    this.code = code ?? (new.target as { code?: string }).code ?? "ERR_PLEXUS";
    Object.defineProperty(this, BRAND, { value: kinds(new.target), enumerable: false });
  }

  /** Fixed name, not derived from the (minified) constructor. */
  override get name(): string {
    return "PlexusError";
  }

  /**
   * `value instanceof SomeError`: true for an instance of the class, including one made by
   * the other module format's copy of this package (ESM/CJS), which carries the class's code
   * in its brand. Classes users derive (with no `static code` of their own) keep the ordinary
   * prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== "object" || value === null || !Object.hasOwn(this, "code")) return false;
    const branded = (value as { [BRAND]?: unknown })[BRAND];
    return Array.isArray(branded) && branded.includes(this.code);
  }
}

/** A `timeout` passed before a blocking operation completed. */
export class TimeoutError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_TIMEOUT";
  /** @param message - what timed out; @param options - `cause` */
  constructor(message = "operation timed out", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "TimeoutError";
  }
}

/** An `AbortSignal` aborted the operation; `cause` is `signal.reason`. */
export class AbortError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ABORTED";
  /** @param message - what was aborted; @param options - `cause` (the signal's reason) */
  constructor(message = "operation aborted", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "AbortError";
  }
}

/** The handle was closed (locally) before or during the operation. */
export class ClosedError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_CLOSED";
  /** @param message - which handle; @param options - `cause` */
  constructor(message = "handle is closed", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "ClosedError";
  }
}

/** The peer process or thread died (or vanished) while it was needed. */
export class PeerDeadError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_PEER_DEAD";
  /** @param message - which peer; @param options - `cause` */
  constructor(message = "peer died", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "PeerDeadError";
  }
}

/** A reader with the `fail` policy had no room for the message. */
export class BackpressureError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_BACKPRESSURE";
  /** @param message - which reader was full; @param options - `cause` */
  constructor(message = "a reader has no room for the message", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "BackpressureError";
  }
}

/** A message is larger than the ring, frame or configured limit allows. */
export class FrameTooLargeError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_FRAME_TOO_LARGE";
  /** @param message - sizes involved; @param options - `cause` */
  constructor(message = "frame too large", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "FrameTooLargeError";
  }
}

/** Shared state or a frame from a peer violates the protocol (magic, version, sizes). */
export class ProtocolError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_PROTOCOL";
  /** @param message - what was wrong; @param options - `cause` */
  constructor(message = "protocol violation", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "ProtocolError";
  }
}

/** A sequence number was not the expected one. */
export class SequenceError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_SEQUENCE";
  /** The sequence number that was expected. */
  readonly expected: number;
  /** The sequence number that arrived. */
  readonly got: number;
  /** @param expected - expected sequence; @param got - received sequence; @param options - `cause` */
  constructor(expected: number, got: number, options?: PlexusErrorOptions) {
    super(`sequence error: expected ${expected}, got ${got}`, undefined, options);
    this.expected = expected;
    this.got = got;
  }
  override get name(): string {
    return "SequenceError";
  }
}

/** The caller may not do this (permissions, tokens). */
export class AccessDeniedError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ACCESS_DENIED";
  /** @param message - what was denied; @param options - `cause` */
  constructor(message = "access denied", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "AccessDeniedError";
  }
}

/** An argument is out of range or of the wrong type. */
export class InvalidArgumentError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_INVALID_ARGUMENT";
  /** @param message - which argument; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "InvalidArgumentError";
  }
}

/**
 * A feature needs a package that Plexus declares as an optional peer dependency and that is not
 * installed, or is installed but cannot be loaded (`cause` is Node's error): `mqtt` for
 * `mqtt://` and `mqtts://` queue URLs, `@grpc/grpc-js` for `grpc://` and `grpcs://`.
 * `packageName` names the package to install next to
 * Plexus. An {@link InvalidArgumentError}: the argument asks for something this installation
 * cannot do.
 */
export class MissingDependencyError extends InvalidArgumentError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_MISSING_DEPENDENCY";
  /** The package to install (`mqtt`). */
  readonly packageName: string;
  /** @param packageName - the package; @param message - what needs it and how to install it; @param options - `cause` */
  constructor(packageName: string, message: string, options?: PlexusErrorOptions) {
    super(message, options);
    this.packageName = packageName;
  }
  override get name(): string {
    return "MissingDependencyError";
  }
}

/** A resource (ring slots, shared memory) is exhausted. */
export class ResourceExhaustedError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_RESOURCE_EXHAUSTED";
  /** @param message - which resource; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "ResourceExhaustedError";
  }
}

/**
 * A system call failed. `errno` is the numeric value, `errnoName` its symbol (`ENOSPC`),
 * `syscall` the call that failed; the message carries the system's own text, `cause` Node's
 * own error where there was one.
 */
export class SystemError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_SYSTEM";
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
   * @param code - the stable code; default: the class's own
   * @param options - `cause`
   */
  constructor(syscall: string, errno: number, errnoName: string, text: string, detail = "", code?: string, options?: PlexusErrorOptions) {
    super(`${syscall}${detail ? ` (${detail})` : ""}: ${text} [${errnoName}]`, code, options);
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
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_NO_SPACE";
  /** @param syscall - the failing call; @param text - strerror text; @param detail - segment name and size; @param options - `cause` */
  constructor(syscall: string, text: string, detail = "", options?: PlexusErrorOptions) {
    super(syscall, 28, "ENOSPC", text, detail, undefined, options);
  }
  override get name(): string {
    return "NoSpaceError";
  }
}

/**
 * Wraps a failure Node reports for a system call (`EADDRINUSE` from `listen`, `ECONNREFUSED`
 * from `connect`, ...) in a {@link SystemError} (a {@link NoSpaceError} for `ENOSPC`) whose
 * `cause` is Node's error. `detail` says what Plexus was doing (an address, a path).
 * @internal
 */
export function systemError(err: NodeJS.ErrnoException, syscall: string, detail = ""): SystemError {
  const name = typeof err.code === "string" ? err.code : "EIO";
  const call = err.syscall ?? syscall;
  if (name === "ENOSPC") return new NoSpaceError(call, err.message, detail, { cause: err });
  return new SystemError(call, typeof err.errno === "number" ? Math.abs(err.errno) : 0, name, err.message, detail, undefined, { cause: err });
}

/**
 * A value cannot be encoded into a frame (a function, a symbol, a cycle, a class instance...).
 * Thrown by the sender (`publish()`), never by a receiver; the message says where in the value.
 */
export class EncodeError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ENCODE";
  /** @param message - what cannot be encoded and where; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "EncodeError";
  }
}

/** A request found no server for its service (none registered, or none reachable over the allowed transports). */
export class NoServerError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_NO_SERVER";
  /** @param message - which service; @param options - `cause` */
  constructor(message = "no server for this service", options?: PlexusErrorOptions) {
    super(message, undefined, options);
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
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_REMOTE";
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
    super(message, undefined, options);
    this.remoteCode = remoteCode;
    this.remoteName = remoteName;
  }
  override get name(): string {
    return "RemoteError";
  }
}

/** An edge would close a cycle in the topic graph. */
export class CycleError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_CYCLE";
  /** @param from - upstream topic; @param to - downstream topic; @param options - `cause` */
  constructor(from: string, to: string, options?: PlexusErrorOptions) {
    super(`edge ${JSON.stringify(from)} -> ${JSON.stringify(to)} would close a cycle`, undefined, options);
  }
  override get name(): string {
    return "CycleError";
  }
}

/** A port, edge or node that does not exist (or belongs to someone else). */
export class NotFoundError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_NOT_FOUND";
  /** @param message - what was not found; @param options - `cause` */
  constructor(message: string, options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "NotFoundError";
  }
}

/**
 * A unit of a pipeline (`plexus/pipeline`) failed: it threw from `initialize()`, a handler, a
 * producer, a task or `shutdown()`; did not shut down within its bound; its module did not load in
 * a worker or process; or its worker or process ended unexpectedly. `path` is the component
 * (`SYS/FILTER`); `cause` is what the unit threw, with its stack (rebuilt when it was thrown in
 * another thread or process).
 */
export class UnitError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_UNIT";
  /** The path of the component (`SYS/FILTER`); "" when unknown (an error that came over the wire). */
  readonly path: string;
  /** @param path - the component; @param message - what happened; @param options - `cause` */
  constructor(path: string, message: string, options?: PlexusErrorOptions) {
    super(message, undefined, options);
    this.path = path;
  }
  override get name(): string {
    return "UnitError";
  }
}

/**
 * An error as a protocol carries it: its code and message (docs/protocol.md, "Errors on the wire").
 * @internal
 */
export interface WireError {
  /** The error's `code` (`ERR_PLEXUS_*`, or an application's own). */
  code: string;
  /** The error's message. */
  message: string;
}

/** Makes the error of one code from a message that came over the wire. */
type WireFactory = (message: string) => PlexusError;

/** The class of every code a protocol may carry. */
const wireClasses = new Map<string, WireFactory>();

/**
 * Registers the class a wire `code` is rebuilt as. Plexus's own modules register their
 * classes; a class whose constructor takes more than a message gives a factory.
 * @internal
 */
export function registerWireError(code: string, make: WireFactory): void {
  wireClasses.set(code, make);
}

/** Every class whose constructor is `(message, options)`. */
type MessageClass = (new (message: string) => PlexusError) & { code: string };

/** Sets the message of an error made with a constructor that composes its own. */
function withMessage<E extends PlexusError>(err: E, message: string): E {
  err.message = message;
  return err;
}

for (const c of [TimeoutError, AbortError, ClosedError, PeerDeadError, BackpressureError, FrameTooLargeError, ProtocolError, AccessDeniedError, InvalidArgumentError, ResourceExhaustedError, EncodeError, NoServerError, NotFoundError] as MessageClass[]) {
  registerWireError(c.code, (m) => new c(m));
}
registerWireError(SequenceError.code, (m) => withMessage(new SequenceError(0, 0), m));
registerWireError(CycleError.code, (m) => withMessage(new CycleError("", ""), m));
registerWireError(RemoteError.code, (m) => new RemoteError(m));
registerWireError(SystemError.code, (m) => withMessage(new SystemError("", 0, "EIO", m), m));
registerWireError(NoSpaceError.code, (m) => withMessage(new NoSpaceError("", m), m));
registerWireError(MissingDependencyError.code, (m) => new MissingDependencyError("", m));
registerWireError(UnitError.code, (m) => new UnitError("", m));

/**
 * Rebuilds an error that came over the wire as the class of its code, so `instanceof` works
 * as it does in the process that threw it: a cycle refused by a remote GraphServer is a
 * {@link CycleError}. An unknown code gives a {@link PlexusError} that keeps the code.
 * @internal
 */
export function errorFromWire(code: unknown, message: unknown, fallbackCode = "ERR_PLEXUS"): PlexusError {
  const c = typeof code === "string" && code.length > 0 ? code : fallbackCode;
  const m = typeof message === "string" ? message : "error reported by the peer";
  const make = wireClasses.get(c);
  return make !== undefined ? make(m) : new PlexusError(m, c);
}

/**
 * What a protocol sends for an error: a Plexus error's code and message; anything else as `fallbackCode`.
 * @internal
 */
export function errorToWire(err: unknown, fallbackCode = "ERR_PLEXUS"): WireError {
  if (err instanceof PlexusError) return { code: err.code, message: err.message };
  return { code: fallbackCode, message: err instanceof Error ? err.message : String(err) };
}
