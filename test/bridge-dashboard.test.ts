/**
 * The dashboard of a graph joined to another through the NATS bridge, in headless Chromium: the
 * other graph's publisher and service are drawn as that graph's host, with the queue it bridges,
 * and the topic's rate moves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { GraphServer, connect } from "../src/index.js";
import { Dashboard } from "../src/dashboard/server.js";
import { Bridge } from "../src/bridge/index.js";
import { natsServer } from "./helpers/nats.js";
import { until } from "./helpers/cli.js";

const CHROMIUM = process.env.PLEXUS_CHROMIUM || "/usr/bin/chromium";

test("dashboard in Chromium: another graph's publisher and service, through a bridge, drawn as its host", { timeout: 90_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: \`node scripts/ensure-system.mjs\` installs it (npm test runs it)`);
  const nats = await natsServer({ jetstream: true });
  const graphs = await Promise.all([GraphServer.start({ port: 0 }), GraphServer.start({ port: 0 })]);
  const [addrA, addrB] = graphs.map((g) => `127.0.0.1:${g.address.port}`);
  const bridges = [
    await Bridge.start({ nats: nats.url, name: "dash-a", graph: { address: addrA, embedded: false }, export: [">"], announceInterval: 200, scanInterval: 50, queues: [{ name: "renders", direction: "export", url: "tcp://127.0.0.1:0" }] }),
    await Bridge.start({ nats: nats.url, name: "dash-b", graph: { address: addrB, embedded: false }, import: [">"], announceInterval: 200, scanInterval: 50 }),
  ];
  const appA = await connect({ address: addrA, embedded: false, name: "camera" });
  const appB = await connect({ address: addrB, embedded: false, name: "viewer" });
  const dash = await Dashboard.start({ source: graphs[1], graphAddress: addrB, interval: 200 });
  const profile = mkdtempSync(join(tmpdir(), "plexus-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  let publishing = true;
  try {
    const pub = await appA.publisher<number>("camera/front");
    await appA.server<number, number>("camera/exposure", (n) => n);
    const sub = await appB.subscriber<number>("camera/front", { backpressure: "drop-oldest" });
    void (async () => {
      for (let i = 0; publishing; i++) {
        await pub.publish(i);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until("the viewer to receive", async () => (await sub.receive({ timeout: 5000 })) !== null);
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(dash.url);
    await page.waitForSelector('#graph g[data-topic="camera/front"]', { timeout: 15_000 });
    await until("the remote host drawn", async () => (await page.$$eval("#graph g.node text", (ts) => ts.map((t) => t.textContent ?? ""))).includes("host dash-a"));
    await page.waitForSelector('#graph g[data-service="camera/exposure"]');
    await until("the other graph's queue drawn", async () => (await page.$$eval("#graph g.node text", (ts) => ts.map((t) => t.textContent ?? ""))).includes("queue renders"));
    await until("the bridged topic's rate to move", async () => Number(await page.$eval('#graph g[data-topic="camera/front"]', (g) => g.getAttribute("data-rate"))) > 0);
    assert.deepEqual(errors, []);
  } finally {
    publishing = false;
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await dash.close();
    for (const b of bridges) await b.close();
    await appA.close({ linger: 0 });
    await appB.close({ linger: 0 });
    for (const g of graphs) await g.close();
    await nats.close();
  }
});
