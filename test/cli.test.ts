/**
 * The `plexus` command, run as a real process against a GraphServer this test starts on a free
 * port (PLEXUS_GRAPH), including its error paths and exit codes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { WebSocket } from "ws";
import { testCerts } from "./helpers/tcp-certs.js";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphServer } from "../src/graph/server.js";
import { connect } from "../src/node/node.js";
import { freePort, plexus, spawnPlexus, until } from "./helpers/cli.js";

const noStack = (s: string): boolean => !/\n\s+at /.test(s);

test("cli: with no GraphServer, graph/top/status/pub/echo say so and exit 3 (no stack trace)", async () => {
  const env = { PLEXUS_GRAPH: `127.0.0.1:${await freePort()}` };
  for (const args of [["graph"], ["top", "-n", "1"], ["status"], ["pub", "t", "1"], ["echo", "t"], ["graph", "--format", "json"]]) {
    const r = await plexus(args, env);
    assert.equal(r.code, 3, `plexus ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /no GraphServer answers at 127\.0\.0\.1:\d+; start one with `plexus serve`/);
    assert.ok(noStack(r.stderr), r.stderr);
    assert.equal(r.stdout, "");
  }
});

test("cli: usage errors exit 2 with a message; --help works on every command", async () => {
  const bad = [["graph", "--format", "png"], ["pub", "t", "{not json"], ["top", "--interval", "1"], ["demo", "--rate", "0"], ["demo", "--request-every", "-1"], ["demo", "--put-every", "1.5"], ["serve", "--bogus"], ["pub", "t"]];
  for (const args of bad) {
    const r = await plexus(args, { PLEXUS_GRAPH: "127.0.0.1:1" });
    assert.equal(r.code, 2, `plexus ${args.join(" ")}: ${r.stderr}`);
    assert.ok(r.stderr.length > 0 && noStack(r.stderr));
  }
  for (const cmd of ["serve", "start", "stop", "status", "graph", "top", "pub", "echo", "bench", "demo", "shm"]) {
    const r = await plexus([cmd, "--help"]);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, new RegExp(`Usage: plexus ${cmd}`));
  }
});

test("cli: graph prints the live graph as mermaid, dot and json", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using node = await connect({ address, embedded: false, name: "cam" });
  await node.publisher("frames");
  await node.subscriber("boxes");
  await node.connect("frames", "boxes");
  const env = { PLEXUS_GRAPH: address };
  const mermaid = await plexus(["graph"], env);
  assert.equal(mermaid.code, 0, mermaid.stderr);
  assert.match(mermaid.stdout, /^flowchart LR$/m);
  assert.match(mermaid.stdout, /\(\["frames"\]\)/);
  assert.match(mermaid.stdout, /\(\["boxes"\]\)/);
  assert.match(mermaid.stdout, /\["cam \(pid \d+\)"\]/);
  assert.match(mermaid.stdout, /t\d+ ==> t\d+/, "the topic edge");
  assert.doesNotMatch(mermaid.stdout, /plexus graph/, "the command itself is not drawn");
  const dot = await plexus(["graph", "--format", "dot"], env);
  assert.match(dot.stdout, /^digraph plexus \{/);
  assert.match(dot.stdout, /"topic:frames" -> "topic:boxes" \[style=bold\]/);
  const json = JSON.parse((await plexus(["graph", "-f", "json"], env)).stdout) as { topics: string[]; edges: unknown[]; stats: unknown[] };
  assert.deepEqual(json.topics, ["boxes", "frames"]);
  assert.deepEqual(json.edges, [{ from: "frames", to: "boxes", owner: node.id }]);
  assert.equal(json.stats.length, 2);
  const compact = await plexus(["graph", "--compact"], env);
  assert.doesNotMatch(compact.stdout, /cam/);
  assert.match(compact.stdout, /frames \(1 pub, 0 sub\)/);
});

test("cli: top shows rates, subscribers and link transports (--json and the table)", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using a = await connect({ address, embedded: false });
  await using b = await connect({ address, embedded: false });
  const pub = await a.publisher<number>("ticks");
  const sub = await b.subscriber<number>("ticks", { transport: "shm" });
  const drained = sub.forEach(() => {});
  const flowing = setInterval(() => void pub.publish(1), 2);
  try {
    await until("a rate", () => server.stats().topics.find((t) => t.rate > 0));
    const r = await plexus(["top", "--json", "-n", "2", "-i", "200"], { PLEXUS_GRAPH: address });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { topics: { topic: string; rate: number; subscribers: number; links: { transport: string }[] }[] });
    assert.equal(lines.length, 2);
    const t = lines[1].topics.find((x) => x.topic === "ticks");
    assert.ok(t && t.rate > 0 && t.subscribers === 1);
    assert.deepEqual(t.links.map((l) => l.transport), ["shm"]);
    const table = await plexus(["top", "-n", "1"], { PLEXUS_GRAPH: address });
    assert.match(table.stdout, /^TOPIC\s+PUB\s+SUB\s+MSG\/S\s+BYTES\/S\s+RECV\/S\s+WAITS\s+DROPS\s+LINKS$/m);
    assert.match(table.stdout, /^ticks\s+1\s+1\s+[\d.]+k?\s+[\d.]+[kM]?B\s+[\d.]+k?\s+\d+\s+0\s+shmx1$/m);
  } finally {
    clearInterval(flowing);
    await sub.close();
    await drained;
  }
});

test("cli: graph, top and status show request/response services, their clients, servers and link transports", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  await using a = await connect({ address, embedded: false, name: "resizer" });
  await using b = await connect({ address, embedded: false, name: "camera" });
  await a.server<number, number>("resize", (n) => {
    if (n < 0) throw new Error("negative");
    return n / 2;
  });
  const client = await b.client<number, number>("resize", { transport: "shm" });
  await assert.rejects(client.request(-1), { code: "ERR_PLEXUS_REMOTE" });
  let flowing = true;
  const loop = (async () => {
    while (flowing) await client.request(8);
  })();
  const env = { PLEXUS_GRAPH: address };
  try {
    await until("a request rate and the link", () => server.stats().services.find((v) => v.rate > 0 && v.links.length === 1 && v.errors === 1));
    const mermaid = await plexus(["graph"], env);
    assert.equal(mermaid.code, 0, mermaid.stderr);
    const ids = new Map([...mermaid.stdout.matchAll(/^ {2}(\w+)(?:\{\{|\[)"([^"]+)"/gm)].map((m) => [m[2].replace(/ \(pid.*$/, ""), m[1]]));
    assert.match(mermaid.stdout, /^ {2}s\d+\{\{"resize"\}\}$/m, "the service is a hexagon");
    assert.ok(mermaid.stdout.includes(`  ${ids.get("camera")} -->|shm| ${ids.get("resize")}`), `the client calls the service over shm:\n${mermaid.stdout}`);
    assert.ok(mermaid.stdout.includes(`  ${ids.get("resize")} -.-> ${ids.get("resizer")}`), `the service is served by its server's node:\n${mermaid.stdout}`);
    const dot = await plexus(["graph", "-f", "dot"], env);
    assert.match(dot.stdout, /"service:resize" \[shape=hexagon, label="resize"\];/);
    assert.match(dot.stdout, /"node:n\w+" -> "service:resize" \[label="shm"\];/);
    assert.match(dot.stdout, /"service:resize" -> "node:n\w+" \[style=dashed\];/);
    const json = JSON.parse((await plexus(["graph", "-f", "json"], env)).stdout) as { servers: { service: string }[]; clients: { service: string }[]; serviceStats: { service: string; links: { transport: string }[] }[] };
    assert.deepEqual([json.servers.map((x) => x.service), json.clients.map((x) => x.service)], [["resize"], ["resize"]]);
    assert.deepEqual(json.serviceStats[0].links.map((l) => l.transport), ["shm"]);
    const compact = await plexus(["graph", "--compact"], env);
    assert.match(compact.stdout, /\{\{"resize \(1 srv, 1 cli\)"\}\}/);
    const top = await plexus(["top", "--json", "-n", "1"], env);
    const line = JSON.parse(top.stdout) as { services: { service: string; rate: number; errors: number; latency: number | null }[] };
    const v = line.services.find((x) => x.service === "resize");
    assert.ok(v && v.rate > 0 && v.errors === 1 && v.latency !== null && v.latency > 0, top.stdout);
    const table = await plexus(["top", "-n", "1"], env);
    assert.match(table.stdout, /^SERVICE\s+SRV\s+CLI\s+REQ\/S\s+BYTES\/S\s+ERR\/S\s+ERRORS\s+INFLIGHT\s+RTT\(ms\)\s+LINKS$/m);
    const status = await plexus(["status", "--json"], env);
    assert.equal((JSON.parse(status.stdout) as { services: number }).services, 1);
    assert.match((await plexus(["status"], env)).stdout, /; 2 node\(s\), 0 topic\(s\), 1 service\(s\)$/m);
    assert.match(table.stdout, /^resize\s+1\s+1\s+[1-9][\d.]*k?\s+[\d.]+[kM]?B\s+[\d.]+k?\s+1\s+\d+\s+[\d.]+\s+shmx1$/m);
  } finally {
    flowing = false;
    await loop;
  }
});

test("cli: echo prints what pub publishes (and typed arrays shortened)", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  const env = { PLEXUS_GRAPH: address };
  const echo = spawnPlexus(["echo", "greetings", "-n", "3"], env);
  await until("echo subscribed", () => server.snapshot().subscribers.some((s) => s.topic === "greetings"));
  const pub = await plexus(["pub", "greetings", '{"hello":"world","n":[1,2]}', "-n", "2"], env);
  assert.equal(pub.code, 0, pub.stderr);
  assert.match(pub.stderr, /published 2 message\(s\) on greetings to 1 subscriber\(s\)/);
  assert.equal(await echo.line(), '{"hello":"world","n":[1,2]}');
  assert.equal(await echo.line(), '{"hello":"world","n":[1,2]}');
  await using node = await connect({ address, embedded: false });
  const p = await node.publisher("greetings");
  await p.publish({ samples: new Float64Array([1.5, 2, 3]) });
  assert.equal(await echo.line(), '{"samples":"<Float64Array 3: 1.5, 2, 3>"}');
  assert.equal(await echo.exited, 0, echo.stderr());
});

test("cli: start, status, stop of the background GraphServer (state in PLEXUS_STATE_DIR)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plexus-state-"));
  const port = await freePort();
  const env = { PLEXUS_GRAPH: `127.0.0.1:${port}`, PLEXUS_STATE_DIR: dir };
  try {
    const started = await plexus(["start"], env);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, new RegExp(`started in the background \\(pid \\d+\\), listening on 127\\.0\\.0\\.1:${port}`));
    const again = await plexus(["start"], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already runs at 127\.0\.0\.1:\d+/);
    const status = await plexus(["status", "--json"], env);
    assert.equal(status.code, 0, status.stderr);
    const info = JSON.parse(status.stdout) as { running: boolean; daemon: boolean; pid: number; address: string };
    assert.deepEqual([info.running, info.daemon, info.address], [true, true, `127.0.0.1:${port}`]);
    // nodes use it
    await using node = await connect({ address: `127.0.0.1:${port}`, embedded: false });
    await node.publisher("via-daemon");
    const graph = await plexus(["graph", "-f", "json"], env);
    assert.deepEqual((JSON.parse(graph.stdout) as { topics: string[] }).topics, ["via-daemon"]);
    await node.close();
    const stopped = await plexus(["stop"], env);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`stopped the GraphServer at 127\\.0\\.0\\.1:${port} \\(pid ${info.pid}\\)`));
    assert.throws(() => process.kill(info.pid, 0), "the daemon is gone");
    const after = await plexus(["status"], env);
    assert.equal(after.code, 3);
    const twice = await plexus(["stop"], env);
    assert.equal(twice.code, 3);
    assert.match(twice.stderr, /no background GraphServer is running/);
  } finally {
    await plexus(["stop"], env);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cli: start reports a server that cannot listen (port taken) and exits 1", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const dir = mkdtempSync(join(tmpdir(), "plexus-state-"));
  try {
    const r = await plexus(["start"], { PLEXUS_GRAPH: `127.0.0.1:${server.address.port}`, PLEXUS_STATE_DIR: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not start: .*is in use/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cli: serve runs in the foreground with the dashboard and stops on SIGTERM", async () => {
  const port = await freePort();
  const serve = spawnPlexus(["serve", "--dashboard"], { PLEXUS_GRAPH: `127.0.0.1:${port}` });
  assert.equal(await serve.line(), `GraphServer listening on 127.0.0.1:${port}`);
  const url = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(await serve.line())?.[1];
  assert.ok(url, "prints the dashboard URL");
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>Plexus dashboard<\/title>/);
  const state = (await (await fetch(`${url}api/state`)).json()) as { snapshot: { topics: string[] } };
  assert.deepEqual(state.snapshot.topics, []);
  const refused = await plexus(["serve"], { PLEXUS_GRAPH: `127.0.0.1:${port}` });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is in use/);
  serve.proc.kill("SIGTERM");
  assert.equal(await serve.exited, 0);
});

test("cli: serve refuses a non-loopback address without TLS and a token", async () => {
  const r = await plexus(["serve", "--address", "0.0.0.0:0"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /requires tls and an access token \[ERR_PLEXUS_ACCESS_DENIED\]/);
});

test("cli: demo runs a producer, a transform worker and shm + tcp consumers, a service and a queue, with rates and latencies", async () => {
  const port = await freePort();
  const r = await plexus(["demo", "--duration", "4", "--rate", "500", "--size", "256"], { PLEXUS_GRAPH: `127.0.0.1:${port}` }, 60_000);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^GraphServer: 127\.0\.0\.1:\d+ \(embedded in this process\)$/m);
  assert.match(r.stdout, /^pipeline: producer \(pid \d+\) -> demo\/raw -> transform \(worker thread\) -> demo\/filtered -> consumers shm \(pid \d+\), tcp \(pid \d+\)$/m);
  const ticks = r.stdout.split("\n").filter((l) => l.startsWith("["));
  assert.ok(ticks.length >= 3, r.stdout);
  assert.match(r.stdout, /^request\/response: consumer tcp \(pid \d+\) -> demo\/peak -> this process \(pid \d+\), one request per 10 messages$/m);
  const flowing = ticks.filter((l) => /demo\/raw [1-9][\d.]*k? msg\/s .*\| shm [1-9][\d.]*k? msg\/s p50 [\d.]+ ms p99 [\d.]+ ms \| tcp [1-9][\d.]*k? msg\/s p50 [\d.]+ ms p99 [\d.]+ ms/.test(l));
  assert.ok(flowing.length >= 1, `data flows to both consumers:\n${r.stdout}`);
  const answered = ticks.filter((l) => /\| demo\/peak [1-9][\d.]*k? req\/s p50 [\d.]+ ms p99 [\d.]+ ms/.test(l));
  assert.ok(answered.length >= 1, `the tcp consumer's requests are answered:\n${r.stdout}`);
  assert.match(r.stdout, /^queue: consumer shm \(pid \d+\) -> tcp:\/\/127\.0\.0\.1:\d+ \(queue server in this process\), one acknowledged put per message$/m);
  const acked = ticks.filter((l) => /\| queue [1-9][\d.]*k? acked puts\/s p50 [\d.]+ ms p99 [\d.]+ ms/.test(l));
  assert.ok(acked.length >= 1, `the shm consumer's puts are acknowledged:\n${r.stdout}`);
  assert.doesNotMatch(r.stdout, /failed/);
  assert.match(r.stdout, /^demo stopped$/m);
  // nothing left behind: the port is free again
  await using probe = await GraphServer.start({ port });
  assert.equal(probe.address.port, port);
});

test("cli: bench lists its rows and refuses unknown ones (exit 2)", async () => {
  const rows = await plexus(["bench", "--help-rows"]);
  assert.equal(rows.code, 0, rows.stderr);
  assert.match(rows.stdout, /rows: .*\blat\b/);
  const bad = await plexus(["bench", "no-such-row"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown row\(s\): no-such-row/);
});

test("cli: installed without the benchmark suite (as published), bench says so and exits 1 (2 for a bad option, checked first)", () => {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "plexus-installed-"));
  try {
    cpSync(join(root, "dist/src"), join(dir, "dist/src"), { recursive: true }); // what `files` ships, without dist/bench
    cpSync(join(root, "package.json"), join(dir, "package.json"));
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
    symlinkSync(join(root, "build"), join(dir, "build"));
    const cli = join(dir, "dist/src/cli/main.js");
    assert.throws(
      () => execFileSync(process.execPath, [cli, "bench", "--quick"], { stdio: "pipe", env: { ...process.env, NO_COLOR: "1" } }),
      (e: { status?: number; stderr?: Buffer }) => e.status === 1 && /the benchmark suite is not installed with this package/.test(String(e.stderr)),
    );
    assert.throws(
      () => execFileSync(process.execPath, [cli, "bench", "--pin", "diagonal"], { stdio: "pipe", env: { ...process.env, NO_COLOR: "1" } }),
      (e: { status?: number; stderr?: Buffer }) => e.status === 2 && /--pin .*diagonal.* is invalid/.test(String(e.stderr)),
    );
    assert.match(execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" }), /Usage: plexus/, "the rest of the CLI works");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cli: demo processes do not outlive a demo killed with SIGKILL", async () => {
  const port = await freePort();
  const demo = spawnPlexus(["demo", "--rate", "200", "--size", "64"], { PLEXUS_GRAPH: `127.0.0.1:${port}` });
  let line = "";
  while (!line.startsWith("pipeline:")) line = await demo.line();
  const pids = [...line.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 3, line);
  demo.proc.kill("SIGKILL");
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await until("the producer and both consumers to exit", () => pids.every((p) => !alive(p)), 10_000);
});

test("cli: serve off loopback needs TLS and a token; clients and the dashboard present them", async () => {
  const certs = testCerts();
  const dir = mkdtempSync(join(tmpdir(), "plexus-tls-cli-"));
  const file = (name: string, text: string): string => (writeFileSync(join(dir, name), text), join(dir, name));
  const key = file("server.key", certs.serverKey);
  const cert = file("server.crt", certs.serverCert);
  const ca = file("ca.crt", certs.ca);
  const port = await freePort();
  const token = "a-long-enough-token";
  const serve = spawnPlexus(["serve", "--address", `0.0.0.0:${port}`, "--tls-key", key, "--tls-cert", cert, "--token", token, "--dashboard"], { PLEXUS_TLS_CA: ca });
  try {
    assert.equal(await serve.line(), `GraphServer listening on 0.0.0.0:${port}`);
    const url = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/\?token=a-long-enough-token)$/.exec(await serve.line())?.[1];
    assert.ok(url, "the dashboard URL carries the token");
    assert.equal((await fetch(url.split("?")[0])).status, 401);
    assert.equal((await fetch(url)).status, 200);
    const env = { PLEXUS_GRAPH: `127.0.0.1:${port}`, PLEXUS_TLS_CA: ca };
    const denied = await plexus(["graph"], env);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /wrong or missing access token \[ERR_PLEXUS_ACCESS_DENIED\]/);
    const echo = spawnPlexus(["echo", "secure", "-n", "1"], { ...env, PLEXUS_TOKEN: token });
    const graph = await until("echo's subscriber in the graph", async () => {
      const r = await plexus(["graph", "-f", "json"], { ...env, PLEXUS_TOKEN: token });
      return r.code === 0 && (JSON.parse(r.stdout) as { topics: string[] }).topics.includes("secure") ? r : undefined;
    });
    assert.equal(graph.code, 0);
    // the dashboard's own subscriber joins over TLS with the token
    const ws = new WebSocket(`${url.replace("http", "ws").replace("/?", "/ws?")}`);
    const samples = new Promise<{ items: { summary: string }[] }>((resolve) =>
      ws.on("message", (d) => {
        const m = JSON.parse(String(d)) as { type: string; items: { summary: string }[] };
        if (m.type === "samples" && m.items.length > 0) resolve(m);
      }),
    );
    await new Promise((r) => ws.once("open", r));
    ws.send(JSON.stringify({ type: "watch", topic: "secure" }));
    await until("the dashboard subscribed", async () => {
      const r = await plexus(["graph", "-f", "json"], { ...env, PLEXUS_TOKEN: token });
      return (JSON.parse(r.stdout) as { subscribers: unknown[] }).subscribers.length === 2;
    });
    const pub = await plexus(["pub", "secure", '{"ok":true}'], { ...env, PLEXUS_TOKEN: token });
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(await echo.line(), '{"ok":true}');
    assert.equal((await samples).items[0].summary, '{"ok":true}');
    ws.close();
  } finally {
    serve.proc.kill("SIGTERM");
    await serve.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
