/**
 * Acknowledged queues: a server and its clients put values to each other; every `put`
 * resolves on an acknowledgement from the receiving end (on the wire), or rejects with a typed
 * error. Backends: TCP, TLS, and MQTT through a broker. See docs/queue.md.
 * @module
 */
import { QueueClient } from "./client.js";
import type { QueueClientOptions, QueueServerOptions } from "./options.js";
import { QueueServer } from "./server.js";

export { QueueClient, type QueueClientEvents, type QueueClientState } from "./client.js";
export { QueueServer, type ServerPutOptions } from "./server.js";
export type { PeerId, QueueMessage } from "./inbox.js";
export type { DeliveryMode, QueueClientOptions, QueueOptions, QueueServerOptions } from "./options.js";

/**
 * Something that takes and puts queue messages: a {@link QueueServer} or a {@link QueueClient}
 * of the same queue (the same type arguments: `ToServer` values go from clients to the server,
 * `ToClient` values from the server to clients).
 */
export type QueueEndpoint<ToServer = unknown, ToClient = unknown> = QueueServer<ToServer, ToClient> | QueueClient<ToServer, ToClient>;

/**
 * Starts a queue server listening at `opts.url` (`tcp://host:port`, `tls://host:port`,
 * `mqtt://broker:port/name`; port 0 picks a free one, see `server.url`). It gets the
 * `ToServer` values clients put and puts `ToClient` values; the types are not checked at run
 * time (default `unknown`). Rejects with `AccessDeniedError` for plain TCP on a non-loopback
 * address without `allowInsecure`, `InvalidArgumentError` for bad options,
 * `MissingDependencyError` for an MQTT URL without the `mqtt` package, `SystemError` when the
 * address cannot be bound.
 */
function server<ToServer = unknown, ToClient = unknown>(opts: QueueServerOptions): Promise<QueueServer<ToServer, ToClient>> {
  return QueueServer.create<ToServer, ToClient>(opts);
}

/**
 * Connects a queue client to the server at `opts.url`. It puts `ToServer` values and gets
 * `ToClient` ones: give it the server's type arguments. Rejects with `PeerDeadError` if no
 * server answers, `AccessDeniedError` (TLS failure, plain TCP to a remote host), `ProtocolError`
 * (not a queue server of this version), `ResourceExhaustedError` (server full),
 * `MissingDependencyError` (an MQTT URL without the `mqtt` package), `TimeoutError`,
 * `AbortError`.
 */
function client<ToServer = unknown, ToClient = unknown>(opts: QueueClientOptions): Promise<QueueClient<ToServer, ToClient>> {
  return QueueClient.connect<ToServer, ToClient>(opts);
}

/** Entry points of acknowledged queues: `queue.server(...)`, `queue.client(...)`. */
export const queue = { server, client } as const;
