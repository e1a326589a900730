/**
 * `plexus demo`: a small pipeline across processes and threads — a producer process, a
 * transform in a worker thread of this process, two consumer processes (one over shared memory,
 * one over TCP) — with live rates and latency percentiles, and optionally the dashboard. The tcp
 * consumer also calls a request/response service (`demo/peak`) served by this process, and prints
 * the round-trip percentiles; the shm consumer puts summaries to an acknowledged queue served by
 * this process, and prints the acknowledged put rate and latency.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Command } from "commander";
import { parseAddress, type GraphClient } from "../graph/client.js";
import { GraphServer } from "../graph/server.js";
import type { Snapshot } from "../graph/registry.js";
import type { GraphStats } from "../graph/stats.js";
import { connect, type Node } from "../node/node.js";
import { queue, type QueueServer } from "../queue/index.js";
import { SystemError } from "../errors.js";
import { action, addressOf, CliError, connectGraph, human, intArg, numberArg, palette, portArg, type AddressOptions } from "./common.js";

interface DemoOptions extends AddressOptions {
  dashboard?: boolean | string;
  duration?: string;
  rate: string;
  size: string;
  requestEvery: string;
  putEvery: string;
}

interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  /** Round trips of the consumer's requests to `demo/peak` in the last second. */
  rpc?: { count: number; errors: number; p50: number; p99: number };
  /** Acknowledged puts of the consumer's summaries to the demo queue in the last second (put to ack). */
  queue?: { count: number; errors: number; p50: number; p99: number };
}

/** The `demo/peak` service: the loudest bin of a message's envelope. */
function peak({ seq, envelope }: { seq: number; envelope: Float32Array }): { seq: number; peak: number; bin: number } {
  let bin = 0;
  for (let i = 1; i < envelope.length; i++) if (envelope[i] > envelope[bin]) bin = i;
  return { seq, peak: envelope[bin] ?? 0, bin };
}

const script = (name: string): string => fileURLToPath(new URL(`./demo/${name}.js`, import.meta.url));

/** Waits for a line "ready" from a child (rejects if it exits first). */
function ready(child: ChildProcess, name: string, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (l) => (l === "ready" ? resolve() : onLine(l)));
    child.once("exit", (code) => reject(new CliError(`the demo ${name} exited (${code}) before it was ready: ${err.trim()}`)));
  });
}

