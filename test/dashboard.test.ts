/**
 * The dashboard: its access rules and WebSocket over real HTTP, and the page itself in headless
 * Chromium (playwright-core) against `plexus demo --dashboard` — the graph shows the demo's
 * topics and its request/response service, rates move, a watched topic shows latencies and values. Screenshot in test-output/.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { chromium } from "playwright-core";
import { GraphServer } from "../src/graph/server.js";
import { connect } from "../src/node/node.js";
import { Dashboard } from "../src/dashboard/server.js";
import { freePort, spawnPlexus, until } from "./helpers/cli.js";
import { execFileSync } from "node:child_process";

const CHROMIUM = process.env.PLEXUS_CHROMIUM || "/usr/bin/chromium";
const OUTPUT = fileURLToPath(new URL("../../test-output/", import.meta.url));

/** Opens a WebSocket and collects its JSON messages. */
function socket(url: string): Promise<{ ws: WebSocket; messages: Record<string, unknown>[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: Record<string, unknown>[] = [];
    ws.on("message", (d) => messages.push(JSON.parse(String(d)) as Record<string, unknown>));
    ws.once("open", () => resolve({ ws, messages }));
    ws.once("error", reject);
  });
}

test("dashboard: loopback by default, a token off loopback, checked on the page, the API and the socket", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const graphAddress = `127.0.0.1:${server.address.port}`;
  await assert.rejects(Dashboard.start({ source: server, graphAddress, host: "0.0.0.0" }), { code: "ERR_PLEXUS_ACCESS_DENIED" });
  await assert.rejects(Dashboard.start({ source: server, graphAddress, token: "short" }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await using dash = await Dashboard.start({ source: server, graphAddress, token: "s3cret-token" });
  assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=s3cret-token$/);
  const base = dash.url.split("?")[0];
  assert.equal((await fetch(base)).status, 401);
  assert.equal((await fetch(`${base}?token=wrong-token!`)).status, 401);
  assert.equal((await fetch(`${base}api/state`)).status, 401);
  assert.equal((await fetch(dash.url)).status, 200);
  assert.equal((await fetch(`${base}nothing?token=s3cret-token`)).status, 404);
  await assert.rejects(socket(`${base.replace("http", "ws")}ws`), /401/);
  const { ws, messages } = await socket(`${base.replace("http", "ws")}ws?token=s3cret-token`);
  await until("the first state", () => messages.find((m) => m.type === "state"));
  ws.close();
});

test("dashboard: state pushes, watching a topic streams its messages; bad requests get an error, the socket stays", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const graphAddress = `127.0.0.1:${server.address.port}`;
  await using dash = await Dashboard.start({ source: server, graphAddress, interval: 100 });
  await using node = await connect({ address: graphAddress, embedded: false });
  const pub = await node.publisher<{ sentAt: number; v: number; raw: Float32Array }>("meter");
  const { ws, messages } = await socket(`${dash.url.replace("http", "ws")}ws`);
  ws.send("{not json");
  ws.send(JSON.stringify({ type: "watch", topic: "has space" }));
  await until("an error for the bad topic", () => messages.find((m) => m.type === "error"));
  ws.send(JSON.stringify({ type: "watch", topic: "meter" }));
  await until("the dashboard's tap subscribed", () => server.snapshot().subscribers.some((s) => s.topic === "meter"));
  const timer = setInterval(() => void pub.publish({ sentAt: performance.timeOrigin + performance.now(), v: 42, raw: new Float32Array([1, 2]) }), 5);
  try {
    const samples = await until("samples", () => messages.find((m) => m.type === "samples" && (m.items as unknown[]).length > 0)) as { topic: string; items: { numbers: Record<string, number>; summary: string; latency: number }[]; latencies: number[] };
    assert.equal(samples.topic, "meter");
    assert.equal(samples.items[0].numbers.v, 42);
    assert.equal(samples.items[0].numbers["mean(raw)"], 1.5);
    assert.match(samples.items[0].summary, /"raw":"<Float32Array 2: 1, 2>"/);
    assert.ok(samples.latencies.length > 0 && samples.latencies.every((l) => l >= 0 && l < 10_000));
    const state = await until("a state with the topic's rate", () => messages.find((m) => m.type === "state" && (m.stats as { topics: { topic: string; rate: number }[] }).topics.some((t) => t.topic === "meter" && t.rate > 0)));
    assert.ok(state);
  } finally {
    clearInterval(timer);
  }
  ws.close();
  await until("the tap closed with its last watcher", () => !server.snapshot().subscribers.some((s) => s.topic === "meter"));
});

