/**
 * What every part of a bridge (topics, services, queues, discovery) is given by the `Bridge`
 * that runs it: the NATS connection, the subject prefix, this graph's name, and where failures
 * are reported. (Internal: not part of the public API.)
 * @module
 */
import type { PlexusError } from "../errors.js";
import type { NatsConnection, NatsModule } from "./nats.js";

/** The bridge's shared state, as its parts see it. */
export interface BridgeContext {
  /** The NATS client package. */
  readonly nats: NatsModule;
  /** The connection to the NATS cluster (it reconnects by itself). */
  readonly nc: NatsConnection;
  /** The subject prefix (default `plexus`): every subject of the bridge starts with it. */
  readonly prefix: string;
  /**
   * This graph's name on NATS (default: the host name and the GraphServer's port), carried by
   * every message the bridge sends so that no message comes back to the graph it left, and shown
   * as the host of remote ports.
   */
  readonly origin: string;
  /**
   * Reports a failure that is not any caller's (garbage on a subject, a gap, a slow consumer, a
   * lost connection): counted in the bridge's stats and emitted as its `error` event; the bridge
   * goes on.
   */
  report(err: PlexusError): void;
  /** True while NATS is connected (or the bridge closes): {@link connected} would resolve at once. */
  online(): boolean;
  /** Resolves at once while NATS is connected, else when it is again (or the bridge closes). */
  connected(): Promise<void>;
}
