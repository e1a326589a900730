// The pipeline across real worker threads and processes: placement of each kind, shutdown by
// SIGINT/SIGTERM in dependency order (every shutdown() called, exit 0, no process or
// shared-memory segment left), the runner killed -9 (its processes end by themselves), a unit
// that throws, a unit that hangs in shutdown, a module that fails to import in a worker.
// The fixture is test/fixtures/pipeline-sys.ts: SOURCE -> DOUBLE -> SINK.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { GraphServer, type GraphStats } from "../src/index.js";
import { plexus, until as waitFor } from "./helpers/cli.js";
import { fixture, remainingLines, type Child } from "./helpers/child.js";

interface Place {
  path: string;
  placement: string;
  pid: number;
  threadId: number;
}

async function withGraph(fn: (address: string) => Promise<void>): Promise<void> {
  const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  try {
    await fn(`127.0.0.1:${server.address.port}`);
  } finally {
    await server.close();
  }
}

/** Lines until one starts with `prefix` (returned), collecting the others. */
async function until(child: Child, prefix: string, seen: string[] = []): Promise<string> {
  for (;;) {
    const l = await child.line(20000);
    if (l.startsWith(prefix)) return l;
    seen.push(l);
  }
}

/** All the lines left, until the process ends. */
const rest = (child: Child): Promise<string[]> => remainingLines(child, 20000);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pids: number[], ms: number): Promise<number[]> {
  const until = Date.now() + ms;
  while (Date.now() < until && pids.some(alive)) await new Promise((r) => setTimeout(r, 20));
  return pids.filter(alive);
}

const segmentsOf = (pids: number[]): string[] => readdirSync("/dev/shm").filter((f) => pids.some((p) => f.startsWith(`plexus-${p}-`)));

test("pipeline across processes: placement of each kind, then SIGTERM shuts every unit down in dependency order and exits 0, leaving nothing", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, placement: { "Sys/DOUBLE": "process", "Sys/SINK": "worker" } });
    const inits: string[] = [];
    const places = JSON.parse((await until(child, "running ", inits)).slice(8)) as Place[];
    const by = new Map(places.map((p) => [p.path, p]));
    const runner = child.proc.pid as number;
    assert.deepEqual([by.get("Sys/SOURCE")?.placement, by.get("Sys/SOURCE")?.pid, by.get("Sys/SOURCE")?.threadId], ["main", runner, 0]);
    assert.equal(by.get("Sys/DOUBLE")?.placement, "process");
    assert.notEqual(by.get("Sys/DOUBLE")?.pid, runner);
    assert.deepEqual([by.get("Sys/SINK")?.placement, by.get("Sys/SINK")?.pid], ["worker", runner]);
    assert.ok((by.get("Sys/SINK")?.threadId ?? 0) > 0);
    assert.ok(inits.includes(`init Sys/DOUBLE ${by.get("Sys/DOUBLE")?.pid}`), "DOUBLE initialized in its own process");
    await new Promise((r) => setTimeout(r, 200)); // let messages flow
    child.proc.kill("SIGTERM");
    const lines = await rest(child);
    assert.equal(await child.exited, 0, child.stderr());
    const shutdowns = lines.filter((l) => l.startsWith("shutdown "));
    assert.deepEqual(
      shutdowns.map((l) => l.split(" ")[1]),
      ["Sys/SOURCE", "Sys/DOUBLE", "Sys/SINK"],
      "upstream first",
    );
    const doubled = Number(shutdowns[1]?.split(" ")[3]);
    const [, , , n, sum] = (shutdowns[2] ?? "").split(" ");
    assert.ok(doubled > 0, "messages went through");
    assert.equal(Number(n), doubled, "the sink handled everything DOUBLE sent before it stopped (inputs drained)");
    assert.equal(Number(sum), doubled * (doubled + 1), "in order, nothing lost: 2 + 4 + ... + 2n");
    assert.equal(lines.at(-1), "stopped");
    const pids = [...new Set(places.map((p) => p.pid))];
    assert.deepEqual(await gone(pids, 3000), [], "no process left");
    assert.deepEqual(segmentsOf(pids), [], "no shared-memory segment left");
  });
});

