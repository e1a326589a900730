/**
 * A resource that several cases of one row and variant share, and the repetitions they share:
 * one publisher feeding two subscribers, each subscriber's latencies a case of its own. The first
 * case to ask opens it, in a scope of its own (it outlives any one case); each case releases it
 * when it ends and the last release closes it. A repetition is run once, by the first case to
 * reach it (same phase, same index); the other cases take their part of its result.
 * @module
 */
import type { CaseContext, CaseScope, Resource } from "./harness.js";
import { Scope } from "./scope.js";

/** A shared resource and the repetitions run on it so far. */
export class Shared<T extends Resource> {
  private readonly runs = new Map<string, Promise<unknown>>();

  /**
   * @param value - the resource
   * @param scope - where it was opened (its peers, its cleanups)
   */
  constructor(
    readonly value: T,
    private readonly scope: Scope,
  ) {}

  /** Aborted when the shared resource fails (a peer died) or is closed. */
  get signal(): AbortSignal {
    return this.scope.signal;
  }

  /**
   * The result of the repetition `ctx` stands for (its phase and index): the first case to ask
   * runs `measure`, with a signal aborted when that case or the shared resource fails; the others
   * get the same result (or the same failure).
   * @param ctx - the asking case's context
   * @param measure - runs the repetition
   */
  repetition<R>(ctx: CaseContext, measure: (signal: AbortSignal) => Promise<R>): Promise<R> {
    const key = `${ctx.phase} ${ctx.repetition}`;
    let run = this.runs.get(key) as Promise<R> | undefined;
    if (run === undefined) {
      run = measure(AbortSignal.any([ctx.signal, this.signal]));
      run.catch(() => {}); // whoever asks sees the failure
      this.runs.set(key, run);
    }
    return run;
  }
}

interface Entry {
  users: number;
  readonly scope: Scope;
  readonly opened: Promise<Shared<Resource>>;
}

const entries = new Map<string, Entry>();

/**
 * The resource shared under `key` (name it after the row and variant), opened by `open` for the
 * first case that asks; released when the asking case ends, closed with the last release.
 * @param ctx - the asking case's context
 * @param key - what is shared
 * @param open - opens the resource in a scope of its own
 */
export async function shared<T extends Resource>(ctx: CaseContext, key: string, open: (scope: CaseScope) => Promise<T>): Promise<Shared<T>> {
  const handle = await ctx.keep(`shared ${key}`, async () => {
    let entry = entries.get(key);
    if (entry === undefined) {
      const scope = new Scope();
      const opened = open(scope).then((value) => {
        scope.defer(() => value.close()); // first of the scope's cleanups
        return new Shared(value, scope);
      });
      opened.catch(() => {}); // seen by every user
      entry = { users: 0, scope, opened };
      entries.set(key, entry);
    }
    const mine = entry;
    mine.users += 1;
    const release = async (): Promise<void> => {
      mine.users -= 1;
      if (mine.users > 0) return;
      if (entries.get(key) === mine) entries.delete(key);
      await mine.scope.close();
    };
    try {
      return { shared: (await mine.opened) as Shared<T>, close: release };
    } catch (err) {
      await release();
      throw err;
    }
  });
  return handle.shared;
}
