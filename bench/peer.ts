/**
 * A peer process: a script from `dist/bench/procs/` forked with an IPC channel, answering
 * requests (`call`) and killed for sure at the end. Every live child is tracked so that
 * {@link killAllPeers} (run on exit and on signals) leaves nothing behind.
 * @module
 */
import { fork, type ChildProcess, type StdioOptions } from "node:child_process";
import { fileURLToPath } from "node:url";
import { peerCpuOf } from "./affinity.js";
import type { CaseScope, Resource } from "./harness.js";
import type { ChildMessage, ParentMessage } from "./procs/protocol.js";

/** How long a peer may take to start (load Node, zeromq, the addon) and report ready. */
const START_TIMEOUT_MS = 15_000;
/** How long a peer may take to exit after being asked, before SIGKILL. */
const EXIT_TIMEOUT_MS = 2000;

const live = new Set<ChildProcess>();

/** SIGKILLs every peer still running (synchronous; safe in an `exit` handler). */
export function killAllPeers(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

process.on("exit", killAllPeers);

/** Options of {@link Peer.start}. */
export interface PeerOptions {
  /** Arguments after the script path. */
  args?: readonly string[];
  /** File descriptors to hand to the child; the n-th one becomes fd 4 + n in the child. */
  fds?: readonly number[];
}

interface PendingCall {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A forked helper process of the suite. */
export class Peer implements Resource {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private closing = false;
  private readonly exited: Promise<void>;
  /** What the child reported when it became ready (its address, ...). */
  info: Record<string, unknown> = {};

  private constructor(
    private readonly child: ChildProcess,
    private readonly script: string,
    private readonly scope: CaseScope,
  ) {
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        const error = new Error(`peer ${script} exited (${signal ?? `code ${code}`})`);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(error);
        }
        this.pending.clear();
        if (!this.closing) scope.fail(error);
        resolve();
      });
    });
    child.on("message", (m: ChildMessage) => this.onMessage(m));
    child.on("error", (err) => scope.fail(new Error(`peer ${script}: ${err.message}`, { cause: err })));
  }

  /**
   * Forks `dist/bench/procs/<script>` and waits until it reports ready. The child is killed when
   * the case ends (register the peer with `ctx.keep` or close it yourself).
   * @param scope - the case scope; the case fails if the peer dies before it is closed
   * @param script - file name in `procs/`, e.g. "net-peer.js"
   * @param options - arguments and inherited fds
   */
  static async start(scope: CaseScope, script: string, options: PeerOptions = {}): Promise<Peer> {
    const file = fileURLToPath(new URL(`./procs/${script}`, import.meta.url));
    // stdout of the child goes to our stderr so it can never corrupt --json output.
    const stdio: StdioOptions = ["ignore", 2, 2, "ipc", ...(options.fds ?? [])];
    // With --pin, run node under taskset (fork runs `execPath ...execArgv script ...args`).
    const cpu = peerCpuOf();
    const launcher = cpu === undefined ? {} : { execPath: "taskset", execArgv: ["-c", String(cpu), process.execPath] };
    const child = fork(file, [...(options.args ?? [])], { stdio, execArgv: [], serialization: "advanced", ...launcher });
    const peer = new Peer(child, script, scope);
    scope.defer(() => peer.close());
    await peer.waitReady();
    return peer;
  }

  private readyResolve?: () => void;

  private waitReady(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`peer ${this.script} not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const onAbort = (): void => reject(this.scope.signal.reason instanceof Error ? this.scope.signal.reason : new Error("aborted"));
      this.scope.signal.addEventListener("abort", onAbort, { once: true });
      this.readyResolve = () => {
        clearTimeout(timer);
        this.scope.signal.removeEventListener("abort", onAbort);
        resolve();
      };
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`peer ${this.script} exited before it was ready`));
      });
    });
  }

  private onMessage(m: ChildMessage): void {
    if (m.type === "ready") {
      this.info = m.info;
      this.readyResolve?.();
      return;
    }
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`peer ${this.script}: ${m.error}`));
  }

  /**
   * Sends request `op` and resolves with the child's answer. Rejects if the child answers with
   * an error, dies, the case is aborted, or no answer comes within `timeoutMs`.
   */
  call<T = unknown>(op: string, args: unknown = null, timeoutMs = 30_000): Promise<T> {
    if (this.closing) return Promise.reject(new Error(`peer ${this.script} is closed`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const signal = this.scope.signal;
      const onAbort = (): void => {
        const entry = this.pending.get(id);
        if (entry === undefined) return;
        this.pending.delete(id);
        clearTimeout(entry.timer);
        reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      };
      const timer = setTimeout(() => {
        this.pending.delete(id);
        signal.removeEventListener("abort", onAbort);
        reject(new Error(`peer ${this.script}: no answer to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v as T);
        },
        reject: (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
        timer,
      });
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      const message: ParentMessage = { id, op, args };
      this.child.send(message);
    });
  }

  /** Asks the child to exit, SIGKILLs it if it has not within a bounded time; idempotent. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      if (this.child.exitCode === null && this.child.signalCode === null && this.child.connected) {
        try {
          const message: ParentMessage = { id: 0, op: "exit", args: null };
          this.child.send(message);
        } catch {
          // channel already closed
        }
      }
    }
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), EXIT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!gone) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}
