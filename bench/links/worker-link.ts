/**
 * The main thread's end of a worker: an echo worker for postMessage round trips and a sink worker
 * with credit-based flow control for postMessage streams.
 * @module
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { CaseScope, Resource, ThroughputSample } from "../harness.js";
import { ReplySlot, now, streamed } from "../measure.js";

/** Starts `procs/<script>` as a worker, fails the case if it dies, terminates it at the end. */
async function startWorker(scope: CaseScope, script: string, workerData: unknown = null): Promise<Worker> {
  const worker = new Worker(new URL(`../procs/${script}`, import.meta.url), { workerData });
  let closing = false;
  scope.defer(async () => {
    closing = true;
    await worker.terminate();
  });
  worker.on("error", (err) => scope.fail(new Error(`worker ${script}: ${err.message}`, { cause: err })));
  worker.on("exit", (code) => {
    if (!closing) scope.fail(new Error(`worker ${script} exited with code ${code}`));
  });
  await once(worker, "online", { signal: scope.signal });
  return worker;
}

/** A worker that posts every message back. */
export class WorkerEcho implements Resource {
  private constructor(
    private readonly worker: Worker,
    private readonly slot: ReplySlot,
    private readonly payload: Uint8Array,
  ) {}

  /** Starts the echo worker; messages are Uint8Arrays of `size` bytes (structured-clone copies). */
  static async open(scope: CaseScope, size: number): Promise<WorkerEcho> {
    const worker = await startWorker(scope, "echo-worker.js");
    const slot = new ReplySlot(scope.signal);
    worker.on("message", () => slot.settle());
    return new WorkerEcho(worker, slot, new Uint8Array(size).fill(0xa5));
  }

  /** Posts one message and resolves when it is back. */
  roundTrip(): Promise<void> {
    const reply = this.slot.wait();
    this.worker.postMessage(this.payload);
    return reply;
  }

  /** Released by the case scope. */
  close(): void {}
}

/** A worker that reads every message; the main thread keeps at most `window` messages unacknowledged. */
export class WorkerSink implements Resource {
  private sent = 0;
  private acked = 0;
  private readonly payload: Uint8Array;

  private constructor(
    private readonly worker: Worker,
    private readonly slot: ReplySlot,
    private readonly size: number,
    private readonly window: number,
  ) {
    this.payload = new Uint8Array(size).fill(0xa5);
    worker.on("message", (m: { acked: number }) => {
      this.acked = m.acked;
      this.slot.settle();
    });
  }

  /** Starts the sink worker for messages of `size` bytes. */
  static async open(scope: CaseScope, size: number): Promise<WorkerSink> {
    const window = Math.max(4, Math.floor((16 * 1024 * 1024) / size));
    const worker = await startWorker(scope, "sink-worker.js", { ackEvery: Math.max(1, Math.floor(window / 4)) });
    return new WorkerSink(worker, new ReplySlot(scope.signal), size, window);
  }

  /**
   * Posts `count` messages and waits until the worker read them all.
   * @param transfer - false: post the same Uint8Array (cloned each time); true: a fresh ArrayBuffer, transferred
   */
  async stream(count: number, transfer: boolean): Promise<ThroughputSample> {
    const target = this.sent + count;
    const t0 = now();
    for (let i = 0; i < count; i++) {
      while (this.sent - this.acked >= this.window) await this.slot.wait();
      if (transfer) {
        const buffer = new ArrayBuffer(this.size);
        this.worker.postMessage(buffer, [buffer]);
      } else {
        this.worker.postMessage(this.payload);
      }
      this.sent += 1;
    }
    this.worker.postMessage({ flush: true });
    while (this.acked < target) await this.slot.wait();
    return streamed(count, this.size, t0);
  }

  /** Released by the case scope. */
  close(): void {}
}
