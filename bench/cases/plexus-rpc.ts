/**
 * The rr row: request/response round trips between two processes, 1 in flight (one request at
 * a time: latency) and 16 in flight (concurrent requests: round trips/s): Plexus `node.client().request()` over shm and tcp, and
 * `requestInPlace()` over shm, against zeromq.js DEALER/ROUTER over ipc, and, for 1 in flight,
 * the raw shm ring round trip of the lat row (same link, same peer) as the floor.
 * @module
 */
import type { Dealer } from "zeromq";
import { connect, GraphServer, type Client, type InPlaceResponse } from "../../src/index.js";
import { registerCase, type CaseContext, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { PlexusEcho } from "../links/plexus-link.js";
import { now, roundTrips } from "../measure.js";
import { Peer } from "../peer.js";
import { registerRow } from "../rows.js";
import { KITS } from "../transport-kit.js";

/** Request (and response) payload. */
const BYTES = 64;
/** Requests in flight of the pooled variant. */
const POOL = 16;
const SINGLE = "1 in flight";
const POOLED = `${POOL} in flight`;
const RAW_RING = "plexus shm ring (lat)";
const ZMQ = "zeromq ipc DEALER/ROUTER";
const IN_PLACE = "plexus rpc shm in place";

registerRow({
  id: "rr",
  title: `rr: request/response round trips between two processes, ${BYTES} B, 1 and ${POOL} in flight`,
  method:
    `Plexus: node.client(service).request(Uint8Array(${BYTES})) to a server process answering with the request (codec frame, one request ring and one response ring per pair; ` +
    `tcp: one socket). ${POOL} in flight = ${POOL} loops each awaiting its own request, throughput = round trips per second. ` +
    `zeromq.js: a DEALER sends to a ROUTER peer that sends each message back; ${POOL} in flight = ${POOL} sends outstanding, one more per reply. ` +
    `In place: an in-place server (inPlace: true) answering with the request's own bytes; the client sends with requestInPlace(Uint8Array(${BYTES})) (one copy into the ring) and releases the answer (a view of its own ring, no copy). ` +
    `1 in flight = latency per round trip; '${RAW_RING}' is the lat row's raw ring ping-pong (64 B, default settings), the floor of the Plexus shm cases.`,
});

/** A Plexus client linked to a server process. */
class RpcLink implements Resource {
  private constructor(
    private readonly client: Client<Uint8Array, Uint8Array>,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, transport: "shm" | "tcp", inPlace = false): Promise<RpcLink> {
    const graph = await GraphServer.start({ port: 0 });
    scope.defer(() => graph.close());
    const address = `127.0.0.1:${graph.address.port}`;
    const node = await connect({ address, embedded: false });
    scope.defer(() => node.close());
    await Peer.start(scope, "plexus-rpc-peer.js", { args: [address, "bench/rr", transport, ...(inPlace ? ["inplace"] : [])] });
    const client = await node.client<Uint8Array, Uint8Array>("bench/rr", { transport, maxInFlight: POOL, timeout: 10_000 });
    while (client.servers.length === 0) {
      if (scope.signal.aborted) throw scope.signal.reason;
      await new Promise((r) => setTimeout(r, 2));
    }
    return new RpcLink(client, new Uint8Array(BYTES).fill(0xa5));
  }

  roundTrip(): Promise<void> {
    return this.client.request(this.payload).then(check);
  }

  roundTripInPlace(): Promise<void> {
    return this.client.requestInPlace(this.payload).then(checkAndRelease);
  }

  async pooled(count: number, inPlace = false): Promise<ThroughputSample> {
    let left = count;
    const t0 = now();
    const loop = async (): Promise<void> => {
      while (left > 0) {
        left--;
        if (inPlace) checkAndRelease(await this.client.requestInPlace(this.payload));
        else check(await this.client.request(this.payload));
      }
    };
    await Promise.all(Array.from({ length: POOL }, loop));
    return { kind: "throughput", messages: count, bytes: count * BYTES, seconds: (now() - t0) / 1000 };
  }

  close(): void {}
}

function check(answer: Uint8Array): void {
  if (answer.length !== BYTES) throw new Error(`answer of ${answer.length} bytes`);
}

function checkAndRelease(answer: InPlaceResponse): void {
  check(answer.bytes);
  answer.release();
}

/** A zeromq.js DEALER connected to a ROUTER peer that echoes. */
class ZmqRr implements Resource {
  private constructor(
    private readonly socket: Dealer,
    private readonly payload: Buffer,
  ) {}

  static async open(scope: CaseScope): Promise<ZmqRr> {
    const zmq = await import("zeromq");
    const endpoint = `ipc://${scope.tempPath(".zmq")}`;
    await Peer.start(scope, "zmq-router-peer.js", { args: [endpoint] });
    const socket = new zmq.Dealer({ linger: 0 });
    scope.defer(() => socket.close());
    socket.connect(endpoint);
    return new ZmqRr(socket, Buffer.alloc(BYTES, 0xa5));
  }

  async roundTrip(): Promise<void> {
    await this.socket.send(this.payload);
    const [m] = await this.socket.receive();
    if (m.length !== BYTES) throw new Error("short answer");
  }

  async pooled(count: number): Promise<ThroughputSample> {
    const t0 = now();
    let sent = 0;
    for (; sent < Math.min(POOL, count); sent++) await this.socket.send(this.payload);
    for (let got = 0; got < count; got++) {
      const [m] = await this.socket.receive();
      if (m.length !== BYTES) throw new Error("short answer");
      if (sent < count) {
        await this.socket.send(this.payload);
        sent++;
      }
    }
    return { kind: "throughput", messages: count, bytes: count * BYTES, seconds: (now() - t0) / 1000 };
  }

  close(): void {}
}

const zmqLink = (ctx: CaseContext): Promise<ZmqRr> => ctx.keep("link", (scope) => ZmqRr.open(scope));

registerCase({
  row: "rr",
  name: ZMQ,
  variant: POOLED,
  kind: "throughput",
  messageBytes: BYTES,
  method: `DEALER -> ROUTER -> DEALER over ipc://, ${POOL} outstanding`,
  async run(ctx) {
    return (await zmqLink(ctx)).pooled(ctx.count);
  },
});

for (const transport of ["shm", "tcp"] as const) {
  registerCase({
    row: "rr",
    name: `plexus rpc ${transport}`,
    variant: POOLED,
    kind: "throughput",
    ratioTo: ZMQ,
    messageBytes: BYTES,
    quick: transport === "shm",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => RpcLink.open(scope, transport));
      return link.pooled(ctx.count);
    },
  });
}

