/**
 * The fuzzing run: a target process with every listening port, captures of valid traffic to
 * each, then `inputs` mutated inputs (one connection each, `concurrency` at a time, round robin
 * over the ports) while the honest clients run rounds of operations beside them. Verdicts: the
 * target never crashed, every honest operation succeeded, and after full collections its memory
 * and descriptors came back near where they were before the first hostile byte.
 */
import { connect, type Socket } from "node:net";
import { join, resolve as absolute } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeExact, type Capture, type Endpoint } from "./capture.js";
import type { MemSample, TargetPorts, TargetReply, TargetRequest } from "./fuzz-target.js";
import { mutate, MUTATORS, type Input, type MutatorName } from "./mutators.js";
import { captureAll, endpoints, HONEST_OPS, honestClients, TARGETS, type TargetName } from "./port-targets.js";
import { killNow, spawnScript } from "./procs.js";
import { Rng } from "./rng.js";
import { fdCount } from "./system.js";

export interface FuzzConfig {
  inputs: number;
  concurrency: number;
  seed: number;
  /** Quiet time before the final memory sample (sessions opened by hostile hellos expire). */
  settleMs: number;
  /** Generous bounds on what may stay after GC (bytes) and on extra descriptors. */
  maxArrayBuffersGrowth: number;
  maxHeapGrowth: number;
  maxFdGrowth: number;
  /** A folder for heap snapshots of the target taken with the memory samples (before.heapsnapshot, after.heapsnapshot). */
  heapSnapshots?: string;
  log?: (s: string) => void;
}

export interface FuzzReport {
  tool: "fuzz";
  config: FuzzConfig;
  startedAt: string;
  durationMs: number;
  inputs: number;
  bytes: number;
  perTarget: Record<string, number>;
  perMutator: Record<string, number>;
  captures: Record<string, number>;
  /** Connections the target ended itself, and those we had to end. */
  closedByTarget: number;
  closedByFuzzer: number;
  crashed: string | null;
  honest: { rounds: number; operations: number; failed: number; failures: string[] };
  memory: { before: MemSample | null; after: MemSample | null; fdsBefore: number | null; fdsAfter: number | null };
  problems: string[];
  passed: boolean;
}

/** Writes `input` to `ep` on a new connection; resolves once the connection is gone. */
function throwAt(ep: Endpoint, input: Input, rng: Rng): Promise<"target" | "fuzzer"> {
  if ("path" in ep && ep.exact) return writeExact(ep.path, input.bytes, input.slow ? () => sleep(rng.int(1, 6)) : undefined).then(() => "fuzzer");
  return new Promise((resolve) => {
    const s: Socket = "port" in ep ? connect({ host: "127.0.0.1", port: ep.port }) : connect({ path: ep.path });
    let done = false;
    const finish = (how: "target" | "fuzzer"): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(how);
    };
    const timer = setTimeout(() => finish("fuzzer"), input.slow ? 2000 : 400);
    s.on("error", () => finish("target"));
    s.on("close", () => finish("target"));
    s.on("data", () => {});
    s.on("connect", () => {
      if (!input.slow) {
        if (input.bytes.length > 0) s.write(input.bytes);
        s.end();
        return;
      }
      void (async () => {
        for (let at = 0; at < input.bytes.length && !done; ) {
          const n = rng.int(1, 3);
          s.write(input.bytes.subarray(at, at + n));
          at += n;
          await sleep(rng.int(1, 6));
        }
        if (!done) s.end();
      })();
    });
  });
}

