/**
 * Plexus: zero-copy messaging for TypeScript on Node.js.
 *
 * `connect()` joins a topic graph and gives a {@link Node}, which makes publishers and
 * subscribers (pub/sub over topics), servers and clients (request/response); `queue` gives
 * acknowledged queues. Every pair of endpoints takes the fastest path: the value itself in one
 * thread, a shared-memory ring between threads and processes, TCP (optionally TLS) between
 * hosts. Every error is a typed {@link PlexusError}.
 * @packageDocumentation
 */
export * from "./errors.js";
export * from "./transport/index.js";
export * from "./node/index.js";
export * from "./pubsub/index.js";
export * from "./graph/index.js";
export * from "./rpc/index.js";
export type { BlockingOptions } from "./util/blocking.js";
export type { CloseOptions } from "./util/linger.js";
export * from "./queue/index.js";
