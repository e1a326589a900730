/**
 * Ledgers: every chaos participant appends one line per event to a file of its own, with a
 * synchronous write (so what a process logged before a `kill -9` is in the file). Receivers log
 * a message before they release or acknowledge it; senders log after the put, request or
 * publish resolved (or failed). The verdicts compare the ledgers of all participants.
 *
 * Lines: `g <id> <1|0>` received (1: whole and right), `r <id>` resolved, `f <id> <code>`
 * failed, `x <id>` resolved with a wrong answer.
 */
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";

/** The writing side, in a participant. */
export class LedgerWriter {
  private readonly fd: number;

  constructor(path: string) {
    this.fd = openSync(path, "a");
  }

  got(id: string, ok: boolean): void {
    writeSync(this.fd, `g ${id} ${ok ? 1 : 0}\n`);
  }

  resolved(id: string): void {
    writeSync(this.fd, `r ${id}\n`);
  }

  failed(id: string, code: string): void {
    writeSync(this.fd, `f ${id} ${code}\n`);
  }

  wrong(id: string): void {
    writeSync(this.fd, `x ${id}\n`);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** One participant's ledger, read back. */
export interface Ledger {
  /** The file's name without `.log`: `<role>-<incarnation>`. */
  readonly name: string;
  /** Received ids in order, with their check. */
  readonly got: { id: string; ok: boolean }[];
  readonly resolved: string[];
  readonly failed: { id: string; code: string }[];
  readonly wrong: string[];
}

/** Reads every `*.log` of `dir`. A last line cut by a kill is ignored. */
export function readLedgers(dir: string): Ledger[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .sort()
    .map((f) => {
      const l: Ledger = { name: f.slice(0, -4), got: [], resolved: [], failed: [], wrong: [] };
      const text = readFileSync(join(dir, f), "utf8");
      const lines = text.split("\n");
      if (!text.endsWith("\n")) lines.pop();
      for (const line of lines) {
        const [k, id, extra] = line.split(" ");
        if (id === undefined) continue;
        if (k === "g") l.got.push({ id, ok: extra === "1" });
        else if (k === "r") l.resolved.push(id);
        else if (k === "f") l.failed.push({ id, code: extra ?? "?" });
        else if (k === "x") l.wrong.push(id);
      }
      return l;
    });
}
