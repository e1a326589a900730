/**
 * The "python" row: a Python process (the package in `python/`, run with the repository's
 * virtual environment) and this Node process. Round trip of a 64 B message and a one-way stream
 * of numpy arrays (64 B, 64 KiB, 1 MiB) Python -> Node, through Plexus's shared-memory rings,
 * side by side with pyzmq over `ipc://` to zeromq.js — the usual choice for IPC between the two
 * languages. The peer is `bench/procs/python-peer.py`.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Pair, Pull } from "zeromq";
import type { Client, Publisher, Subscriber } from "../../src/index.js";
import { peerCpuOf } from "../affinity.js";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { Counter, touch } from "../procs/runtime.js";
import { registerRow } from "../rows.js";
import { graph } from "./plexus-pubsub.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const PYTHON = `${root}.venv/bin/python`;
const SCRIPT = `${root}bench/procs/python-peer.py`;
const PLEXUS = "plexus pubsub shm";
const ZMQ_LAT = "pyzmq ipc PAIR";
const ZMQ_THR = "pyzmq ipc PUSH/PULL";

/** The Python peer: a child process answering one line per command line. */
class PythonPeer implements Resource {
  private readonly lines: string[] = [];
  private readonly waiting: ((line: string) => void)[] = [];

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }

  static async start(scope: CaseScope, mode: string, args: Record<string, unknown>): Promise<PythonPeer> {
    if (!existsSync(PYTHON)) throw new Error("no Python environment: run node scripts/ensure-python.mjs");
    // pinned like the other rows' peers (--pin same|cross); its children (Python <-> Python) inherit the CPU
    const cpu = peerCpuOf();
    const argv = [SCRIPT, mode, JSON.stringify(args)];
    const stdio: ["pipe", "pipe", "pipe"] = ["pipe", "pipe", "pipe"];
    const child = cpu === undefined ? spawn(PYTHON, argv, { stdio }) : spawn("taskset", ["-c", String(cpu), PYTHON, ...argv], { stdio });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (code, signal) => scope.fail(new Error(`python peer ${mode} exited (${signal ?? `code ${code}`}): ${stderr}`)));
    scope.defer(() => {
      child.removeAllListeners("exit");
      child.kill("SIGKILL");
    });
    const peer = new PythonPeer(child);
    const first = await peer.line(scope);
    if (first !== "ready") throw new Error(`python peer ${mode}: ${first} ${stderr}`);
    return peer;
  }

  /** The next line the peer writes. */
  line(scope: CaseScope): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      this.waiting.push(resolve);
      scope.signal.addEventListener("abort", () => reject(scope.signal.reason as Error), { once: true });
    });
  }

  /** Sends a command line (the peer answers "sent" when it is done). */
  command(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  close(): void {}
}

/** Node publishes 64 B on a ping topic, the Python peer publishes it back on a pong topic (shm both ways). */
class PlexusEcho implements Resource {
  private readonly payload = new Uint8Array(64).fill(0xa5);
  private constructor(
    private readonly pub: Publisher<Uint8Array>,
    private readonly sub: Subscriber<Uint8Array>,
  ) {}

  static async open(scope: CaseScope): Promise<PlexusEcho> {
    const { node, address } = await graph(scope);
    const pub = await node.publisher<Uint8Array>("bench/py/ping", { transport: "shm" });
    const sub = await node.subscriber<Uint8Array>("bench/py/pong", { transport: "shm", queue: 4 });
    await PythonPeer.start(scope, "plexus-echo", { address, topic: "bench/py" });
    await pub.waitForSubscribers(1, { signal: scope.signal });
    while (sub.publishers.length === 0) await new Promise((r) => setTimeout(r, 2));
    return new PlexusEcho(pub, sub);
  }

  async roundTrip(): Promise<void> {
    await this.pub.publish(this.payload);
    const s = await this.sub.receive({ timeout: 10_000 });
    if (s === null) throw new Error("the pong subscriber closed");
    s.release();
  }

  close(): void {}
}

/** A Node client calling the Python peer's echo service (shm rings both ways). */
class RpcEcho implements Resource {
  private readonly payload = new Uint8Array(64).fill(0xa5);
  private constructor(private readonly client: Client<Uint8Array, Uint8Array>) {}

