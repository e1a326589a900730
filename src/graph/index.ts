/**
 * The control plane: GraphServer, its client, and the registry types.
 * @module
 */
export { GraphServer, DEFAULT_GRAPH_PORT, type GraphServerOptions } from "./server.js";
export { GraphClient, defaultAddress, type GraphOptions, type NotifyHandler } from "./client.js";
export { type ClientInfo, type Edge, type Endpoints, type NodeInfo, type PublisherInfo, type ServerInfo, type Snapshot, type SubscriberInfo } from "./registry.js";
export { StatsBook, STATS_STALE_MS, type GraphStats, type LinkStats, type TopicStats } from "./stats.js";
