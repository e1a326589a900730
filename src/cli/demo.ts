/**
 * `plexus demo`: a small pipeline across processes and threads, written with `plexus/pipeline`
 * (demo/system.ts) — a producer process, a transform in a worker thread of this process, two
 * consumer processes (one over shared memory, one over TCP) — with live rates and latency
 * percentiles, and optionally the dashboard. The tcp consumer also calls a request/response
 * service (`demo/peak`) served by a worker of this process, and prints the round-trip
 * percentiles; the shm consumer puts summaries to an acknowledged queue served by this process,
 * and prints the acknowledged put rate and latency. The consumers report their figures through
 * that queue.
 * @module
 */
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { parseAddress, type GraphClient } from "../graph/client.js";
import { GraphServer } from "../graph/server.js";
import type { Snapshot } from "../graph/registry.js";
import type { GraphStats } from "../graph/stats.js";
import { queue, type QueueServer } from "../queue/index.js";
import { SystemError } from "../errors.js";
import { start, type Runner } from "../pipeline/index.js";
import { action, addressOf, connectGraph, human, intArg, numberArg, palette, portArg, type AddressOptions } from "./common.js";
import Demo, { NODE_NAMES, type Report } from "./demo/system.js";

interface DemoOptions extends AddressOptions {
  dashboard?: boolean | string;
  duration?: string;
  rate: string;
  size: string;
  requestEvery: string;
  putEvery: string;
}

/** The module that builds the demo's system, which its workers and processes import again. */
const SYSTEM = new URL("./demo/system.js", import.meta.url);

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
  let runner: Runner | undefined;
  let dashboard: { url: string; close(): Promise<void> } | undefined;
  let reports: QueueServer | undefined;
  let drained: Promise<void> | undefined;
  const latency = new Map<string, Report>();
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    if (dashPort !== undefined) {
      const { Dashboard } = await import("../dashboard/server.js");
      dashboard = await Dashboard.start({ source, graphAddress: address, host: "127.0.0.1", port: dashPort });
      console.log(`dashboard: ${c.cyan(dashboard.url)}`);
    }
    // An acknowledged queue served here: the consumers report their figures each second, the
    // shm consumer puts summaries (each put resolves on the ack).
    const q = (reports = await queue.server({ url: "tcp://127.0.0.1:0" }));
    drained = (async () => {
      try {
        for await (const msg of q) {
          const r = msg.value as Partial<Report>; // taking a message (and moving on) releases it
          if (r.report === "shm" || r.report === "tcp") latency.set(r.report, r as Report);
        }
      } catch {
        // the queue ended
      }
    })();
    runner = await start(new Demo(), {
      name: "demo",
      address,
      module: fileURLToPath(SYSTEM),
      names: NODE_NAMES,
      signals: false,
      settings: {
        "demo/PRODUCER": { rate, size },
        "demo/SHM": { queue: q.url, putEvery },
        "demo/TCP": { queue: q.url, every },
        "demo/PEAK": { serve: every > 0 },
      },
    });
    const pid = (path: string): number | undefined => runner?.places.find((p) => p.path === path)?.pid;
    const [producer, shm, tcp] = [pid("demo/PRODUCER"), pid("demo/SHM"), pid("demo/TCP")];
    console.log(`pipeline: producer (pid ${producer}) -> demo/raw -> transform (worker thread) -> demo/filtered -> consumers shm (pid ${shm}), tcp (pid ${tcp})`);
    if (every > 0) console.log(`request/response: consumer tcp (pid ${tcp}) -> demo/peak -> this process (pid ${process.pid}), one request per ${every} messages`);
    if (putEvery > 0) console.log(`queue: consumer shm (pid ${shm}) -> ${q.url} (queue server in this process), one acknowledged put per ${putEvery > 1 ? `${putEvery} messages` : "message"}`);
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const quit = (): void => resolve();
      process.once("SIGINT", quit);
      process.once("SIGTERM", quit);
      void runner?.done.then(quit, quit); // a unit failed, or the pipeline ended
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
            if (putEvery === 0) return "";
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
    await runner?.stop();
    await reports?.close();
    await drained;
    await dashboard?.close();
    await client?.close();
    await server?.close();
  }
  await runner?.done; // a unit's failure, after everything stopped
  console.log("demo stopped");
}