  static async open(scope: CaseScope): Promise<RpcEcho> {
    const { node, address } = await graph(scope);
    await PythonPeer.start(scope, "plexus-rpc", { address, service: "bench/py/echo" });
    const client = await node.client<Uint8Array, Uint8Array>("bench/py/echo", { transport: "shm" });
    while (client.servers.length === 0) await new Promise((r) => setTimeout(r, 2));
    return new RpcEcho(client);
  }

  async roundTrip(): Promise<void> {
    await this.client.request(this.payload, { timeout: 10_000 });
  }

  close(): void {}
}

/** zeromq.js PAIR connected to the Python peer's pyzmq PAIR echo. */
class ZmqEcho implements Resource {
  private readonly payload = Buffer.alloc(64, 0xa5);
  private constructor(private readonly socket: Pair) {}

  static async open(scope: CaseScope): Promise<ZmqEcho> {
    const zmq = await import("zeromq");
    const endpoint = `ipc://${scope.tempPath(".zmq")}`;
    await PythonPeer.start(scope, "zmq-echo", { endpoint });
    const socket = new zmq.Pair({ linger: 0 });
    scope.defer(() => socket.close());
    socket.connect(endpoint);
    return new ZmqEcho(socket);
  }

  async roundTrip(): Promise<void> {
    await this.socket.send(this.payload);
    await this.socket.receive();
  }

  close(): void {}
}

/** The Python peer streams numpy arrays; this process receives, touches and counts them. */
class Stream implements Resource {
  private asked = 0;
  private constructor(
    private readonly peer: PythonPeer,
    private readonly counter: Counter,
    private readonly bytes: number,
    private readonly scope: CaseScope,
  ) {}

  static async plexus(scope: CaseScope, bytes: number): Promise<Stream> {
    const { node, address } = await graph(scope);
    const sub = await node.subscriber<{ data: Uint8Array }>("bench/py/stream", { transport: "shm" });
    const peer = await PythonPeer.start(scope, "plexus-stream", { address, topic: "bench/py/stream", bytes });
    const counter = new Counter();
    void (async () => {
      for await (const s of sub) {
        counter.checksum += touch(s.value.data);
        counter.add(1);
      }
    })().catch((err: unknown) => scope.fail(err instanceof Error ? err : new Error(String(err))));
    return new Stream(peer, counter, bytes, scope);
  }

  static async zmq(scope: CaseScope, bytes: number): Promise<Stream> {
    const zmq = await import("zeromq");
    const endpoint = `ipc://${scope.tempPath(".zmq")}`;
    const peer = await PythonPeer.start(scope, "zmq-stream", { endpoint, bytes });
    const socket: Pull = new zmq.Pull({ linger: 0 });
    scope.defer(() => socket.close());
    socket.connect(endpoint);
    const counter = new Counter();
    void (async () => {
      for await (const [m] of socket) {
        counter.checksum += touch(m as Buffer);
        counter.add(1);
      }
    })().catch(() => {}); // ends when the socket closes
    return new Stream(peer, counter, bytes, scope);
  }

  async stream(count: number): Promise<ThroughputSample> {
    this.asked += count;
    const t0 = now();
    this.peer.command(String(count));
    await this.counter.waitFor(this.asked);
    const sent = await this.peer.line(this.scope);
    if (sent !== "sent") throw new Error(`python peer: ${sent}`);
    return streamed(count, this.bytes, t0);
  }

  close(): void {}
}

registerRow({
  id: "python",
  title: "python: a Python process <-> this Node process",
  method:
    "The Python peer runs the package in python/ (pure Python, numpy) in the repository's virtual environment. " +
    "64 B rtt: this process sends 64 B, the peer sends it back as soon as it has it; plexus pubsub: a Uint8Array published on a ping topic, " +
    "republished by the Python subscriber on a pong topic (shm rings both ways, eventfd wake-ups); plexus rpc: a request to the Python server, " +
    "answered with itself (two shm rings); pyzmq: PAIR over ipc:// to zeromq.js PAIR. " +
    "Streams: the peer publishes (pushes) numpy uint8 arrays back to back; this process receives them, touches one byte per 64 and counts; " +
    "time = the command to the peer to the last message counted. plexus: {seq, data: array} (the array out of band, one copy into the ring, " +
    "a view on arrival); pyzmq: PUSH with copy=False from 64 KiB on, zeromq.js PULL. " +
    "Python <-> Python (not in --quick): the peer measures against a child process it starts (multiprocessing, spawn), through Plexus rings " +
    "(the same two forms) and through a multiprocessing Pipe (send_bytes / recv_bytes; the stream's receiver reads into one preallocated buffer).",
});

