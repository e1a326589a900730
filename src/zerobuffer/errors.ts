/**
 * The ZeroBuffer-specific errors. Each one corresponds to an exception of the reference
 * implementations (docs/zerobuffer-protocol.md §9) and is a {@link PlexusError} with a stable
 * `ERR_PLEXUS_ZB_*` code and a fixed `name`, under the general class it is a case of:
 * `WriterDeadError` and `ReaderDeadError` are {@link PeerDeadError}s, `BufferFullError` a
 * {@link BackpressureError}, `InvalidFrameSizeError` and `ProtocolVersionError`
 * {@link ProtocolError}s, `HandlerError` a {@link RemoteError}. `FrameTooLargeError` and `SequenceError` are the
 * general Plexus ones (`ERR_PLEXUS_FRAME_TOO_LARGE`, `ERR_PLEXUS_SEQUENCE`).
 * @module
 */
import { BackpressureError, PeerDeadError, PlexusError, ProtocolError, registerWireError, RemoteError, type PlexusErrorOptions } from "../errors.js";

/** Options of {@link WriterDeadError}. */
export interface WriterDeadErrorOptions extends PlexusErrorOptions {
  /** True when the writer closed (writer_pid = 0) rather than died. */
  graceful?: boolean;
}

/**
 * The writer of a buffer is gone: it closed (`graceful`, writer_pid = 0) or its process died,
 * and every frame it committed has been read (`WriterDeadException`).
 */
export class WriterDeadError extends PeerDeadError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_WRITER_DEAD";
  /** True when the writer closed; false when its process died. */
  readonly graceful: boolean;
  /** @param message - which buffer; @param options - `graceful`, `cause` */
  constructor(message = "the writer is gone", options?: WriterDeadErrorOptions) {
    super(message, options);
    this.graceful = options?.graceful ?? false;
  }
  override get name(): string {
    return "WriterDeadError";
  }
}

/** The reader of a buffer closed (reader_pid = 0) or its process died (`ReaderDeadException`). */
export class ReaderDeadError extends PeerDeadError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_READER_DEAD";
  /** @param message - which buffer; @param options - `cause` */
  constructor(message = "the reader is gone", options?: PlexusErrorOptions) {
    super(message, options);
  }
  override get name(): string {
    return "ReaderDeadError";
  }
}

/** A live writer is already connected to the buffer (`WriterAlreadyConnectedException`). */
export class WriterAlreadyConnectedError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_WRITER_ALREADY_CONNECTED";
  /** @param message - which buffer and pid; @param options - `cause` */
  constructor(message = "a writer is already connected", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "WriterAlreadyConnectedError";
  }
}

/** A live reader already owns the buffer: its lock file is held (`ReaderAlreadyConnectedException`). */
export class ReaderAlreadyConnectedError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_READER_ALREADY_CONNECTED";
  /** @param message - which buffer; @param options - `cause` */
  constructor(message = "a reader already owns the buffer", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "ReaderAlreadyConnectedError";
  }
}

/**
 * The writer could not get room for a frame: the reader held the space past the write timeout,
 * or the frame can never fit where the ring stands (the "stall" of docs/zerobuffer-protocol.md
 * §12) (`BufferFullException`).
 */
export class BufferFullError extends BackpressureError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_BUFFER_FULL";
  /** @param message - sizes involved; @param options - `cause` */
  constructor(message = "buffer full", options?: PlexusErrorOptions) {
    super(message, options);
  }
  override get name(): string {
    return "BufferFullError";
  }
}

/**
 * A frame size is impossible: 0 bytes on write, or a header read from the ring that claims
 * more than the ring can hold or straddles its end (`InvalidFrameSizeException`).
 */
export class InvalidFrameSizeError extends ProtocolError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_INVALID_FRAME_SIZE";
  /** @param message - the size and where; @param options - `cause` */
  constructor(message = "invalid frame size", options?: PlexusErrorOptions) {
    super(message, options);
  }
  override get name(): string {
    return "InvalidFrameSizeError";
  }
}

/** The buffer's metadata was already written; it is write-once (`MetadataAlreadyWrittenException`). */
export class MetadataAlreadyWrittenError extends PlexusError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_METADATA_ALREADY_WRITTEN";
  /** @param message - which buffer; @param options - `cause` */
  constructor(message = "metadata already written", options?: PlexusErrorOptions) {
    super(message, undefined, options);
  }
  override get name(): string {
    return "MetadataAlreadyWrittenError";
  }
}

/**
 * The buffer speaks another protocol version than the handle: a v1 `Writer` or `DuplexClient`
 * met a protocol 2 (in-place duplex) buffer, or an `InPlaceClient` met a v1 buffer.
 */
export class ProtocolVersionError extends ProtocolError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_PROTOCOL_VERSION";
  /** The version the handle speaks (1 or 2). */
  readonly expected: number;
  /** The major version found in the buffer's header. */
  readonly found: number;
  /** @param expected - version of the handle; @param found - version of the buffer; @param message - text; @param options - `cause` */
  constructor(expected: number, found: number, message: string, options?: PlexusErrorOptions) {
    super(message, options);
    this.expected = expected;
    this.found = found;
  }
  override get name(): string {
    return "ProtocolVersionError";
  }
}

/** The in-place server's handler threw while handling a request; `message` is the server's text. */
export class HandlerError extends RemoteError {
  /** The code of this class's instances. */
  static override readonly code: string = "ERR_PLEXUS_ZB_HANDLER_FAILED";
  /** Sequence number of the request that failed. */
  readonly sequence: number;
  /** @param sequence - the request; @param message - the server's error text; @param options - `cause` */
  constructor(sequence: number, message: string, options?: PlexusErrorOptions) {
    super(message, "ERR_PLEXUS_HANDLER", "Error", options);
    this.sequence = sequence;
  }
  override get name(): string {
    return "HandlerError";
  }
}

for (const c of [WriterDeadError, ReaderDeadError, WriterAlreadyConnectedError, ReaderAlreadyConnectedError, BufferFullError, InvalidFrameSizeError, MetadataAlreadyWrittenError]) {
  registerWireError(c.code, (m) => new c(m));
}
registerWireError(ProtocolVersionError.code, (m) => new ProtocolVersionError(0, 0, m));
registerWireError(HandlerError.code, (m) => new HandlerError(0, m));
