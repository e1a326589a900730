/**
 * `plexus/zerobuffer`: ZeroBuffer v1 wire compatibility (Reader, Writer, DuplexServer,
 * DuplexClient) and the Plexus in-place duplex, protocol 2 (InPlaceServer, InPlaceClient).
 * See docs/zerobuffer.md.
 * @packageDocumentation
 */
export { AbortError, BackpressureError, ClosedError, FrameTooLargeError, PeerDeadError, PlexusError, ProtocolError, RemoteError, SequenceError, TimeoutError } from "../errors.js";
export type { BlockingOptions } from "../util/blocking.js";
export {
  BufferFullError,
  HandlerError,
  InvalidFrameSizeError,
  MetadataAlreadyWrittenError,
  ProtocolVersionError,
  ReaderAlreadyConnectedError,
  ReaderDeadError,
  WriterAlreadyConnectedError,
  WriterDeadError,
  type WriterDeadErrorOptions,
} from "./errors.js";
export { Frame } from "./frame.js";
export { Reader, type ReaderOptions } from "./reader.js";
export { Writer, FrameBuffer, type WriterOptions } from "./writer.js";
export {
  DuplexClient,
  DuplexServer,
  type DuplexClientOptions,
  type DuplexHandler,
  type DuplexResponse,
  type DuplexServerOptions,
  type RequestBuffer,
  type Respond,
} from "./duplex.js";
export { InPlaceServer, type InPlaceHandler, type InPlaceRequest, type InPlaceServerOptions } from "./inplace-server.js";
export { InPlaceClient, type InPlaceClientOptions, type InPlaceRequestBuffer, type InPlaceResponse } from "./inplace-client.js";
export type { HeaderSnapshot } from "./oieb.js";
export { staleScan as sweepStaleBuffers } from "./stale.js";
export { LOCK_DIR, MAX_NAME_BYTES } from "./names.js";
