import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const example = (name: string): string => fileURLToPath(new URL(`../examples/${name}.js`, import.meta.url));

test("examples/shm-stream streams between two processes and reports rates and latency", async () => {
  const { stdout } = await run(process.execPath, [example("shm-stream"), "--quick"], { timeout: 60000 });
  assert.match(stdout, /^stream: 2000 x 64 KiB in \d+ ms = [\d.]+ GB\/s$/m);
  assert.match(stdout, /^round trip \(64 B\): p50 [\d.]+ us, p99 [\d.]+ us over 500 rounds$/m);
});

test("examples/worker-ring sums what a worker thread read from the ring", async () => {
  const { stdout } = await run(process.execPath, [example("worker-ring")], { timeout: 60000 });
  assert.equal(stdout.trim(), "worker summed 511488000 (expected 511488000)");
});

test("the plexus command prints help and lists segments", async () => {
  const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const help = await run(process.execPath, [cli]);
  assert.match(help.stdout, /Usage: plexus/);
  const list = await run(process.execPath, [cli, "shm", "list", "--json"]);
  assert.ok(Array.isArray(JSON.parse(list.stdout)));
  await assert.rejects(run(process.execPath, [cli, "no-such-command"]), (e: { code?: number; stderr?: string }) => e.code === 2 && /unknown command/.test(e.stderr ?? ""));
});

test("examples/readme (the README's example) delivers 1000 messages to the child", async () => {
  const { stdout } = await run(process.execPath, [example("readme")], { timeout: 60000 });
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 1000);
  lines.forEach((l, i) => assert.equal(l, `${i + 1} 8192`));
});

test("examples/pubsub: two processes, the embedded GraphServer, 100 frames of 1 MiB", async () => {
  const { GraphServer } = await import("../src/index.js");
  const probe = await GraphServer.start({ port: 0 }); // find a free port, so parallel runs do not meet
  const port = probe.address.port;
  await probe.close();
  const { stdout } = await run(process.execPath, [example("pubsub")], { timeout: 60000, env: { ...process.env, PLEXUS_GRAPH: `127.0.0.1:${port}` } });
  assert.equal(stdout.trim(), "received 100 frames of 1 MiB, 100 of them as views into shared memory");
});

test("examples/rpc: a server process, 100 requests with 16 in flight, a remote error, an in-place answer", async () => {
  const { GraphServer } = await import("../src/index.js");
  const probe = await GraphServer.start({ port: 0 });
  const port = probe.address.port;
  await probe.close();
  const { stdout } = await run(process.execPath, [example("rpc")], { timeout: 60000, env: { ...process.env, PLEXUS_GRAPH: `127.0.0.1:${port}` } });
  assert.equal(stdout.trim(), "resized 100 images correctly; a 1x1 image was refused (E_TOO_SMALL); inverted 1 MiB in place");
});

test("examples/queue: a child process puts 10 jobs to a queue server and gets each result", async () => {
  const { stdout } = await run(process.execPath, [example("queue")], { timeout: 60000 });
  assert.deepEqual(
    stdout.trim().split("\n"),
    Array.from({ length: 10 }, (_, n) => `job ${n}: sum ${n * 1000}`),
  );
});

test("examples/pipeline: LFO -> modulated sine (worker) -> logger (process), settings changed live, ended by the logger", async () => {
  const { freePort } = await import("./helpers/cli.js");
  const port = await freePort(); // so parallel runs do not meet
  const { stdout } = await run(process.execPath, [example("pipeline")], { timeout: 60000, env: { ...process.env, PLEXUS_GRAPH: `127.0.0.1:${port}` } });
  const lines = stdout.trim().split("\n");
  assert.ok(lines.includes("SYS/SINE: carrier 10 -> 20 Hz"), stdout);
  const blocks = lines.filter((l) => l.startsWith("block "));
  assert.equal(blocks.length, 20, stdout);
  for (const b of blocks) assert.match(b, /^block \d+: 64 samples, carrier (10|20) Hz, peak \d\.\d\d$/);
  assert.match(blocks.at(-1) ?? "", /carrier 20 Hz/, "the new setting reached the worker");
  assert.equal(lines.at(-1), "pipeline stopped");
});
