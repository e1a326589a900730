/**
 * Participant processes of the chaos tools (used outside `node:test` as well): spawn with a
 * JSON argument, read stdout line by line, talk through stdin, kill and reap.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** A running participant. */
export interface Proc {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** The next stdout line that `match` accepts (lines before it are dropped); rejects after `ms` or at exit. */
  waitLine(match: (l: string) => boolean, ms: number): Promise<string>;
  /** Writes a line to its stdin. */
  tell(line: string): void;
  /** Resolves with the exit code or signal name once it ended (and was reaped). */
  readonly exited: Promise<number | string>;
  readonly ended: boolean;
  stderr(): string;
}

/** Every process started and not yet reaped; killed when the driver exits. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** Starts `dist/test/chaos/<script>.js` with `args` as JSON in argv[2]. */
export function spawnScript(script: string, args: unknown, opts: { onLine?: (l: string) => void; execArgv?: string[]; ipc?: boolean } = {}): Proc {
  const path = fileURLToPath(new URL(`./${script}.js`, import.meta.url));
  const proc = spawn(process.execPath, [...(opts.execArgv ?? []), path, JSON.stringify(args)], { stdio: ["pipe", "pipe", "pipe", ...(opts.ipc ? ["ipc" as const] : [])] });
  live.add(proc);
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    if (err.length < 20000) err += d.toString();
  });
  proc.stdin!.on("error", () => {});
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  createInterface({ input: proc.stdout! }).on("line", (l) => {
    opts.onLine?.(l);
    lines.push(l);
    for (const w of waiters) w();
  });
  const exited = once(proc, "exit").then(([code, signal]) => {
    ended = true;
    live.delete(proc);
    for (const w of waiters) w();
    return (code ?? signal) as number | string;
  });
  return {
    proc,
    pid: proc.pid ?? -1,
    exited,
    get ended() {
      return ended;
    },
    stderr: () => err,
    tell(line) {
      if (!ended && proc.stdin!.writable) proc.stdin!.write(`${line}\n`);
    },
    waitLine(match, ms) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          while (lines.length > 0) {
            const l = lines.shift() as string;
            if (match(l)) return done(() => resolve(l));
          }
          if (ended) done(() => reject(new Error(`${script} (pid ${proc.pid}) ended; stderr: ${err.slice(-2000)}`)));
        };
        const t = setTimeout(() => done(() => reject(new Error(`${script} (pid ${proc.pid}): no expected line within ${ms} ms; stderr: ${err.slice(-2000)}`))), ms);
        const done = (f: () => void): void => {
          clearTimeout(t);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** SIGKILLs `p` and waits until it was reaped. */
export async function killNow(p: Proc): Promise<void> {
  if (!p.ended) p.proc.kill("SIGKILL");
  await p.exited;
}
