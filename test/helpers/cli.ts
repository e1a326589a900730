/** Running the real `plexus` command (dist/src/cli/main.js) in a child process. */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after } from "node:test";
import { GraphServer } from "../../src/graph/server.js";

/** Path of the CLI entry point. */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** What a finished command left. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `plexus ...args` to completion (killed after `timeout` ms). */
export function plexus(args: string[], env: NodeJS.ProcessEnv = {}, timeout = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: "1", ...env }, timeout }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) : 0;
      resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
    });
  });
}

const live = new Set<ChildProcess>();
after(() => {
  for (const p of live) p.kill("SIGKILL");
});

/** A long-running `plexus` command: its stdout lines as they come. */
export interface Running {
  readonly proc: ChildProcess;
  /** The next stdout line (rejects after `ms`). */
  line(ms?: number): Promise<string>;
  /** Everything on stderr so far. */
  stderr(): string;
  /** Exit code once it ended. */
  readonly exited: Promise<number | null>;
}

/** Starts `plexus ...args` without waiting for it. */
export function spawnPlexus(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  let err = "";
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const queue: string[] = [];
  const waiters: ((l: string | null) => void)[] = [];
  const rl = createInterface({ input: proc.stdout });
  rl.on("line", (l) => (waiters.length ? waiters.shift()!(l) : queue.push(l)));
  rl.on("close", () => waiters.splice(0).forEach((w) => w(null)));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => (live.delete(proc), resolve(code))));
  return {
    proc,
    exited,
    stderr: () => err,
    line(ms = 20_000) {
      if (queue.length) return Promise.resolve(queue.shift()!);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`plexus ${args.join(" ")}: no line within ${ms} ms; stderr: ${err}`)), ms);
        waiters.push((l) => {
          clearTimeout(t);
          if (l === null) reject(new Error(`plexus ${args.join(" ")} ended; stderr: ${err}`));
          else resolve(l);
        });
      });
    },
  };
}

/** A port nobody listens on now. */
export async function freePort(): Promise<number> {
  const probe = await GraphServer.start({ port: 0 });
  const port = probe.address.port;
  await probe.close();
  return port;
}

/** Polls `check` until it returns a value (or throws after `ms`). */
export async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
