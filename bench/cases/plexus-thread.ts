/**
 * Plexus `thread` transport between the main thread and a worker: the thread row's latency
 * (64 B ping-pong through two rings) and throughput (the worker touches every message).
 * @module
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connectThread, ThreadSender, type Receiver, type ThreadEndpoint } from "../../src/index.js";
import { registerCase, type CaseScope, type Resource, type ThroughputSample } from "../harness.js";
import { now, roundTrips, streamed } from "../measure.js";
import { THREAD_LAT_SIZES, THREAD_THR_SIZES } from "../sizes.js";
import { POSTMESSAGE, POSTMESSAGE_COPY } from "./thread-postmessage.js";

async function startWorker(scope: CaseScope, mode: "echo" | "sink", tx: ThreadSender, spinMicros = 0): Promise<Worker> {
  const { endpoint, transfer } = tx.endpoint();
  const worker = new Worker(new URL("../procs/plexus-thread-worker.js", import.meta.url), {
    workerData: { mode, endpoint, spinMicros },
    transferList: transfer,
  });
  let closing = false;
  scope.defer(async () => {
    closing = true;
    await worker.terminate();
  });
  worker.on("error", (err) => scope.fail(new Error(`plexus thread worker: ${err.message}`, { cause: err })));
  worker.on("exit", (code) => {
    if (!closing) scope.fail(new Error(`plexus thread worker exited with code ${code}`));
  });
  return worker;
}

class ThreadEcho implements Resource {
  private constructor(
    private readonly tx: ThreadSender,
    private readonly rx: Receiver,
    private readonly payload: Uint8Array,
  ) {}

  static async open(scope: CaseScope, size: number, spinMicros: number): Promise<ThreadEcho> {
    const tx = ThreadSender.create({ capacity: 1 << 20 });
    scope.defer(() => tx.close());
    const worker = await startWorker(scope, "echo", tx, spinMicros);
    const [endpoint] = (await once(worker, "message", { signal: scope.signal })) as [ThreadEndpoint];
    const rx = connectThread(endpoint, { spinMicros });
    scope.defer(() => rx.close());
    return new ThreadEcho(tx, rx, new Uint8Array(size).fill(0xa5));
  }

  async roundTrip(): Promise<void> {
    if (!this.tx.trySend(this.payload)) await this.tx.send(this.payload);
    const f = await this.rx.receive({ timeout: 10_000 });
    if (f === null) throw new Error("echo worker closed its ring");
    f.release();
  }

  close(): void {}
}

class ThreadStream implements Resource {
  private sent = 0;
  private constructor(
    private readonly tx: ThreadSender,
    private readonly worker: Worker,
    private readonly payload: Uint8Array,
    private readonly signal: AbortSignal,
  ) {}

  static async open(scope: CaseScope, size: number): Promise<ThreadStream> {
    const tx = ThreadSender.create({ capacity: Math.max(8 << 20, 4 * (size + 64)), timeout: 30_000 });
    scope.defer(() => tx.close());
    const worker = await startWorker(scope, "sink", tx);
    while (tx.receivers === 0) await new Promise((r) => setTimeout(r, 1));
    return new ThreadStream(tx, worker, new Uint8Array(size).fill(0xa5), scope.signal);
  }

  async stream(count: number): Promise<ThroughputSample> {
    this.sent += count;
    const t0 = now();
    const tx = this.tx;
    const payload = this.payload;
    for (let i = 0; i < count; i++) if (!tx.trySend(payload)) await tx.send(payload);
    const done = once(this.worker, "message", { signal: this.signal });
    this.worker.postMessage({ until: this.sent });
    await done;
    return streamed(count, payload.length, t0);
  }

  close(): void {}
}

for (const size of THREAD_LAT_SIZES) {
  for (const spin of [0, 2000]) {
    registerCase({
      row: "thread",
      name: spin ? "plexus thread spin" : "plexus thread",
      variant: size.label,
      kind: "latency",
      ratioTo: POSTMESSAGE,
      quick: size.quick,
      method: spin
        ? "ping on one ring, pong on another; both ends busy-poll up to 2000 µs before sleeping"
        : "ping on one ring, pong on another; Atomics.waitAsync wake-ups",
      async run(ctx) {
        const link = await ctx.keep("link", (scope) => ThreadEcho.open(scope, size.bytes, spin));
        return roundTrips(ctx, () => link.roundTrip());
      },
    });
  }
}

for (const size of THREAD_THR_SIZES) {
  registerCase({
    row: "thread",
    name: "plexus thread",
    variant: size.label,
    kind: "throughput",
    ratioTo: POSTMESSAGE_COPY,
    messageBytes: size.bytes,
    quick: size.quick,
    method: "trySend/send into a ring; the worker receives views, touches 1 byte per 64, releases",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => ThreadStream.open(scope, size.bytes));
      return link.stream(ctx.count);
    },
  });
}
