/** Spawning fixture processes and reading their stdout line by line. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after } from "node:test";

/** A running fixture process. */
export interface Child {
  readonly proc: ChildProcess;
  /** The next stdout line (rejects after `timeoutMs` or when the process ends first). */
  line(timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal name) once the process ended. */
  readonly exited: Promise<number | string>;
  /** Everything the process wrote on stderr so far. */
  stderr(): string;
  /** Lines written and not yet taken by {@link line}. */
  buffered(): number;
}

const live = new Set<ChildProcess>();
after(() => {
  for (const p of live) p.kill("SIGKILL");
});

/**
 * Runs `dist/test/fixtures/<name>.js` with `args` as JSON in argv[2]; `launch` replaces the
 * command line (e.g. to run the fixture inside a namespace).
 */
export function fixture(name: string, args: unknown, launch?: { command: string; args: string[] }): Child {
  const script = fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
  const [command, argv] = launch ? [launch.command, launch.args] : [process.execPath, [script, JSON.stringify(args)]];
  return child(name, command, argv);
}

/**
 * Runs `command` with `argv` (a program of another language, e.g. the Python peer) as a
 * {@link Child}; `env` is added to this process's environment; `stdin: "pipe"` keeps the child's
 * stdin open (closing it is how a test tells some peers to finish).
 */
export function child(name: string, command: string, argv: string[], opts: { env?: Record<string, string>; stdin?: "pipe" | "ignore" } = {}): Child {
  const proc = spawn(command, argv, { stdio: [opts.stdin ?? "ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const queue: string[] = [];
  const waiters: ((l: string | null) => void)[] = [];
  let ended = false;
  const rl = createInterface({ input: proc.stdout! });
  rl.on("line", (l) => (waiters.length ? waiters.shift()!(l) : queue.push(l)));
  rl.on("close", () => {
    ended = true;
    for (const w of waiters.splice(0)) w(null);
  });
  const exited = once(proc, "exit").then(([code, signal]) => (code ?? signal) as number | string);
  // A test that fails must not leave its children running (they would keep this file alive).
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return {
    proc,
    exited,
    stderr: () => err,
    buffered: () => queue.length,
    line(timeoutMs = 20000) {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (ended) return Promise.reject(new Error(`${name} ended without output; stderr: ${err}`));
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${name}: no line within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
        waiters.push((l) => {
          clearTimeout(t);
          if (l === null) reject(new Error(`${name} ended without output; stderr: ${err}`));
          else resolve(l);
        });
      });
    },
  };
}

/** Every remaining stdout line of a child, until it ends (each line waited for at most `ms`). */
export async function remainingLines(c: Child, ms = 5000): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    try {
      lines.push(await c.line(ms));
    } catch {
      return lines;
    }
  }
}
