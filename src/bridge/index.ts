/**
 * `plexus/bridge`: one graph across hosts through a NATS cluster (docs/scale-out.md).
 * @module
 */
export { Bridge, BRIDGE_NODE, type BridgeEvents, type BridgeOptions, type BridgeStats } from "./bridge.js";
export type { NatsOptions, ServiceCounters, TopicCounters } from "./types.js";
export type { RemoteHost } from "./discovery.js";
export type { QueueBridgeDirection, QueueBridgeSpec, QueueBridgeStats } from "./queues.js";
export { NamePattern, NameFilter, subjectOf, nameOfSubject, type SubjectKind } from "./subjects.js";
