/**
 * The soak: pub/sub (shm and TCP subscribers), request/response and a reliable queue, each
 * participant its own process, under steady load for `minutes`; every process prints memory
 * samples. Verdicts: the ledgers' (nothing torn, wrong, lost, duplicated, no gap, no timeout),
 * RSS of the last quarter within `maxRssGrowth` of the first (warm-up excluded), descriptors
 * flat, every process still alive at the end and closing cleanly.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, graphServer } from "./brokers.js";
import { readLedgers } from "./ledger.js";
import type { PeerArgs } from "./peer.js";
import { killNow, spawnScript, type Proc } from "./procs.js";
import { parseSample, summarise, type Sample, type SeriesSummary } from "./soak-sampler.js";
import { segmentsOf, sweep } from "./system.js";
import { judge, type Verdicts } from "./verdicts.js";

export interface SoakConfig {
  minutes: number;
  rate: number;
  sampleMs: number;
  /** Samples before this are warm-up, not part of the series' first quarter. */
  warmupMs: number;
  /** Allowed growth of RSS, last quarter over first (fraction). */
  maxRssGrowth: number;
  maxFdGrowth: number;
  log?: (s: string) => void;
}

export interface SoakReport {
  tool: "soak";
  config: SoakConfig;
  startedAt: string;
  durationMs: number;
  processes: Record<string, SeriesSummary & { series: Sample[] }>;
  verdicts: Record<string, Verdicts>;
  leakedSegments: string[];
  problems: string[];
  passed: boolean;
}

export async function runSoak(cfg: SoakConfig): Promise<SoakReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const graph = await graphServer();
  const dirs = { pubsub: mkdtempSync(join(tmpdir(), "plexus-soak-pubsub-")), rpc: mkdtempSync(join(tmpdir(), "plexus-soak-rpc-")), queue: mkdtempSync(join(tmpdir(), "plexus-soak-queue-")) };
  const url = `tcp://127.0.0.1:${await freePort()}`;
  const common = { rate: cfg.rate, memEvery: cfg.sampleMs, graph: graph.address };
  const plan: [string, keyof typeof dirs, Omit<PeerArgs, "ledger" | "tag">][] = [
    ["pub", "pubsub", { ...common, role: "pub", name: "soak/topic" }],
    ["sub-shm", "pubsub", { ...common, role: "sub", name: "soak/topic", transport: "shm" }],
    ["sub-tcp", "pubsub", { ...common, role: "sub", name: "soak/topic", transport: "tcp" }],
    ["rpc-server", "rpc", { ...common, role: "rpc-server", name: "soak-service" }],
    ["rpc-client", "rpc", { ...common, role: "rpc-client", name: "soak-service", inFlight: 4 }],
    ["q-server", "queue", { ...common, role: "q-server", url, mode: "reliable", inFlight: 2 }],
    ["q-client", "queue", { ...common, role: "q-client", url, mode: "reliable", inFlight: 2 }],
  ];
  const series: Record<string, Sample[]> = {};
  const procs = new Map<string, Proc>();
  const problems: string[] = [];
  const warmEnd = t0 + cfg.warmupMs;
  try {
    for (const [name, dir, args] of plan) {
      series[name] = [];
      const p = spawnScript("peer", { ...args, tag: name, ledger: dirs[dir] } satisfies PeerArgs, {
        onLine: (l) => {
          const s = parseSample(l);
          if (s && s.t >= warmEnd) series[name]!.push(s);
        },
      });
      await p.waitLine((l) => l.startsWith("ready"), 20000);
      procs.set(name, p);
    }
    const end = t0 + cfg.minutes * 60000;
    while (Date.now() < end) {
      await sleep(Math.min(10000, end - Date.now()));
      for (const [name, p] of procs) if (p.ended) problems.push(`${name} ended during the soak: ${p.stderr().slice(-500)}`);
      if (problems.length) break;
      cfg.log?.(`${Math.round((Date.now() - t0) / 1000)} s: ${[...procs.keys()].map((n) => `${n} ${((series[n]!.at(-1)?.rss ?? 0) / 1048576).toFixed(0)} MiB`).join(", ")}`);
    }
    for (const [name, p] of procs) if (name === "pub" || name.endsWith("client") || name === "q-server") p.tell("stop");
    for (const [name, p] of procs) if (name === "pub" || name.endsWith("client") || name === "q-server") await p.waitLine((l) => l === "settled", 40000).catch(() => problems.push(`${name} did not settle`));
    await sleep(500);
    for (const p of procs.values()) p.tell("close");
    for (const [name, p] of procs) {
      const code = await Promise.race([p.exited, sleep(20000).then(() => "timeout")]);
      if (code !== 0) problems.push(`${name} did not close cleanly (${String(code)})`);
    }
  } catch (e) {
    problems.push(`run failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    for (const p of procs.values()) await killNow(p);
    await graph.close();
  }
  const verdicts: Record<string, Verdicts> = {
    pubsub: judge(readLedgers(dirs.pubsub), { resolvedIsReceived: false, gapless: true }),
    rpc: judge(readLedgers(dirs.rpc), { resolvedIsReceived: true, gapless: false }),
    queue: judge(readLedgers(dirs.queue), { resolvedIsReceived: true, gapless: false }),
  };
  for (const d of Object.values(dirs)) rmSync(d, { recursive: true, force: true });
  for (const [k, v] of Object.entries(verdicts)) {
    const bad = v.torn + v.wrong + v.lost + v.duplicates + v.gaps + v.timeouts + v.failed;
    if (bad) problems.push(`${k}: ${bad} violations or failures (${v.examples.slice(0, 3).join("; ")})`);
    if (v.received === 0) problems.push(`${k}: nothing received`);
  }
  const pids = new Set([...procs.values()].map((p) => p.pid));
  const leakedSegments = segmentsOf(pids);
  sweep();
  if (leakedSegments.length) problems.push(`segments left by processes that closed: ${leakedSegments.join(", ")}`);
  const processes: SoakReport["processes"] = {};
  for (const [name, s] of Object.entries(series)) {
    const sum = summarise(s);
    processes[name] = { ...sum, series: s };
    if (s.length < 4) problems.push(`${name}: only ${s.length} samples`);
    else {
      if (sum.rss[1] > sum.rss[0] * (1 + cfg.maxRssGrowth)) problems.push(`${name}: RSS grew from ${sum.rss[0]} to ${sum.rss[1]}`);
      if (sum.fds[1] > sum.fds[0] + cfg.maxFdGrowth) problems.push(`${name}: descriptors grew from ${sum.fds[0]} to ${sum.fds[1]}`);
    }
  }
  return { tool: "soak", config: { ...cfg, log: undefined }, startedAt, durationMs: Date.now() - t0, processes, verdicts, leakedSegments, problems, passed: problems.length === 0 };
}
