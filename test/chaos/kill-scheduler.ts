/**
 * The kill scheduler: at random moments it picks a random participant of a pattern, kills it
 * with SIGKILL, waits until it was reaped, and after a random pause starts its next incarnation
 * (which must say "ready" in time, or the start counts as stuck).
 */
import { killNow, type Proc } from "./procs.js";
import type { Rng } from "./rng.js";

/** A role of a pattern: how to start its incarnation `n` (resolves once it is ready). */
export interface Role {
  readonly name: string;
  start(incarnation: number): Promise<Proc>;
}

/** The processes of a pattern: the current incarnation of each role, and every pid ever started. */
export class Cast {
  readonly current = new Map<string, Proc>();
  readonly incarnation = new Map<string, number>();
  readonly pids = new Set<number>();
  readonly killedPids = new Set<number>();
  stuckStarts = 0;

  constructor(readonly roles: readonly Role[]) {}

  /** Starts the next incarnation of `role`; a start that is not ready in time is killed and tried again (up to 3 times). */
  async start(role: Role): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const n = (this.incarnation.get(role.name) ?? -1) + 1;
      this.incarnation.set(role.name, n);
      try {
        const p = await role.start(n);
        this.pids.add(p.pid);
        this.current.set(role.name, p);
        return;
      } catch (e) {
        this.stuckStarts++;
        if (attempt >= 2) throw e;
      }
    }
  }

  async startAll(): Promise<void> {
    for (const r of this.roles) await this.start(r);
  }
}

export interface KillOptions {
  kills: number;
  /** Pause before each kill, drawn in [minGapMs, maxGapMs]. */
  minGapMs: number;
  maxGapMs: number;
  /** Pause between a kill and the restart, drawn in [0, maxRestartDelayMs]. */
  maxRestartDelayMs: number;
}

/** Kills and restarts participants of `cast` `opts.kills` times; returns the kills per role. */
export async function killAndRestart(cast: Cast, rng: Rng, opts: KillOptions): Promise<Record<string, number>> {
  const perRole: Record<string, number> = {};
  for (let k = 0; k < opts.kills; k++) {
    await new Promise((r) => setTimeout(r, rng.int(opts.minGapMs, opts.maxGapMs)));
    const role = rng.pick(cast.roles);
    const victim = cast.current.get(role.name) as Proc;
    cast.killedPids.add(victim.pid);
    await killNow(victim);
    perRole[role.name] = (perRole[role.name] ?? 0) + 1;
    await new Promise((r) => setTimeout(r, rng.int(0, opts.maxRestartDelayMs)));
    await cast.start(role);
  }
  return perRole;
}