test("pipeline across processes: SIGINT (Ctrl-C) stops it the same way: every shutdown() called, exit 0", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, placement: { Sys: "process" } });
    const places = JSON.parse((await until(child, "running ")).slice(8)) as Place[];
    assert.equal(new Set(places.map((p) => p.pid)).size, 1, "the whole collection in one process");
    assert.notEqual(places[0]?.pid, child.proc.pid);
    child.proc.kill("SIGINT");
    const lines = await rest(child);
    assert.equal(await child.exited, 0, child.stderr());
    assert.deepEqual(
      lines.filter((l) => l.startsWith("shutdown ")).map((l) => l.split(" ")[1]),
      ["Sys/SOURCE", "Sys/DOUBLE", "Sys/SINK"],
    );
    assert.deepEqual(await gone([places[0]?.pid as number], 3000), []);
  });
});

test("pipeline across processes: when the runner is killed -9 its processes notice and exit", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, placement: { "Sys/DOUBLE": "process", "Sys/SINK": "process" } });
    const places = JSON.parse((await until(child, "running ")).slice(8)) as Place[];
    const children = [...new Set(places.map((p) => p.pid))].filter((p) => p !== child.proc.pid);
    assert.equal(children.length, 2);
    child.proc.kill("SIGKILL");
    await child.exited;
    assert.deepEqual(await gone(children, 5000), [], "no orphan within 5 s");
    assert.deepEqual(segmentsOf(children), [], "the processes removed their segments");
  });
});

test("pipeline across processes: a unit that throws in its process stops the pipeline with its path, error and stack; exit 1", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, fail: "Sys/DOUBLE", placement: { "Sys/DOUBLE": "process" } });
    const lines = await rest(child);
    assert.equal(await child.exited, 1);
    assert.equal(lines.at(-1), "failed ERR_PLEXUS_UNIT Sys/DOUBLE Sys/DOUBLE: its handler of INPUT threw: RangeError: three is too many");
    assert.match(child.stderr(), /caused by: RangeError: three is too many\n\s+at .*pipeline-sys\.js/);
    assert.deepEqual(
      lines.filter((l) => l.startsWith("shutdown ")).map((l) => l.split(" ")[1]),
      ["Sys/SOURCE", "Sys/DOUBLE", "Sys/SINK"],
      "the others were shut down in order",
    );
  });
});

test("pipeline across processes: a unit that hangs in shutdown() is killed after the bound and reported; exit 1", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, hang: "Sys/DOUBLE", shutdownTimeout: 300, placement: { "Sys/DOUBLE": "process" } });
    const places = JSON.parse((await until(child, "running ")).slice(8)) as Place[];
    const pid = places.find((p) => p.path === "Sys/DOUBLE")?.pid as number;
    child.proc.kill("SIGTERM");
    const lines = await rest(child);
    assert.equal(await child.exited, 1);
    assert.equal(lines.at(-1), `failed ERR_PLEXUS_UNIT Sys/DOUBLE Sys/DOUBLE: did not shut down within 300 ms; its process (pid ${pid}) was killed`);
    assert.ok(lines.some((l) => l.startsWith("shutdown Sys/SINK")), "the units after it still shut down");
    assert.deepEqual(await gone([pid], 3000), []);
  });
});

test("pipeline across processes: a module that fails to import in a worker is a UnitError naming the component; nothing left running", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, badModule: true, placement: { "Sys/DOUBLE": "worker", "Sys/SINK": "process" } });
    const lines = await rest(child);
    assert.equal(await child.exited, 1);
    assert.match(lines.at(-1) ?? "", /^failed ERR_PLEXUS_UNIT Sys\/(DOUBLE|SINK) Sys\/(DOUBLE|SINK): its module file:.*pipeline-sys\.js could not be imported: Error: this module refuses to load in a child$/);
    assert.ok(!lines.some((l) => l.startsWith("running")));
  });
});

