/**
 * What the operating system says about the participants: shared-memory segments in /dev/shm
 * (named `plexus-<pid>-<hex>`), zombie children, descriptor counts and resident memory.
 */
import { readdirSync, readFileSync } from "node:fs";
import { sweepStaleSegments } from "../../src/index.js";

/** Plexus segments in /dev/shm created by one of `pids`. */
export function segmentsOf(pids: ReadonlySet<number>): string[] {
  let names: string[];
  try {
    names = readdirSync("/dev/shm");
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = /^plexus-(\d+)-/.exec(n);
    return m !== null && pids.has(Number(m[1]));
  });
}

/** Removes segments whose creator is gone, as the next sender process would; returns their names. */
export function sweep(): string[] {
  return sweepStaleSegments();
}

function stat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] as string, ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Children of this process (and their descendants among `pids`) that are zombies, or still exist at all. */
export function leftovers(pids: ReadonlySet<number>): { zombies: number[]; alive: number[] } {
  const zombies: number[] = [];
  const alive: number[] = [];
  for (const e of readdirSync("/proc")) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (!s) continue;
    if (s.state === "Z" && (s.ppid === process.pid || pids.has(s.ppid))) zombies.push(pid);
    else if (pids.has(pid)) alive.push(pid);
  }
  return { zombies, alive };
}

/** Open descriptors of `pid` (undefined once it is gone). */
export function fdCount(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** Resident set size of `pid` in bytes. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
