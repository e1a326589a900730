/**
 * Acknowledged queues: a server and its clients put values to each other; every `put`
 * resolves on an acknowledgement from the receiving end (on the wire), or rejects with a typed
 * error. Backends: TCP, TLS, and MQTT through a broker. See docs/queue.md.
 * @module
 */
import { QueueClient } from "./client.js";
import type { QueueClientOptions, QueueServerOptions } from "./options.js";
import { QueueServer } from "./server.js";

export { QueueClient } from "./client.js";
export { QueueServer, type ServerPutOptions } from "./server.js";
export type { PeerId, QueueMessage } from "./inbox.js";
export type { DeliveryMode, QueueClientOptions, QueueOptions, QueueServerOptions } from "./options.js";

/** Something that takes and puts queue messages: a {@link QueueServer} or a {@link QueueClient}. */
export type QueueEndpoint = QueueServer | QueueClient;

/**
 * Starts a queue server listening at `opts.url` (`tcp://host:port`, `tls://host:port`; port 0
 * picks a free one, see `server.url`). Rejects with `AccessDeniedError` for plain TCP on a
 * non-loopback address without `allowInsecure`, `InvalidArgumentError` for bad options,
 * `SystemError` when the address cannot be bound.
 */
function server(opts: QueueServerOptions): Promise<QueueServer> {
  return QueueServer.create(opts);
}

/**
 * Connects a queue client to the server at `opts.url`. Rejects with `PeerDeadError` if no
 * server answers, `AccessDeniedError` (TLS failure, plain TCP to a remote host), `ProtocolError`
 * (not a queue server of this version), `ResourceExhaustedError` (server full),
 * `TimeoutError`, `AbortError`.
 */
function client(opts: QueueClientOptions): Promise<QueueClient> {
  return QueueClient.connect(opts);
}

/** Entry points of acknowledged queues: `queue.server(...)`, `queue.client(...)`. */
export const queue = { server, client } as const;
