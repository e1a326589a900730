/**
 * The GraphServer connection ports use: the node's current one (it changes when the node
 * reconnects to a new GraphServer).
 * (Internal: not part of the public API.)
 * @module
 */
import type { GraphClient } from "../graph/client.js";

/** Gives the current connection. */
export interface GraphRef {
  /** The node's current GraphServer connection. */
  readonly client: GraphClient;
}
