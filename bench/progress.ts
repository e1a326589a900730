/**
 * Progress on stderr: a bar (cli-progress) on a terminal, otherwise one line per finished case.
 * @module
 */
import { SingleBar, Presets } from "cli-progress";
import type { BenchCase } from "./harness.js";
import type { CaseResult, RunObserver } from "./runner.js";
import { summaryLine } from "./format.js";

/** A progress display that is stopped at the end. */
export interface Progress extends RunObserver {
  /** Removes the bar (if any). */
  stop(): void;
}

/** A bar when stderr is a TTY, else plain lines. */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) {
    return {
      caseFinished: (r: CaseResult, i: number, total: number) => stream.write(`[${i + 1}/${total}] ${summaryLine(r)}\n`),
      stop: () => {},
    };
  }
  const bar = new SingleBar(
    { stream, format: " {bar} {value}/{total} | {case}", hideCursor: true, clearOnComplete: true, etaBuffer: 5 },
    Presets.shades_classic,
  );
  let started = false;
  let done = 0;
  const failures: string[] = [];
  // Cases of one row and size start one after the other and finish together (their
  // repetitions alternate): the bar counts finished cases, the label names the last started.
  return {
    caseStarted: (c: BenchCase, _i: number, total: number) => {
      const label = `${c.row} | ${c.name} | ${c.variant}`;
      if (!started) {
        bar.start(total, done, { case: label });
        started = true;
      } else bar.update(done, { case: label });
    },
    caseFinished: (r: CaseResult) => {
      if (!r.ok) failures.push(summaryLine(r));
      bar.update(++done);
    },
    stop: () => {
      if (started) bar.stop();
      for (const f of failures) stream.write(`${f}\n`);
    },
  };
}
