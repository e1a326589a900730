/**
 * The participant: `connect()` joins a graph and gives a {@link Node}, which makes and owns the
 * ports of every pattern (publishers, subscribers, servers, clients) and reports their counters.
 * @module
 */
export { Node, connect, type ConnectOptions } from "./node.js";
export {
  STATS_INTERVAL,
  type ClientCounters,
  type LinkTransport,
  type PortReport,
  type PublisherCounters,
  type RpcPortReport,
  type ServerCounters,
  type StatsReport,
  type SubscriberCounters,
} from "../graph/report.js";