registerCase({
  row: "python",
  name: PLEXUS,
  variant: "64 B rtt",
  kind: "latency",
  ratioTo: ZMQ_LAT,
  quick: true,
  async run(ctx) {
    const link = await ctx.keep("link", (scope) => PlexusEcho.open(scope));
    return roundTrips(ctx, () => link.roundTrip());
  },
});

registerCase({
  row: "python",
  name: "plexus rpc shm",
  variant: "64 B rtt",
  kind: "latency",
  ratioTo: ZMQ_LAT,
  quick: true,
  async run(ctx) {
    const link = await ctx.keep("link", (scope) => RpcEcho.open(scope));
    return roundTrips(ctx, () => link.roundTrip());
  },
});

registerCase({
  row: "python",
  name: ZMQ_LAT,
  variant: "64 B rtt",
  kind: "latency",
  quick: true,
  async run(ctx) {
    const link = await ctx.keep("link", (scope) => ZmqEcho.open(scope));
    return roundTrips(ctx, () => link.roundTrip());
  },
});

for (const [label, bytes] of [["64 B", 64], ["64 KiB", 64 << 10], ["1 MiB", 1 << 20]] as const) {
  registerCase({
    row: "python",
    name: PLEXUS,
    variant: label,
    kind: "throughput",
    ratioTo: ZMQ_THR,
    messageBytes: bytes,
    quick: bytes === 1 << 20,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => Stream.plexus(scope, bytes));
      return link.stream(ctx.count);
    },
  });
  registerCase({
    row: "python",
    name: ZMQ_THR,
    variant: label,
    kind: "throughput",
    messageBytes: bytes,
    quick: bytes === 1 << 20,
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => Stream.zmq(scope, bytes));
      return link.stream(ctx.count);
    },
  });
}

/** A Python <-> Python case: the peer measures between itself and a child process it starts. */
class PythonPair implements Resource {
  private constructor(
    private readonly peer: PythonPeer,
    private readonly scope: CaseScope,
  ) {}

  static async open(scope: CaseScope, mode: string, args: Record<string, unknown> = {}): Promise<PythonPair> {
    const needsGraph = mode.startsWith("pypy-plexus");
    const address = needsGraph ? (await graph(scope)).address : undefined;
    return new PythonPair(await PythonPeer.start(scope, mode, { address, ...args }), scope);
  }

  /** Asks for `count` round trips or messages; the peer answers its measurement, then "sent". */
  async measure(count: number): Promise<unknown> {
    this.peer.command(String(count));
    const result = JSON.parse(await this.peer.line(this.scope)) as unknown;
    const done = await this.peer.line(this.scope);
    if (done !== "sent") throw new Error(`python peer: ${done}`);
    return result;
  }

  close(): void {}
}

const PIPE_LAT = "multiprocessing Pipe";
const PIPE_THR = "multiprocessing Pipe send_bytes";
for (const [name, mode, baseline] of [["plexus pubsub shm (Python <-> Python)", "pypy-plexus-echo", PIPE_LAT], [PIPE_LAT, "pypy-pipe-echo", undefined]] as const) {
  registerCase({
    row: "python",
    name,
    variant: "64 B rtt",
    kind: "latency",
    ratioTo: baseline,
    quick: false,
    async run(ctx) {
      const pair = await ctx.keep("pair", (scope) => PythonPair.open(scope, mode));
      return { kind: "latency", rttUs: (await pair.measure(ctx.count)) as number[] };
    },
  });
}
for (const [name, mode, baseline] of [["plexus pubsub shm (Python -> Python)", "pypy-plexus-stream", PIPE_THR], [PIPE_THR, "pypy-pipe-stream", undefined]] as const) {
  registerCase({
    row: "python",
    name,
    variant: "1 MiB",
    kind: "throughput",
    ratioTo: baseline,
    messageBytes: 1 << 20,
    quick: false,
    async run(ctx) {
      const pair = await ctx.keep("pair", (scope) => PythonPair.open(scope, mode, { bytes: 1 << 20 }));
      const seconds = (await pair.measure(ctx.count)) as number;
      return { kind: "throughput", messages: ctx.count, bytes: ctx.count * (1 << 20), seconds };
    },
  });
}
