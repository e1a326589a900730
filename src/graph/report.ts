/**
 * Counters of publishers, subscribers, request/response servers and clients, and the report a node sends to the GraphServer with
 * them (`stats.report`, docs/protocol.md). Plain numbers bumped on the hot path; read every
 * {@link STATS_INTERVAL} ms by the node.
 * @module
 */

/** How often (ms) a node reports its counters, when they changed. */
export const STATS_INTERVAL = 500;

/** Counters of one publisher since it was created. */
export interface PublisherCounters {
  /** Messages published. */
  messages: number;
  /** Bytes encoded for other threads/processes (header included; same-thread delivery encodes nothing). */
  bytes: number;
  /** Publishes (or loans) that had to wait for room: a full ring or a full blocking subscriber. */
  waits: number;
}

/** Counters of one subscriber since it was created. */
export interface SubscriberCounters {
  /** Messages received (queued for the application). */
  messages: number;
  /** Bytes received over shared memory or TCP. */
  bytes: number;
  /** Messages dropped for this subscriber (policy `drop-oldest`, in its queue or its ring). */
  drops: number;
}

/** Which transport a subscriber uses to reach one publisher. */
export type LinkTransport = "inproc" | "shm" | "tcp";

/** One port's entry in a stats report. */
export interface PortReport {
  /** Port id. */
  id: string;
  /** Messages so far. */
  messages: number;
  /** Bytes so far. */
  bytes: number;
  /** Backpressure waits so far (publishers). */
  waits?: number;
  /** Drops so far (subscribers). */
  drops?: number;
  /** Links of a subscriber: publisher id and transport. */
  links?: { publisher: string; transport: LinkTransport }[];
}

/** Counters of one request/response server since it was created. */
export interface ServerCounters {
  /** Requests handled (answered or failed). */
  requests: number;
  /** Requests that failed (handler threw, undecodable request, answer that could not be sent). */
  errors: number;
  /** Request bytes received over shared memory or TCP. */
  bytes: number;
}

/** Counters of one request/response client since it was created. */
export interface ClientCounters {
  /** Requests ended (answered or failed). */
  requests: number;
  /** Requests that failed (remote error, timeout, abort, dead server, no server). */
  errors: number;
  /** Request bytes sent over shared memory or TCP. */
  bytes: number;
  /** Sum of the round-trip times of the {@link timed} requests (ms). */
  latency: number;
  /**
   * Answered requests whose round trip was timed: one every millisecond at most (reading the
   * clock at each answer would cost a busy client several percent of a microsecond round
   * trip), every one of a client that sends less often. `latency / timed` is the mean.
   */
  timed: number;
}

/** One request/response port's entry in a stats report. */
export interface RpcPortReport {
  /** Port id. */
  id: string;
  /** Requests so far. */
  requests: number;
  /** Failed requests so far. */
  errors: number;
  /** Request bytes so far. */
  bytes: number;
  /** Requests in flight now. */
  inFlight: number;
  /** Sum of round-trip times of the timed requests so far (clients, ms). */
  latency?: number;
  /** Answered requests timed so far (clients; see {@link ClientCounters.timed}). */
  timed?: number;
  /** Links of a client: server id and transport. */
  links?: { server: string; transport: LinkTransport }[];
}

/** The body of a `stats.report` request: cumulative counters of every port of one node. */
export interface StatsReport {
  /** Publishers of the node. */
  publishers: PortReport[];
  /** Subscribers of the node. */
  subscribers: PortReport[];
  /** Request/response servers of the node. */
  servers?: RpcPortReport[];
  /** Request/response clients of the node. */
  clients?: RpcPortReport[];
}