/** The `demo` command. */
export function demoCommand(): Command {
  return new Command("demo")
    .description("run a demo pipeline: producer process -> transform worker thread -> two consumer processes (shm and tcp), with live rates and latencies; the tcp consumer also calls a request/response service of this process")
    .option("-a, --address <host:port>", "GraphServer to use; one is started here if none answers (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .option("--dashboard [port]", "serve the web dashboard (default: any free port)")
    .option("-d, --duration <s>", "stop after this many seconds (default: until Ctrl-C)")
    .option("-r, --rate <n>", "messages per second from the producer", "1000")
    .option("-s, --size <n>", "samples (float64) per message", "1024")
    .option("--request-every <n>", "the tcp consumer calls the demo/peak service (request/response) once per n messages; 0: never", "10")
    .option("--put-every <n>", "the shm consumer puts a summary to the demo's acknowledged queue once per n messages; 0: never", "1")
    .action(action("demo", async (opts: DemoOptions) => demo(opts)));
}

async function demo(opts: DemoOptions): Promise<void> {
  const c = palette();
  const rate = numberArg(opts.rate, "--rate", 1, 1e6);
  const size = intArg(opts.size, "--size", 1, 1 << 20);
  const duration = opts.duration === undefined ? Infinity : numberArg(opts.duration, "--duration", 0.001);
  const every = intArg(opts.requestEvery, "--request-every", 0, 1e6);
  const putEvery = intArg(opts.putEvery, "--put-every", 0, 1e6);
  const dashPort = opts.dashboard === undefined || opts.dashboard === false ? undefined : portArg(opts.dashboard, "--dashboard");
  const address = addressOf(opts);
  const { host, port } = parseAddress(address);
  let server: GraphServer | undefined;
  let client: GraphClient | undefined;
  try {
    server = await GraphServer.start({ host, port });
  } catch (err) {
    if (!(err instanceof SystemError && err.errnoName === "EADDRINUSE")) throw err;
    client = await connectGraph({ address }, "plexus demo");
  }
  const source = {
    snapshot: (): Promise<Snapshot> => (server ? Promise.resolve(server.snapshot()) : (client as GraphClient).request<Snapshot>("snapshot")),
    stats: (): Promise<GraphStats> => (server ? Promise.resolve(server.stats()) : (client as GraphClient).request<GraphStats>("stats")),
  };
  console.log(`GraphServer: ${c.bold(address)} ${server ? "(embedded in this process)" : "(already running)"}`);
  const children: ChildProcess[] = [];
  let worker: Worker | undefined;
  let dashboard: { url: string; close(): Promise<void> } | undefined;
  let serviceNode: Node | undefined;
  let summaries: QueueServer | undefined;
  let drained: Promise<void> | undefined;
  const latency = new Map<string, Latency>();
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    if (dashPort !== undefined) {
      const { Dashboard } = await import("../dashboard/server.js");
      dashboard = await Dashboard.start({ source, graphAddress: address, host: "127.0.0.1", port: dashPort });
      console.log(`dashboard: ${c.cyan(dashboard.url)}`);
    }
    if (every > 0) {
      // Served here, called from the tcp consumer's process: request/response across processes.
      serviceNode = await connect({ address, embedded: false, name: "demo service (peak)" });
      await serviceNode.server("demo/peak", peak);
    }
    if (putEvery > 0) {
      // An acknowledged queue served here: the shm consumer puts summaries, each put resolves on the ack.
      const q = (summaries = await queue.server({ url: "tcp://127.0.0.1:0" }));
      drained = (async () => {
        try {
          for await (const msg of q) void msg; // taking a message (and moving on) releases it
        } catch {
          // the queue ended
        }
      })();
    }
    const env = { ...process.env, PLEXUS_GRAPH: address };
    const waits: Promise<void>[] = [];
    for (const transport of ["shm", "tcp"] as const) {
      const child = spawn(process.execPath, [script("consumer"), JSON.stringify({ address, transport, every: transport === "tcp" ? every : 0, queue: transport === "shm" ? summaries?.url : undefined, putEvery })], { stdio: ["ignore", "pipe", "pipe", "ipc"], env });
      children.push(child);
      waits.push(
        ready(child, `${transport} consumer`, (line) => {
          try {
            latency.set(transport, JSON.parse(line) as Latency);
          } catch {
            // not ours
          }
        }),
      );
    }
    worker = new Worker(script("transform"), { workerData: { address } });
    const w = worker;
    waits.push(
      new Promise<void>((resolve, reject) => {
        w.once("message", () => resolve());
        w.once("error", reject);
        w.once("exit", (code) => reject(new CliError(`the transform worker exited (${code})`)));
      }),
    );
    await Promise.all(waits);
    const producer = spawn(process.execPath, [script("producer"), JSON.stringify({ address, rate, size })], { stdio: ["ignore", "pipe", "pipe", "ipc"], env });
    children.push(producer);
    await ready(producer, "producer", () => {});
    console.log(`pipeline: producer (pid ${producer.pid}) -> demo/raw -> transform (worker thread) -> demo/filtered -> consumers shm (pid ${children[0].pid}), tcp (pid ${children[1].pid})`);
    if (every > 0) console.log(`request/response: consumer tcp (pid ${children[1].pid}) -> demo/peak -> this process (pid ${process.pid}), one request per ${every} messages`);
    if (summaries) console.log(`queue: consumer shm (pid ${children[0].pid}) -> ${summaries.url} (queue server in this process), one acknowledged put per ${putEvery > 1 ? `${putEvery} messages` : "message"}`);
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const quit = (): void => resolve();
      process.once("SIGINT", quit);
      process.once("SIGTERM", quit);
      for (const ch of children) ch.once("exit", quit);
      ticker = setInterval(() => {
        void source.stats().then((stats) => {
          const t = (name: string) => stats.topics.find((x) => x.topic === name);
          const raw = t("demo/raw");
          const filtered = t("demo/filtered");
          const lat = (k: string): string => {
            const l = latency.get(k);
            return l && l.count > 0 ? `${c.green(k)} ${human(l.count)} msg/s p50 ${l.p50.toFixed(2)} ms p99 ${l.p99.toFixed(2)} ms` : `${k} -`;
          };
          const rpc = (): string => {
            if (every === 0) return "";
            const r = latency.get("tcp")?.rpc;
            const body = r && r.count > 0 ? `${c.green("demo/peak")} ${human(r.count)} req/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms` : "demo/peak -";
            return ` | ${body}${r && r.errors > 0 ? c.red(` ${r.errors} failed`) : ""}`;
          };
          const acked = (): string => {
            if (!summaries) return "";
            const q = latency.get("shm")?.queue;
            const body = q && q.count > 0 ? `${c.green("queue")} ${human(q.count)} acked puts/s p50 ${q.p50.toFixed(2)} ms p99 ${q.p99.toFixed(2)} ms` : "queue -";
            return ` | ${body}${q && q.errors > 0 ? c.red(` ${q.errors} failed`) : ""}`;
          };
          const secs = Math.round((Date.now() - started) / 1000);
          console.log(
            `[${secs}s] demo/raw ${human(raw?.rate ?? 0)} msg/s ${human(raw?.bandwidth ?? 0, "B")}/s | demo/filtered ${human(filtered?.rate ?? 0)} msg/s | ${lat("shm")} | ${lat("tcp")}${rpc()}${acked()}` +
              ((raw?.waits ?? 0) + (filtered?.waits ?? 0) > 0 ? c.yellow(` | backpressure waits ${(raw?.waits ?? 0) + (filtered?.waits ?? 0)}`) : ""),
          );
        });
        if (Date.now() - started >= duration * 1000) resolve();
      }, 1000);
    });
  } finally {
    clearInterval(ticker);
    for (const ch of children) if (ch.exitCode === null) ch.kill("SIGTERM");
    await Promise.all(
      children.map((ch) =>
        ch.exitCode === null && ch.signalCode === null
          ? new Promise<void>((resolve) => {
              const kill = setTimeout(() => ch.kill("SIGKILL"), 3000);
              ch.once("exit", () => (clearTimeout(kill), resolve()));
            })
          : undefined,
      ),
    );
    if (worker) {
      const w = worker;
      await Promise.race([new Promise((r) => w.once("message", r)).then(() => w.terminate()), (w.postMessage("stop"), new Promise((r) => setTimeout(r, 2000)))]);
      await w.terminate();
    }
    await serviceNode?.close();
    await summaries?.close();
    await drained;
    await dashboard?.close();
    await client?.close();
    await server?.close();
  }
  console.log("demo stopped");
}
