/**
 * The bridge every pub/sub case of the `nats` row runs (in a bridge process, or in the suite's
 * and the sink's own processes): exports and imports `bench/>`, policy `block`.
 * @module
 */
import { Bridge } from "../../src/bridge/index.js";

/** Starts the bridge of the graph at `address` (`host:port`) to the NATS server at `nats`, named `name`. */
export function startBenchBridge(nats: string, address: string, name: string, capacity: number): Promise<Bridge> {
  return Bridge.start({
    nats,
    name,
    graph: { address, embedded: false },
    export: ["bench/>"],
    import: ["bench/>"],
    backpressure: "block",
    capacity,
    announceInterval: 200,
    scanInterval: 50,
  });
}