export async function runFuzz(cfg: FuzzConfig): Promise<FuzzReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const rng = new Rng(cfg.seed);
  const problems: string[] = [];
  const target = spawnScript("fuzz-target", {}, { execArgv: ["--expose-gc"], ipc: true });
  let crashed: string | null = null;
  void target.exited.then((code) => {
    if (!stopping) crashed = `exited ${String(code)}: ${target.stderr().slice(-2000)}`;
  });
  let stopping = false;
  const replies: ((r: TargetReply) => void)[] = [];
  const portsP = new Promise<TargetPorts>((resolve) => {
    target.proc.on("message", (r: TargetReply) => {
      if (r.op === "ports") resolve(r.ports);
      else replies.shift()?.(r);
    });
  });
  let chain: Promise<unknown> = Promise.resolve();
  const ask = (req: TargetRequest): Promise<TargetReply> => {
    const p = chain.then(
      () =>
        new Promise<TargetReply>((resolve, reject) => {
          if (!target.proc.connected) return reject(new Error("the target is gone"));
          const t = setTimeout(() => reject(new Error(`the target did not answer ${req.op}`)), 20000);
          replies.push((r) => {
            clearTimeout(t);
            resolve(r);
          });
          target.proc.send(req);
        }),
    );
    chain = p.catch(() => {});
    return p;
  };
  const mem = async (when: "before" | "after"): Promise<MemSample | null> => {
    const snapshot = cfg.heapSnapshots ? join(absolute(cfg.heapSnapshots), `${when}.heapsnapshot`) : undefined;
    const r = await ask({ op: "mem", snapshot }).catch(() => null);
    return r?.op === "mem" ? r.mem : null;
  };

  const perTarget: Record<string, number> = {};
  const perMutator: Record<string, number> = {};
  let inputs = 0;
  let bytes = 0;
  let closedByTarget = 0;
  let closedByFuzzer = 0;
  const honestState = { rounds: 0, operations: 0, failed: 0, failures: [] as string[] };
  let before: MemSample | null = null;
  let after: MemSample | null = null;
  let fdsBefore: number | null = null;
  let fdsAfter: number | null = null;
  const captures: Record<string, number> = {};
  try {
    const ports = await Promise.race([portsP, target.exited.then((c) => Promise.reject(new Error(`target ended (${String(c)}): ${target.stderr()}`)))]);
    const caps = await captureAll(ports, ask);
    for (const t of TARGETS) {
      captures[t] = caps.get(t)?.length ?? 0;
      if (!captures[t]) problems.push(`no traffic captured for ${t}`);
    }
    const all: Capture[] = [...caps.values()].flat();
    const ep = endpoints(ports);
    const honest = await honestClients(ports, ask);
    const honestRound = async (): Promise<void> => {
      const f = await honest.round(honestState.rounds++);
      honestState.operations += HONEST_OPS;
      honestState.failed += f.length;
      for (const x of f) if (honestState.failures.length < 20) honestState.failures.push(x);
    };
    for (let i = 0; i < 3; i++) await honestRound();
    await sleep(500);
    before = await mem("before");
    fdsBefore = fdCount(target.pid) ?? null;
    let running = true;
    const honestLoop = (async () => {
      while (running && !crashed) {
        await honestRound();
        await sleep(100);
      }
    })();
    const targets = TARGETS.filter((t) => (caps.get(t)?.length ?? 0) > 0);
    let issued = 0;
    let lastLog = Date.now();
    const worker = async (): Promise<void> => {
      while (issued < cfg.inputs && !crashed) {
        const k = issued++;
        const name = targets[k % targets.length] as TargetName;
        const base = rng.pick(caps.get(name) as Capture[]);
        const r = rng.next();
        const mutator: MutatorName = r < 0.005 ? "flood" : r < 0.02 ? "slow" : rng.pick(MUTATORS.filter((m) => m !== "flood" && m !== "slow"));
        const input = mutate(rng, base, rng.pick(all), mutator);
        perTarget[name] = (perTarget[name] ?? 0) + 1;
        perMutator[mutator] = (perMutator[mutator] ?? 0) + 1;
        bytes += input.bytes.length;
        if ((await throwAt(ep[name], input, rng)) === "target") closedByTarget++;
        else closedByFuzzer++;
        inputs++;
        if (cfg.log && Date.now() - lastLog > 10000) {
          lastLog = Date.now();
          cfg.log(`${inputs} inputs, ${honestState.operations} honest operations (${honestState.failed} failed), ${Math.round((Date.now() - t0) / 1000)} s`);
        }
      }
    };
    await Promise.all(Array.from({ length: cfg.concurrency }, worker));
    running = false;
    await honestLoop;
    await sleep(cfg.settleMs);
    await honestRound();
    after = await mem("after");
    fdsAfter = fdCount(target.pid) ?? null;
    await honest.close();
  } catch (e) {
    problems.push(`run failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    stopping = true;
    await killNow(target);
  }
  if (crashed) problems.push(`the target crashed: ${crashed as string}`);
  if (honestState.failed) problems.push(`${honestState.failed} honest operations failed: ${honestState.failures.slice(0, 5).join("; ")}`);
  if (before && after) {
    if (after.arrayBuffers - before.arrayBuffers > cfg.maxArrayBuffersGrowth) problems.push(`ArrayBuffers after GC grew from ${before.arrayBuffers} to ${after.arrayBuffers}`);
    if (after.heapUsed - before.heapUsed > cfg.maxHeapGrowth) problems.push(`heap after GC grew from ${before.heapUsed} to ${after.heapUsed}`);
  } else problems.push("no memory samples");
  if (fdsBefore !== null && fdsAfter !== null && fdsAfter - fdsBefore > cfg.maxFdGrowth) problems.push(`descriptors grew from ${fdsBefore} to ${fdsAfter}`);
  if (inputs < cfg.inputs && !problems.length) problems.push(`only ${inputs} of ${cfg.inputs} inputs`);
  return {
    tool: "fuzz",
    config: { ...cfg, log: undefined },
    startedAt,
    durationMs: Date.now() - t0,
    inputs,
    bytes,
    perTarget,
    perMutator,
    captures,
    closedByTarget,
    closedByFuzzer,
    crashed,
    honest: honestState,
    memory: { before, after, fdsBefore, fdsAfter },
    problems,
    passed: problems.length === 0,
  };
}