test("dashboard in Chromium: the demo's graph, moving rates, latency histogram and live values", { timeout: 90_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: \`node scripts/ensure-system.mjs\` installs it (npm test runs it)`);
  const port = await freePort();
  const demo = spawnPlexus(["demo", "--dashboard", "--rate", "300", "--size", "128"], { PLEXUS_GRAPH: `127.0.0.1:${port}` });
  const profile = mkdtempSync(join(tmpdir(), "plexus-chromium-"));
  let url: string | undefined;
  for (let i = 0; i < 5 && url === undefined; i++) url = /^dashboard: (http:\S+)$/.exec(await demo.line())?.[1];
  assert.ok(url, "the demo prints the dashboard URL");
  await until("the pipeline", async () => (await demo.line()).startsWith("pipeline:"));
  // A fresh profile (--user-data-dir, given the way playwright wants it).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${url}?watch=demo/filtered`);
    await page.waitForSelector('#graph g[data-topic="demo/raw"]', { timeout: 15_000 });
    await page.waitForSelector('#graph g[data-topic="demo/filtered"]');
    const topics = await page.$$eval("#graph g[data-topic]", (gs) => gs.map((g) => g.getAttribute("data-topic")).sort());
    assert.deepEqual(topics, ["demo/filtered", "demo/raw"]);
    const nodes = await page.$$eval("#graph g.node text", (ts) => ts.map((t) => t.textContent ?? ""));
    for (const name of ["demo producer", "demo transform (worker)", "demo consumer (shm)", "demo consumer (tcp)", "demo service (peak)"]) assert.ok(nodes.includes(name), `${name} in ${nodes.join(", ")}`);
    // the demo is a pipeline: its units grouped by collection, each with its placement and settings
    await page.waitForSelector('#pipelines fieldset[data-collection="demo"] .unit[data-unit="demo/PRODUCER"]');
    const units = await page.$$eval("#pipelines .unit", (rows) => rows.map((r) => [r.getAttribute("data-unit"), r.querySelector(".placement")?.textContent, r.querySelector(".settings")?.textContent]));
    const unit = (path: string): (string | null | undefined)[] | undefined => units.find((u) => u[0] === path);
    assert.match(unit("demo/PRODUCER")?.[1] ?? "", /^process, pid \d+$/, JSON.stringify(units));
    assert.match(unit("demo/PRODUCER")?.[2] ?? "", /\brate=300 size=128\b/);
    assert.match(unit("demo/TRANSFORM")?.[1] ?? "", new RegExp(`^worker, pid ${demo.proc.pid} thread \\d+$`));
    for (const path of ["demo/SHM", "demo/TCP"]) assert.match(unit(path)?.[1] ?? "", /^process, pid \d+$/);
    assert.match(await page.$eval('#pipelines fieldset[data-collection="demo"] .flows', (d) => d.textContent ?? ""), /PRODUCER → demo\/raw \(OUTPUT\).*demo\/raw → TRANSFORM \(INPUT\)/);
    assert.equal(await page.$$eval('#services tr[data-service$="#settings"]', (rs) => rs.length), 0, "the units' settings services are shown with the units");
    await page.waitForSelector('#graph g[data-service="demo/peak"]');
    await until("a request rate on the service", async () => Number(await page.$eval('#graph g[data-service="demo/peak"]', (g) => g.getAttribute("data-rate"))) > 0);
    await until("the service's rate and round trip drawn", async () => /^[1-9][\d.]*k? req\/s · [\d.]+ ms$/.test(await page.$eval('#graph g[data-service="demo/peak"] text.rate', (t) => t.textContent ?? "")));
    assert.match(await page.$eval('#services tr[data-service="demo/peak"] td.rate', (td) => td.textContent ?? ""), /^[1-9][\d.]*k?$/);
    assert.equal(await page.$eval('#services tr[data-service="demo/peak"] td.links', (td) => td.textContent), "shm×1");
    assert.equal(await page.$$eval("#graph path.arrow.serve", (ps) => ps.length), 1);
    const transports = await page.$$eval("#graph text.transport", (ts) => ts.map((t) => t.textContent));
    assert.ok(transports.includes("shm") && transports.includes("tcp"), `link transports drawn: ${transports.join(", ")}`);
    const count = (): Promise<number> => page.$eval('#graph g[data-topic="demo/raw"]', (g) => Number(g.getAttribute("data-messages")));
    const first = await count();
    await until("the message count to move", async () => (await count()) > first + 100);
    await until("a positive rate on the page", async () => Number(await page.$eval('#graph g[data-topic="demo/raw"]', (g) => g.getAttribute("data-rate"))) > 0);
    assert.match(await page.$eval('#topics tr[data-topic="demo/raw"] td.rate', (td) => td.textContent ?? ""), /^[1-9][\d.]*k?$/);
    await page.waitForSelector("#latency-histogram rect", { state: "attached", timeout: 15_000 });
    assert.match(await page.$eval("#latency-histogram", (s) => s.textContent ?? ""), /samples · p50 [\d.]+ ms · p90 [\d.]+ ms · p99 [\d.]+ ms/);
    await page.waitForSelector("#value-plot polyline", { state: "attached" });
    assert.match(await page.$eval("#messages", (d) => d.textContent ?? ""), /#\d+ {2}\{"seq":\d+,"sentAt":[\d.]+,"mean":/);
    await page.waitForTimeout(1500); // let the sparklines fill a little
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "dashboard.png"), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    demo.proc.kill("SIGINT");
  }
  assert.equal(await demo.exited, 0, demo.stderr());
});

test("dashboard: plexus/dashboard loads from ESM and CommonJS", () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const esm = execFileSync(process.execPath, ["--input-type=module", "-e", "const d = await import('plexus/dashboard'); console.log(typeof d.Dashboard.start)"], { cwd: root, encoding: "utf8" });
  assert.equal(esm.trim(), "function");
  const cjs = execFileSync(process.execPath, ["-e", "console.log(typeof require('plexus/dashboard').Dashboard.start)"], { cwd: root, encoding: "utf8" });
  assert.equal(cjs.trim(), "function");
});
