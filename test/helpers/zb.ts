/**
 * Helpers of the ZeroBuffer tests: unique names, the OS objects of a buffer, the CLI roles as
 * child processes, and a "foreign" writer that lays frames out exactly like the C++ / Python
 * reference writers (no early wrap, markers only when the tail has room, write_pos left at
 * payload_size after an exact fit), to test Plexus readers against layouts Plexus itself never
 * produces.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { native, type Semaphore } from "../../src/native.js";
import { Header, OIEB_V1_SIZE, Q, writeU64 } from "../../src/zerobuffer/oieb.js";

let counter = 0;

/** A buffer name unique to this process and call. */
export function uniqueName(tag: string): string {
  counter += 1;
  return `plexus-zbt-${tag}-${process.pid}-${counter}`;
}

/** Paths of every OS object of buffer `name` (shm, four semaphores, lock file). */
export function objectPaths(name: string): string[] {
  return [`/dev/shm/${name}`, ...["w", "r", "p", "c"].map((k) => `/dev/shm/sem.sem-${k}-${name}`), `/tmp/zerobuffer/${name}.lock`];
}

/** The objects of `name` that exist. */
export function leftovers(...names: string[]): string[] {
  return names.flatMap(objectPaths).filter((p) => existsSync(p));
}

/** Byte i of frame seq in the CLI contract. */
export function patternByte(seq: number, i: number): number {
  return (seq * 31 + i) & 0xff;
}

/** Frame `seq` of `size` bytes with the contract's pattern. */
export function pattern(seq: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = patternByte(seq, i);
  return b;
}

/** Index of the first byte of `data` that differs from frame `seq`'s pattern, or -1. */
export function mismatch(data: Uint8Array, seq: number): number {
  for (let i = 0; i < data.length; i++) if (data[i] !== patternByte(seq, i)) return i;
  return -1;
}

const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A running CLI role. */
export interface Role {
  /** Resolves when the process exited: exit code, the parsed JSON line, stderr. */
  done: Promise<{ code: number | string; json: Record<string, unknown> & { errors: string[] }; stdout: string; stderr: string }>;
  /** Kills the process. */
  kill(signal?: NodeJS.Signals): void;
  /** The pid. */
  pid: number;
}

/** Starts `plexus zerobuffer <args...>` as a child process. */
export function role(args: readonly string[], timeoutMs = 30_000): Role {
  const child = spawn(process.execPath, [CLI, "zerobuffer", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<{ code: number | string; json: Record<string, unknown> & { errors: string[] }; stdout: string; stderr: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.split("\n").filter((l) => l.length > 0);
      let json: Record<string, unknown> & { errors: string[] } = { errors: [`no JSON line (stdout ${JSON.stringify(stdout)})`] };
      if (lines.length === 1) {
        try {
          json = JSON.parse(lines[0] as string) as Record<string, unknown> & { errors: string[] };
        } catch {
          // left as the "no JSON" marker
        }
      }
      resolve({ code: code ?? (signal as string), json, stdout, stderr });
    });
  });
  return { done, kill: (s = "SIGKILL") => child.kill(s), pid: child.pid as number };
}

/** Waits until `path` exists (polling), at most `timeoutMs`. */
export async function waitFile(path: string, timeoutMs = 15_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return readFileSync(path, "utf8");
}

/**
 * Writes frames into buffer `name` the way the C++ reference writer does
 * (docs/zerobuffer-protocol.md §6, §12): a marker only when the tail has room for one, a short
 * tail left as it is, `write_pos` not wrapped after an exact fit; `pythonCounts` counts every wrap like Python's writer. It writes
 * only when there is room (no waiting) and does not touch writer_pid.
 */
export class ForeignWriter {
  readonly header: Header;
  readonly buffer: SharedArrayBuffer;
  readonly view: DataView;
  readonly payloadOffset: number;
  readonly payloadSize: number;
  private readonly semW: Semaphore;
  sequence = 1;

  constructor(
    name: string,
    private readonly pythonCounts = false,
  ) {
    this.buffer = native().segmentOpen(`/${name}`);
    this.header = new Header(this.buffer, OIEB_V1_SIZE);
    this.payloadSize = this.header.load(Q.payloadSize);
    this.payloadOffset = OIEB_V1_SIZE + this.header.load(Q.metadataSize);
    this.view = new DataView(this.buffer, this.payloadOffset, this.payloadSize);
    this.semW = native().semOpen(`/sem-w-${name}`, false, 0, 0);
  }

  /** Current write_pos. */
  get writePos(): number {
    return this.header.load(Q.writePos);
  }

  /** Writes frame `sequence` of `n` pattern bytes (or `data`); throws if there is no room. */
  write(n: number, data?: Uint8Array): void {
    const size = this.payloadSize;
    const total = 16 + n;
    let wp = this.header.load(Q.writePos);
    const tail = size - wp;
    const need = tail >= total ? total : tail + total;
    if (this.header.load(Q.payloadFree) < need) throw new Error("ForeignWriter: no room");
    if (tail < total) {
      if (tail >= 16) {
        writeU64(this.view, wp, 0);
        writeU64(this.view, wp + 8, 0);
      }
      if (tail >= 16 || this.pythonCounts) this.header.add(Q.writtenCount, 1);
      this.header.sub(Q.payloadFree, tail);
      wp = 0;
    }
    const seq = this.sequence++;
    writeU64(this.view, wp, n);
    writeU64(this.view, wp + 8, seq);
    new Uint8Array(this.buffer, this.payloadOffset + wp + 16, n).set(data ?? pattern(seq, n));
    this.header.store(Q.writePos, wp + total); // C++ and Python's write_frame: not wrapped
    this.header.sub(Q.payloadFree, total);
    this.header.add(Q.writtenCount, 1);
    this.semW.post();
  }

  /** Writes raw bytes into the ring (to leave stale data or forge headers). */
  poke(offset: number, bytes: Uint8Array): void {
    new Uint8Array(this.buffer, this.payloadOffset + offset, bytes.length).set(bytes);
  }

  /** Posts sem-w once (announces a forged frame). */
  post(): void {
    this.semW.post();
  }

  /** Closes the semaphore handle. */
  close(): void {
    this.semW.close();
  }
}

/** The pid of a process that has exited (for "dead writer" states). */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  const pid = child.pid as number;
  await new Promise((r) => child.on("exit", r));
  return pid;
}
