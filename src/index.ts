/**
 * Plexus: zero-copy messaging for TypeScript on Node.js.
 *
 * This release provides the foundation: shared-memory rings between worker threads (`thread`)
 * and processes (`shm`) behind one `Sender`/`Receiver` interface, with explicit backpressure,
 * zero-copy receive, loans for zero-copy send, and typed errors.
 * @packageDocumentation
 */
export * from "./errors.js";
export * from "./transport/index.js";
export * from "./pubsub/index.js";
export * from "./graph/index.js";
export * from "./rpc/index.js";
export type { BlockingOptions } from "./util/blocking.js";
export * from "./queue/index.js";
