/**
 * Runs chaos patterns: starts each pattern's participants, kills and restarts them at random,
 * then stops every sender, waits for its operations to settle, closes everything cleanly and
 * judges the ledgers, /dev/shm and the process table.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, graphServer, mqttBroker, tlsMaterial } from "./brokers.js";
import { Cast, killAndRestart, type Role } from "./kill-scheduler.js";
import { readLedgers } from "./ledger.js";
import { allPatterns, rolesOf, type Meeting, type Pattern, type RoleSpec } from "./patterns.js";
import { killNow, spawnScript, type Proc } from "./procs.js";
import { Rng } from "./rng.js";
import { leftovers, segmentsOf, sweep } from "./system.js";
import { judge, type Verdicts } from "./verdicts.js";

export interface ChaosConfig {
  /** Substrings of the pattern names to run (none: all). */
  only: string[];
  kills: number;
  minGapMs: number;
  maxGapMs: number;
  maxRestartDelayMs: number;
  /** Operations per second per sending participant. */
  rate: number;
  seed: number;
  log?: (s: string) => void;
}

export interface PatternReport extends Verdicts {
  pattern: string;
  kills: number;
  killsPerRole: Record<string, number>;
  /** Starts that did not say "ready" in time (retried). */
  stuckStarts: number;
  /** Receivers that received nothing new once the kills were over. */
  stalls: string[];
  /** Senders whose operations did not all settle after "stop". */
  unsettled: string[];
  /** Participants that did not exit after "close". */
  unclosed: string[];
  /** Segments of killed processes found once everything ended (before any sweep). */
  segmentsOfKilled: number;
  /** Segments of processes that closed cleanly (a leak). */
  leakedSegments: string[];
  /** Segments still there after the sweep a new sender process does. */
  leftAfterSweep: string[];
  zombies: number;
  strays: number;
  processes: number;
  durationMs: number;
  /** Human-readable violations; empty when the pattern passed. */
  problems: string[];
}

export interface ChaosReport {
  tool: "chaos";
  config: ChaosConfig;
  startedAt: string;
  durationMs: number;
  patterns: PatternReport[];
  passed: boolean;
}

