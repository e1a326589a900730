/**
 * Receiving end of the `iops` row: takes every message, touches one byte per 64, counts the
 * bytes and answers `waitFor(totalBytes)`, `rss` (this process's peak RSS). Usage:
 * `iops-peer.js <plexus|plexus-grpc|plexus-mqtt|mqtt|grpc> <maxQueue> <maxQueueBytes> [broker url]`.
 * - plexus: a queue server (tcp://127.0.0.1:0) with those queue limits; messages are released
 *   after being touched.
 * - plexus-grpc: the same queue server on grpc://127.0.0.1:0.
 * - plexus-mqtt: the same queue server through the MQTT broker at the url (queue `iops`), or an
 *   aedes broker in this process without one.
 * - mqtt: a QoS 1 subscriber to the broker at the url, or to an aedes broker in this process
 *   without one.
 * - grpc: a @grpc/grpc-js server with one bidirectional stream method that answers every
 *   message with a 1-byte acknowledgement.
 * @module
 */
import { readFileSync } from "node:fs";
import { queue } from "../../src/index.js";
import { Counter, serve, touch } from "./runtime.js";

const [kind, maxQueueArg, maxQueueBytesArg, brokerArg] = process.argv.slice(2);

/** The broker of the mqtt kinds: the one named on the command line, or aedes in this process. */
async function brokerUrl(): Promise<string> {
  if (brokerArg !== undefined) return brokerArg;
  const { mqttBroker } = await import("../../test/helpers/mqtt-broker.js"); // only here: aedes would weigh on the other kinds' RSS
  const b = await mqttBroker();
  cleanups.push(() => void b.close());
  return b.url;
}

/**
 * This process's peak RSS in bytes: Linux's VmHWM (the high-water mark of this program's own
 * memory), not `maxRSS`, which also counts the parent's RSS at the fork that started this peer.
 */
function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m !== null) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
const counter = new Counter();
const cleanups: (() => void)[] = [];
const handler = (op: string, args: unknown): unknown => {
  if (op === "waitFor") return counter.waitFor(args as number);
  if (op === "rss") return peakRss();
  throw new Error(`unknown op ${op}`);
};
const onExit = (): void => {
  for (const c of cleanups) c();
};

if (kind === "plexus" || kind === "plexus-grpc" || kind === "plexus-mqtt") {
  const url = kind === "plexus" ? "tcp://127.0.0.1:0" : kind === "plexus-grpc" ? "grpc://127.0.0.1:0" : `${await brokerUrl()}/iops`;
  const server = await queue.server({ url, maxQueue: Number(maxQueueArg), maxQueueBytes: Number(maxQueueBytesArg) });
  cleanups.push(() => void server.close());
  void (async () => {
    for await (const m of server) {
      const v = m.value as Uint8Array;
      counter.checksum += touch(v);
      counter.add(v.byteLength);
    }
  })();
  serve(handler, { url: server.url }, onExit);
} else if (kind === "mqtt") {
  const mqtt = await import("mqtt");
  const url = await brokerUrl();
  const sub = await mqtt.connectAsync(url, { clientId: "iops-sink", clean: true });
  sub.on("message", (_topic: string, payload: Buffer) => {
    counter.checksum += touch(payload);
    counter.add(payload.length);
  });
  await sub.subscribeAsync("iops", { qos: 1 });
  cleanups.unshift(() => void sub.end(true));
  serve(handler, { url }, onExit);
} else if (kind === "grpc") {
  const grpc = await import("@grpc/grpc-js");
  const server = new grpc.Server({ "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 });
  const same = (b: Buffer): Buffer => b;
  const ACK = Buffer.from([1]);
  server.addService(
    {
      put: { path: "/plexus.Iops/Put", requestStream: true, responseStream: true, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same },
    },
    {
      put: (call: import("@grpc/grpc-js").ServerDuplexStream<Buffer, Buffer>) => {
        call.on("data", (b: Buffer) => {
          counter.checksum += touch(b);
          counter.add(b.length);
          call.write(ACK);
        });
        call.on("end", () => call.end());
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  serve(handler, { port }, onExit);
} else {
  throw new Error("usage: iops-peer.js <plexus|plexus-grpc|plexus-mqtt|mqtt|grpc> <maxQueue> <maxQueueBytes> [broker url]");
}
