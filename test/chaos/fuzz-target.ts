// The fuzzer's target: one process (run with --expose-gc, an IPC channel to the driver) with
// every listening port of the project — a GraphServer, a tcp transport sender, an shm transport
// sender (its handshake socket), a request/response server over shm and TCP, and a queue server
// that echoes what it gets. It sends the driver its ports, and answers "mem" (after full
// collections: memory and descriptor counts) and "send" (the payload of an id on each transport sender,
// for the honest receivers).
import { readdirSync } from "node:fs";
import { writeHeapSnapshot } from "node:v8";
import { connect, GraphServer, queue, ShmSender, TcpSender, type ServerInfo } from "../../src/index.js";
import { payloadFor } from "./payload.js";

/** The listening endpoints of the target. */
export interface TargetPorts {
  graph: number;
  transportTcp: { host: string; port: number; kind: "tcp"; tls: boolean };
  transportShm: { kind: "shm"; name: string; socket: string };
  rpcTcp: number;
  rpcShmSocket: string;
  queue: number;
  service: string;
}

/** A memory sample after full collections. */
export interface MemSample {
  heapUsed: number;
  arrayBuffers: number;
  external: number;
  rss: number;
  fds: number;
}

export type TargetRequest = { op: "mem"; snapshot?: string } | { op: "send"; id: string; size: number };
export type TargetReply = { op: "ports"; ports: TargetPorts } | { op: "mem"; mem: MemSample } | { op: "sent" } | { op: "error"; message: string };

const reply = (r: TargetReply): void => void process.send!(r);
const graph = await GraphServer.start({ port: 0 });
const node = await connect({ address: `127.0.0.1:${graph.address.port}`, embedded: false });
const tcpSender = await TcpSender.create({ capacity: 1 << 18, handshakeTimeout: 1000 });
const shmSender = ShmSender.create({ capacity: 1 << 18 });
const service = "fuzz-echo";
await node.server(service, (v: unknown) => v, { timeout: 2000 });
const info = (await node.snapshot()).servers.find((s) => s.service === service) as ServerInfo;
const q = await queue.server({ url: "tcp://127.0.0.1:0", handshakeTimeout: 1000 });
void (async () => {
  for await (const m of q) q.put(m.value, { peers: [m.peer], timeout: 5000 }).catch(() => {});
})();

process.on("message", (req: TargetRequest) => {
  if (req.op === "mem") {
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let i = 0; i < 4; i++) gc?.();
    if (req.snapshot) writeHeapSnapshot(req.snapshot);
    const m = process.memoryUsage();
    reply({ op: "mem", mem: { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external, rss: m.rss, fds: readdirSync("/proc/self/fd").length } });
  } else if (req.op === "send") {
    const bytes = payloadFor(req.id, req.size);
    Promise.all([tcpSender.send(bytes, { timeout: 5000 }), shmSender.send(bytes, { timeout: 5000 })]).then(
      () => reply({ op: "sent" }),
      (e: Error) => reply({ op: "error", message: e.message }),
    );
  }
});
process.on("disconnect", () => process.exit(0));
reply({
  op: "ports",
  ports: {
    graph: graph.address.port,
    transportTcp: tcpSender.address as TargetPorts["transportTcp"],
    transportShm: shmSender.address as TargetPorts["transportShm"],
    rpcTcp: (info.endpoints.tcp as { port: number }).port,
    rpcShmSocket: (info.endpoints.shm as { socket: string }).socket,
    queue: q.port,
    service,
  },
});
