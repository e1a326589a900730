/**
 * The child side of a peer: answers requests from the suite over the IPC channel, exits when
 * asked or as soon as the parent goes away (the channel disconnects), so no peer outlives the
 * suite.
 * @module
 */
import type { ChildMessage, ParentMessage } from "./protocol.js";

/** Handles one request; the return value (or promise) is the answer. */
export type Handler = (op: string, args: unknown) => unknown;

function send(message: ChildMessage): void {
  if (process.send === undefined || !process.connected) return;
  process.send(message);
}

/** CPU time (user + system) this process used so far, in seconds. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** A starting point for {@link cpuPercentSince}: the process's CPU time and the monotonic clock. */
export interface CpuMark {
  /** `process.cpuUsage()` at the mark (every thread of the process), µs. */
  readonly cpu: NodeJS.CpuUsage;
  /** `process.hrtime.bigint()` at the mark, ns. */
  readonly wallNs: bigint;
}

/** Marks the present for {@link cpuPercentSince}. */
export function cpuMark(): CpuMark {
  return { cpu: process.cpuUsage(), wallNs: process.hrtime.bigint() };
}

/**
 * CPU use of this process since `mark`, in % of one core: user + system time of all its threads
 * (a worker thread included) over the wall time elapsed; 200 = two cores kept busy.
 */
export function cpuPercentSince(mark: CpuMark): number {
  const used = process.cpuUsage(mark.cpu);
  const wallUs = Number(process.hrtime.bigint() - mark.wallNs) / 1000;
  return wallUs > 0 ? (100 * (used.user + used.system)) / wallUs : 0;
}

/**
 * Starts answering requests with `handler` (and `cpu`: {@link cpuSeconds}, for every peer)
 * and reports ready with `info`.
 * @param handler - answers requests
 * @param info - sent with the ready message
 * @param onExit - cleanup before exiting (close sockets, remove files); must be synchronous
 */
export function serve(handler: Handler, info: Record<string, unknown>, onExit: () => void = () => {}): void {
  if (process.send === undefined) throw new Error("a peer must be started with an IPC channel (fork)");
  const exit = (): void => {
    try {
      onExit();
    } finally {
      process.exit(0);
    }
  };
  process.on("disconnect", exit);
  process.on("message", (raw: ParentMessage) => {
    if (raw.op === "exit") {
      exit();
      return;
    }
    Promise.resolve()
      .then(() => (raw.op === "cpu" ? cpuSeconds() : handler(raw.op, raw.args)))
      .then(
        (result) => send({ type: "reply", id: raw.id, ok: true, result: result ?? null }),
        (err: unknown) => send({ type: "reply", id: raw.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
  send({ type: "ready", info });
}

/**
 * A running total that requests can wait on: `waitFor(n)` resolves once the total reaches n.
 * Readers count cumulatively, so a request may arrive before or after the data it waits for.
 */
export class Counter {
  /** The running total. */
  total = 0;
  /** A checksum of the touched bytes (reported so the reads cannot be optimised away). */
  checksum = 0;
  private waiters: { target: number; resolve: () => void }[] = [];

  /** Adds `n` and wakes the waiters whose target is reached. */
  add(n: number): void {
    this.total += n;
    if (this.waiters.length === 0) return;
    const still: { target: number; resolve: () => void }[] = [];
    for (const w of this.waiters) {
      if (this.total >= w.target) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Resolves with `{ total, checksum }` once the total is at least `target`. */
  waitFor(target: number): Promise<{ total: number; checksum: number }> {
    return new Promise((resolve) => {
      const done = (): void => resolve({ total: this.total, checksum: this.checksum });
      if (this.total >= target) done();
      else this.waiters.push({ target, resolve: done });
    });
  }
}

/** Reads one byte per 64 of `bytes` and returns their sum (the reader "touches" the message). */
export function touch(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 64) sum += bytes[i] as number;
  return sum;
}
