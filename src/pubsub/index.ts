/**
 * Publish/subscribe over a topic graph.
 * @module
 */
export { Node, connect, type ConnectOptions } from "./node.js";
export { Publisher, type PublisherOptions } from "./publisher.js";
export { Subscriber, type SubscriberOptions } from "./subscriber.js";
export type { Sample } from "./sample.js";
export { STATS_INTERVAL, type LinkTransport, type PortReport, type PublisherCounters, type StatsReport, type SubscriberCounters } from "./stats.js";