test("pipeline across processes: a leaky input (drop-oldest) of a slow sink in a process drops and counts, the stream upstream never waits for it", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 300, interval: 0, leaky: true, placement: { "Sys/SINK": "process" } });
    const lines = await rest(child);
    assert.equal(await child.exited, 0, child.stderr());
    const doubled = Number(lines.find((l) => l.startsWith("shutdown Sys/DOUBLE"))?.split(" ")[3]);
    assert.equal(doubled, 300, "DOUBLE handled every message: nothing upstream of the leaky input was held back or lost");
    const [, , , n, , missed] = (lines.find((l) => l.startsWith("shutdown Sys/SINK")) ?? "").split(" ");
    assert.ok(Number(missed) > 0, `the sink's input dropped messages: ${lines.join(" | ")}`);
    assert.ok(Number(n) < 300, "the slow sink did not handle them all");
    assert.equal(Number(n) + Number(missed), 300, "each message was handled or counted as dropped");
  });
});

test("pipeline across processes: the drops of a leaky input under a slow sink show in plexus top (the table and --json), on the input's topic", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, interval: 0, leaky: true, placement: { "Sys/SINK": "process" } });
    await until(child, "running");
    const topic = "Sys/SINK/INPUT";
    // the sink's process reports its input's counters to the GraphServer; top reads them from there
    const json = await waitFor("drops in plexus top --json", async () => {
      const r = await plexus(["top", "--json", "-n", "1", "-a", address]);
      assert.equal(r.code, 0, r.stderr);
      const t = (JSON.parse(r.stdout) as GraphStats).topics.find((x) => x.topic === topic);
      return t !== undefined && t.drops > 0 ? t : undefined;
    });
    assert.equal(json.subscribers, 1);
    const table = await plexus(["top", "-n", "1", "-a", address]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.split("\n");
    const head = (lines[0] ?? "").split(/\s+/);
    const row = lines.find((l) => l.startsWith(`${topic} `))?.split(/\s+/) ?? [];
    assert.ok(Number(row[head.indexOf("DROPS")]) >= json.drops, `${topic}'s DROPS column counts the input's drops: ${table.stdout}`);
    assert.equal(Number(lines.find((l) => l.startsWith("Sys/DOUBLE/INPUT "))?.split(/\s+/)[head.indexOf("DROPS")]), 0, "a blocking input drops nothing");
    child.proc.kill("SIGTERM");
    assert.equal(await child.exited, 0, child.stderr());
  });
});

test("pipeline across processes: a unit's process that dies while the pipeline runs stops it with a UnitError naming the component; exit 1", async () => {
  await withGraph(async (address) => {
    const child = fixture("pipeline-sys", { address, count: 0, placement: { "Sys/DOUBLE": "process" } });
    const places = JSON.parse((await until(child, "running ")).slice(8)) as Place[];
    const pid = places.find((p) => p.path === "Sys/DOUBLE")?.pid as number;
    process.kill(pid, "SIGKILL");
    const lines = await rest(child);
    assert.equal(await child.exited, 1);
    assert.equal(lines.at(-1), `failed ERR_PLEXUS_UNIT Sys/DOUBLE Sys/DOUBLE: its process (pid ${pid}) exited with SIGKILL while the pipeline ran`);
    assert.deepEqual(
      lines.filter((l) => l.startsWith("shutdown ")).map((l) => l.split(" ")[1]),
      ["Sys/SOURCE", "Sys/SINK"],
      "the others were shut down",
    );
  });
});

test("pipeline across processes: a child watches its runner by a pidfd: the watch fires when the process exits (killed -9), and at once for one already gone", async () => {
  const { spawn } = await import("node:child_process");
  const { whenProcessExits } = await import("../src/util/process-exit.js");
  const hold = setInterval(() => {}, 1000); // the watch does not keep the event loop alive: this test does
  const sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
  const pid = sleeper.pid as number;
  let fired = false;
  const exited = new Promise<void>((resolve) => {
    const w = whenProcessExits(pid, () => {
      fired = true;
      resolve();
    });
    assert.ok(w !== undefined, "this kernel has pidfds");
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(fired, false, "not while it runs");
  sleeper.kill("SIGKILL");
  await exited;
  await new Promise<void>((resolve) => whenProcessExits(pid, resolve)); // gone (reaped) now: at once
  clearInterval(hold);
});
