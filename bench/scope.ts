/**
 * The implementation of {@link CaseScope}: resources kept across the repetitions of one case and
 * released, each within a bounded time, when the case ends (also when it failed).
 * @module
 */
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CaseScope, Resource } from "./harness.js";

/** How long one cleanup step may take before it is abandoned (reported, not awaited further). */
const CLEANUP_TIMEOUT_MS = 5000;

let tempCounter = 0;
/** Temp paths of running cases, removed on exit even if a case never got to clean up. */
const liveTempPaths = new Set<string>();

/** Removes every temp path a case created and has not removed yet (synchronous; for exit handlers). */
export function removeTempPaths(): void {
  for (const path of liveTempPaths) rmSync(path, { force: true });
  liveTempPaths.clear();
}

process.on("exit", removeTempPaths);

/** Resolves after `ms` (unref'd: never keeps the process alive). */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The per-case scope used by the runner. */
export class Scope implements CaseScope {
  private readonly controller = new AbortController();
  private readonly kept = new Map<string, Promise<Resource>>();
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  /** Problems met while cleaning up (reported by the runner, do not fail the case). */
  readonly cleanupErrors: string[] = [];

  /** @inheritDoc */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** @inheritDoc */
  fail(error: Error): void {
    if (!this.controller.signal.aborted) this.controller.abort(error);
  }

  /** @inheritDoc */
  tempPath(suffix: string): string {
    tempCounter += 1;
    const path = join(tmpdir(), `plexus-bench-${process.pid}-${tempCounter}${suffix}`);
    liveTempPaths.add(path);
    this.defer(() => {
      rmSync(path, { force: true });
      liveTempPaths.delete(path);
    });
    return path;
  }

  /** @inheritDoc */
  defer(cleanup: () => Promise<void> | void): void {
    this.cleanups.push(cleanup);
  }

  /** Returns the kept resource for `key`, creating it once. A failed creation fails every caller. */
  keep<T extends Resource>(key: string, create: (scope: CaseScope) => Promise<T>): Promise<T> {
    let p = this.kept.get(key);
    if (p === undefined) {
      try {
        p = create(this);
      } catch (err) {
        p = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      this.kept.set(key, p);
      // Closed with the other cleanups, in reverse order of creation.
      const created = p;
      this.defer(async () => {
        const r = await created.catch(() => undefined);
        await r?.close();
      });
    }
    return p as Promise<T>;
  }

  /** Runs every cleanup in reverse order, each bounded; never throws. */
  async close(): Promise<void> {
    if (!this.controller.signal.aborted) this.controller.abort(new Error("case finished"));
    while (this.cleanups.length > 0) {
      const cleanup = this.cleanups.pop() as () => Promise<void> | void;
      let timedOut = false;
      try {
        await Promise.race([
          Promise.resolve().then(cleanup),
          delay(CLEANUP_TIMEOUT_MS).then(() => {
            timedOut = true;
          }),
        ]);
        if (timedOut) this.cleanupErrors.push(`a cleanup step took more than ${CLEANUP_TIMEOUT_MS} ms and was abandoned`);
      } catch (err) {
        this.cleanupErrors.push(err instanceof Error ? err.message : String(err));
      }
    }
  }
}
