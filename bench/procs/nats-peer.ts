/**
 * The peers of the `nats` row's pub/sub cases. Usage: `nats-peer.js <kind> <nats url> [...]`:
 * - `bridge <nats url> <graph address> <name> <capacity>`: a bridge (exports and imports `bench/>`,
 *   `block`), answers `rss` (its peak RSS);
 * - `plexus-sink <nats url> [<capacity>]`: a GraphServer of its own and a subscriber to `bench/stream` that
 *   touches and counts every message (`waitFor(bytes)`, `linked`), info: `{ address }`;
 * - `plexus-echo <nats url> [<capacity>]`: a GraphServer of its own, a subscriber to `bench/ping` that
 *   publishes each value back on `bench/pong` (an inline `forEach`, as a NATS callback runs); info: `{ address }`;
 * - with a `capacity`, the graph's bridge runs in the process itself (as `bridge` does, named `bench-b`):
 *   its ports and the process's own hand each other the value itself;
 * - `plain-sink <nats url>`: a NATS subscriber to `bench.stream` that touches and counts;
 * - `plain-echo <nats url>`: a NATS subscriber to `bench.ping` that publishes each message on `bench.pong`.
 * @module
 */
import { readFileSync } from "node:fs";
import { connect as natsConnect } from "@nats-io/transport-node";
import { GraphServer, connect } from "../../src/index.js";
import { startBenchBridge } from "./nats-bridge.js";
import { Counter, serve, touch } from "./runtime.js";

const [kind, natsUrl, ...rest] = process.argv.slice(2);

/** This process's peak RSS in bytes (VmHWM). */
function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m === null ? 0 : Number(m[1]) * 1024;
}

const counter = new Counter();
const cleanups: (() => void)[] = [];
const onExit = (): void => {
  for (const c of cleanups) c();
};

if (kind === "bridge") {
  const [address, name, capacity] = rest;
  const bridge = await startBenchBridge(natsUrl, address, name, Number(capacity));
  cleanups.push(() => void bridge.close());
  serve((op) => {
    if (op === "rss") return peakRss();
    if (op === "stats") return bridge.stats();
    throw new Error(`unknown op ${op}`);
  }, {}, onExit);
} else if (kind === "plexus-sink" || kind === "plexus-echo") {
  const server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  const node = await connect({ address, embedded: false });
  cleanups.push(() => void server.close());
  if (rest[0] !== undefined) {
    const bridge = await startBenchBridge(natsUrl, address, "bench-b", Number(rest[0]));
    cleanups.unshift(() => void bridge.close());
  }
  if (kind === "plexus-sink") {
    const sub = await node.subscriber<Uint8Array>("bench/stream", { queue: 256 });
    void sub.forEach((s) => {
      counter.checksum += touch(s.value);
      counter.add(s.value.byteLength);
    });
    serve(async (op, args) => {
      if (op === "waitFor") return counter.waitFor(args as number);
      if (op === "linked") {
        while (sub.publishers.length === 0) await new Promise((r) => setTimeout(r, 20));
        return sub.publishers.length;
      }
      throw new Error(`unknown op ${op}`);
    }, { address }, onExit);
  } else {
    const pong = await node.publisher<unknown>("bench/pong");
    const ping = await node.subscriber<unknown>("bench/ping", { queue: 64 });
    void ping.forEach((s) => pong.publish(s.value), { inline: true });
    serve(async (op) => {
      if (op === "linked") {
        while (ping.publishers.length === 0 || pong.subscribers === 0) await new Promise((r) => setTimeout(r, 20));
        return true;
      }
      throw new Error(`unknown op ${op}`);
    }, { address }, onExit);
  }
} else if (kind === "plain-sink" || kind === "plain-echo") {
  const nc = await natsConnect({ servers: natsUrl });
  cleanups.push(() => void nc.close());
  if (kind === "plain-sink") {
    nc.subscribe("bench.stream", {
      callback: (_err, m) => {
        counter.checksum += touch(m.data);
        counter.add(m.data.byteLength);
      },
    });
  } else {
    nc.subscribe("bench.ping", { callback: (_err, m) => nc.publish("bench.pong", m.data) });
  }
  await nc.flush();
  serve((op, args) => {
    if (op === "waitFor") return counter.waitFor(args as number);
    throw new Error(`unknown op ${op}`);
  }, {}, onExit);
} else {
  throw new Error("usage: nats-peer.js <bridge|plexus-sink|plexus-echo|plain-sink|plain-echo> <nats url> [...]");
}