registerCase({
  row: "rr",
  name: RAW_RING,
  variant: SINGLE,
  kind: "latency",
  method: "the lat row's 'plexus shm' 64 B ping-pong: send on one ring, the peer echoes on another",
  async run(ctx) {
    const link = await ctx.keep("link", (scope) => PlexusEcho.open(scope, KITS.shm, BYTES, { spinMicros: 0, adaptiveSpin: true }));
    return roundTrips(ctx, () => link.roundTrip());
  },
});

registerCase({
  row: "rr",
  name: ZMQ,
  variant: SINGLE,
  kind: "latency",
  async run(ctx) {
    const link = await zmqLink(ctx);
    return roundTrips(ctx, () => link.roundTrip());
  },
});

for (const transport of ["shm", "tcp"] as const) {
  registerCase({
    row: "rr",
    name: `plexus rpc ${transport}`,
    variant: SINGLE,
    kind: "latency",
    ratioTo: transport === "shm" ? [RAW_RING, ZMQ] : ZMQ,
    quick: transport === "shm",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => RpcLink.open(scope, transport));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}

for (const variant of [SINGLE, POOLED]) {
  registerCase({
    row: "rr",
    name: IN_PLACE,
    variant,
    kind: variant === SINGLE ? "latency" : "throughput",
    ratioTo: variant === SINGLE ? [RAW_RING, ZMQ] : ZMQ,
    messageBytes: variant === SINGLE ? undefined : BYTES,
    quick: true,
    async run(ctx) {
      const link = await ctx.keep("in-place link", (scope) => RpcLink.open(scope, "shm", true));
      return variant === SINGLE ? roundTrips(ctx, () => link.roundTripInPlace()) : link.pooled(ctx.count, true);
    },
  });
}