function gotCount(ledgerDir: string, tag: string): number {
  try {
    const t = readFileSync(join(ledgerDir, `${tag}.log`), "utf8");
    let n = 0;
    for (let i = t.indexOf("g "); i >= 0; i = t.indexOf("\ng ", i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function runPattern(p: Pattern, cfg: ChaosConfig, rng: Rng, shared: { graph: string; mqtt: string; tls: Meeting["tls"] }): Promise<PatternReport> {
  const t0 = Date.now();
  const ledger = mkdtempSync(join(tmpdir(), `plexus-chaos-${p.name}-`));
  const queueUrl = p.net === "mqtt" ? `${shared.mqtt}/chaos-${p.name}-${rng.int(0, 1e9)}` : `${p.net === "tls" ? "tls" : "tcp"}://127.0.0.1:${await freePort()}`;
  const meeting: Meeting = { ledger, graph: shared.graph, queueUrl, tls: shared.tls, rate: cfg.rate };
  const specs = rolesOf(p, meeting);
  const roles: Role[] = specs.map((s) => ({
    name: s.name,
    async start(n: number): Promise<Proc> {
      const proc = spawnScript("peer", s.args(n));
      try {
        await proc.waitLine((l) => l.startsWith("ready"), 20000);
      } catch (e) {
        await killNow(proc);
        throw e;
      }
      return proc;
    },
  }));
  const cast = new Cast(roles);
  const problems: string[] = [];
  let killsPerRole: Record<string, number> = {};
  const stalls: string[] = [];
  const unsettled: string[] = [];
  const unclosed: string[] = [];
  const spec = (name: string): RoleSpec => specs.find((s) => s.name === name) as RoleSpec;
  try {
    await cast.startAll();
    killsPerRole = await killAndRestart(cast, rng, cfg);
    // Every receiver alive now receives again (nothing wedged by what happened before).
    const tags = new Map<string, number>();
    for (const [name, proc] of cast.current) {
      if (!spec(name).receives) continue;
      const tag = `${name}.${cast.incarnation.get(name) as number}`;
      tags.set(tag, gotCount(ledger, tag));
      void proc;
    }
    await waitFor(() => [...tags].every(([tag, n]) => gotCount(ledger, tag) > n), 20000);
    for (const [tag, n] of tags) {
      if (gotCount(ledger, tag) > n) continue;
      const proc = cast.current.get(tag.slice(0, tag.lastIndexOf(".")));
      const why = proc?.stderr().trim().split("\n").at(-1);
      stalls.push(why ? `${tag} (${why.slice(0, 200)})` : tag);
    }
    // Stop: every started operation settles.
    for (const [name, proc] of cast.current) if (spec(name).sends) proc.tell("stop");
    await Promise.all(
      [...cast.current].filter(([name]) => spec(name).sends).map(([name, proc]) => proc.waitLine((l) => l === "settled", 40000).catch(() => unsettled.push(name))),
    );
    // Let receivers take what is still queued, then close everyone cleanly.
    const sum = (): number => [...cast.current.keys()].reduce((a, name) => a + gotCount(ledger, `${name}.${cast.incarnation.get(name) as number}`), 0);
    for (let before = -1, now = sum(); now !== before; before = now, now = sum()) await new Promise((r) => setTimeout(r, 300));
    for (const proc of cast.current.values()) proc.tell("close");
    await Promise.all(
      [...cast.current].map(async ([name, proc]) => {
        const code = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r("timeout"), 20000))]);
        if (code !== 0) unclosed.push(`${name}: ${String(code)} ${proc.stderr().slice(-300)}`);
        await killNow(proc);
      }),
    );
  } catch (e) {
    problems.push(`run failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    for (const proc of cast.current.values()) await killNow(proc);
  }
  const v = judge(readLedgers(ledger), p.promises);
  const present = segmentsOf(cast.pids);
  const closedPids = new Set([...cast.pids].filter((pid) => !cast.killedPids.has(pid)));
  const leakedSegments = segmentsOf(closedPids);
  sweep();
  const leftAfterSweep = segmentsOf(cast.pids);
  const left = leftovers(cast.pids);
  rmSync(ledger, { recursive: true, force: true });
  const kills = Object.values(killsPerRole).reduce((a, b) => a + b, 0);
  if (v.torn) problems.push(`${v.torn} torn`);
  if (v.wrong) problems.push(`${v.wrong} wrong`);
  if (v.lost) problems.push(`${v.lost} resolved but never received`);
  if (v.duplicates) problems.push(`${v.duplicates} duplicated`);
  if (v.gaps) problems.push(`${v.gaps} missing in a stream`);
  if (v.timeouts) problems.push(`${v.timeouts} timed out (a hang)`);
  if (cast.stuckStarts) problems.push(`${cast.stuckStarts} starts not ready in time`);
  if (stalls.length) problems.push(`stalled: ${stalls.join(", ")}`);
  if (unsettled.length) problems.push(`unsettled: ${unsettled.join(", ")}`);
  if (unclosed.length) problems.push(`did not close: ${unclosed.join("; ")}`);
  if (leakedSegments.length) problems.push(`leaked segments: ${leakedSegments.join(", ")}`);
  if (leftAfterSweep.length) problems.push(`segments left after the sweep: ${leftAfterSweep.join(", ")}`);
  if (left.zombies.length) problems.push(`zombies: ${left.zombies.join(", ")}`);
  if (left.alive.length) problems.push(`still running: ${left.alive.join(", ")}`);
  if (v.resolved === 0 && p.kind !== "pubsub") problems.push("nothing resolved");
  if (v.received === 0) problems.push("nothing received");
  return {
    pattern: p.name,
    kills,
    killsPerRole,
    ...v,
    stuckStarts: cast.stuckStarts,
    stalls,
    unsettled,
    unclosed,
    segmentsOfKilled: present.length - leakedSegments.length,
    leakedSegments,
    leftAfterSweep,
    zombies: left.zombies.length,
    strays: left.alive.length,
    processes: cast.pids.size,
    durationMs: Date.now() - t0,
    problems,
  };
}

/** Runs the patterns `cfg.only` selects, one after the other. */
export async function runChaos(cfg: ChaosConfig): Promise<ChaosReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const rng = new Rng(cfg.seed);
  const patterns = allPatterns().filter((p) => cfg.only.length === 0 || cfg.only.some((o) => p.name.includes(o)));
  const graph = await graphServer();
  const broker = await mqttBroker();
  const shared = { graph: graph.address, mqtt: broker.url, tls: tlsMaterial() };
  const out: PatternReport[] = [];
  try {
    for (const p of patterns) {
      const r = await runPattern(p, cfg, rng, shared);
      cfg.log?.(`${p.name}: ${r.kills} kills, ${r.resolved} resolved, ${r.failed} failed, ${r.received} received, ${(r.durationMs / 1000).toFixed(1)} s${r.problems.length ? ` — ${r.problems.join("; ")}` : ""}`);
      out.push(r);
    }
  } finally {
    await broker.close();
    await graph.close();
  }
  // the pattern's problems plus the promise that patterns with resolvedIsReceived lose nothing
  return { tool: "chaos", config: { ...cfg, log: undefined }, startedAt, durationMs: Date.now() - t0, patterns: out, passed: out.every((r) => r.problems.length === 0) };
}
