/**
 * Queues over JetStream (src/bridge/queues.ts) against real nats-server processes the test starts:
 * export and import in both delivery modes, typed arrays, the max_payload limit, de-duplication
 * of a publication whose acknowledgement was lost, failures reaching the producer's put, garbage
 * on the queue's subject, an importing bridge killed (SIGKILL, its own process) with messages
 * unacknowledged, 10,000 puts across the loss of a node of a three-node cluster (replicas 3),
 * and the missing `@nats-io/jetstream` package.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { ClosedError, FrameTooLargeError, NoServerError, ProtocolError, queue, ResourceExhaustedError, TimeoutError, type PlexusError, type QueueMessage, type QueueServer } from "../src/index.js";
import type { BridgeContext } from "../src/bridge/context.js";
import { encode } from "../src/codec/index.js";
import { connectNats, loadNats } from "../src/bridge/nats.js";
import { QueueBridge, streamNameOf, type QueueBridgeSpec } from "../src/bridge/queues.js";
import { fixture } from "./helpers/child.js";
import { eventually } from "./helpers/eventually.js";
import { natsCluster, natsMissing, natsServer, type NatsServer } from "./helpers/nats.js";
import { startProxy } from "./helpers/proxy.js";

const skip = natsMissing();
const root = fileURLToPath(new URL("../..", import.meta.url));

interface Ctx extends BridgeContext {
  reports: PlexusError[];
  close(): Promise<void>;
}

/** A bridge context on its own NATS connection; reports are kept. */
async function context(servers: string | string[], origin = "host-a"): Promise<Ctx> {
  const nats = await loadNats();
  const nc = await connectNats(nats, { servers });
  const reports: PlexusError[] = [];
  return { nats, nc, prefix: "plexus", origin, reports, report: (e) => reports.push(e), online: () => true, connected: () => Promise.resolve(), close: () => nc.close() };
}

let counter = 0;
/** A queue name of its own for each test (streams outlive the bridges). */
function fresh(base: string): string {
  return `${base}/${++counter}`;
}

/** Takes `n` messages from `app`, releasing each. */
async function take(app: QueueServer, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const m = await app.get({ timeout: 20_000 });
    out.push(m.value);
    m.release();
  }
  return out;
}

describe("queues over JetStream", { skip }, () => {
  let server: NatsServer;
  let a: Ctx; // the producers' host
  let b: Ctx; // the consumers' host
  before(async () => {
    server = await natsServer({ jetstream: true });
    a = await context(server.url, "host-a");
    b = await context(server.url, "host-b");
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await server?.close();
  });

  /** An export bridge on host a and an import bridge into a new application server on host b. */
  async function pair(spec: Omit<QueueBridgeSpec, "direction" | "url">, importSpec: Partial<QueueBridgeSpec> = {}, appOpts: { maxMessage?: number } = {}) {
    const app = await queue.server({ url: "tcp://127.0.0.1:0", ...appOpts });
    const out = await QueueBridge.start(a, { ...spec, direction: "export", url: "tcp://127.0.0.1:0" });
    const inn = await QueueBridge.start(b, { ...spec, ...importSpec, direction: "import", url: app.url });
    const producer = await queue.client({ url: out.url, slots: 64 });
    return {
      app,
      out,
      inn,
      producer,
      async close() {
        await producer.close();
        await out.close();
        await inn.close();
        await app.close();
      },
    };
  }

  test("export -> import, fast: every put resolves once stored, values arrive as the codec carries them (typed arrays as typed arrays)", async () => {
    const name = fresh("jobs");
    const p = await pair({ name });
    try {
      const values = Array.from({ length: 50 }, (_, i) => ({ n: i, data: new Float64Array([i, i / 2, Math.PI]), tag: `job-${i}` }));
      await Promise.all(values.map((v) => p.producer.put(v)));
      const got = (await take(p.app, values.length)) as typeof values;
      assert.deepEqual(
        got.map((v) => v.n).sort((x, y) => x - y),
        values.map((v) => v.n),
      );
      for (const v of got) {
        assert.ok(v.data instanceof Float64Array, "a Float64Array arrives as one");
        assert.deepEqual([...v.data], [v.n, v.n / 2, Math.PI]);
        assert.equal(v.tag, `job-${v.n}`);
      }
      await eventually("the importer's acknowledgements", () => p.inn.stats().delivered === values.length);
      const so = p.out.stats();
      assert.equal(so.forwarded, 50);
      assert.equal(so.stored, 50);
      assert.equal(so.errors, 0);
      assert.equal(p.out.stream, streamNameOf("plexus", name));
      assert.equal(p.out.subject, `plexus.q.jobs.${counter}`);
    } finally {
      await p.close();
    }
  });

  test("export -> import, reliable: a put resolves only once the consuming application released the message", async () => {
    const p = await pair({ name: fresh("jobs"), delivery: "reliable" });
    try {
      let resolved = false;
      const put = p.producer.put({ n: 1 }).then(() => (resolved = true));
      const m: QueueMessage = await p.app.get({ timeout: 20_000 });
      assert.deepEqual(m.value, { n: 1 });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(resolved, false, "not resolved while the application holds the message");
      m.release();
      await put;
      assert.equal(p.out.stats().delivered, 1);
      // And many at once.
      const puts = Array.from({ length: 100 }, (_, i) => p.producer.put({ n: i }));
      assert.equal((await take(p.app, 100)).length, 100);
      await Promise.all(puts);
      assert.equal(p.out.stats().delivered, 101);
      assert.equal(p.out.stats().pending, 0);
    } finally {
      await p.close();
    }
  });

  test("reliable: a message the importer can never put (above the application's maxMessage) rejects the producer's put with FrameTooLargeError", async () => {
    const p = await pair({ name: fresh("jobs"), delivery: "reliable" }, {}, { maxMessage: 1024 });
    try {
      await assert.rejects(p.producer.put(new Uint8Array(4096)), FrameTooLargeError);
      const [, got] = await Promise.all([p.producer.put(new Uint8Array(16)), take(p.app, 1)]); // reliable: resolves once taken
      assert.equal(got[0] instanceof Uint8Array, true);
    } finally {
      await p.close();
    }
  });

  test("a message above the NATS server's max_payload is refused to the producer with FrameTooLargeError (no chunking for queues)", async () => {
    const small = await natsServer({ jetstream: true, maxPayload: 64 * 1024 });
    const c = await context(small.url);
    const out = await QueueBridge.start(c, { name: fresh("big"), direction: "export", url: "tcp://127.0.0.1:0" });
    const producer = await queue.client({ url: out.url });
    try {
      await assert.rejects(producer.put(new Uint8Array(100 * 1024)), FrameTooLargeError);
      await producer.put(new Uint8Array(60 * 1024)); // fits with the headers
      assert.equal(out.stats().stored, 1);
    } finally {
      await producer.close();
      await out.close();
      await c.close();
      await small.close();
    }
  });

  test("de-duplication: a publication whose acknowledgement was lost is published again with the same id and stored once", async () => {
    const proxy = await startProxy(server.port);
    const c = await context(`nats://127.0.0.1:${proxy.port}`);
    const name = fresh("dedup");
    const out = await QueueBridge.start(c, { name, direction: "export", url: "tcp://127.0.0.1:0", publishTimeout: 300 });
    const producer = await queue.client({ url: out.url });
    try {
      const mod = await import("@nats-io/jetstream");
      const jsm = await mod.jetstreamManager(a.nc);
      proxy.deaf = true; // the stream stores the message, its acknowledgement is lost
      const put = producer.put({ n: 1 });
      for (let i = 0; i < 500 && (await jsm.streams.info(out.stream)).state.messages === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 700)); // a publication again, unanswered too
      proxy.deaf = false;
      await put;
      const s = out.stats();
      assert.ok(s.duplicates >= 1, `the stream answered "duplicate" (${JSON.stringify(s)})`);
      assert.equal((await jsm.streams.info(out.stream)).state.messages, 1, "stored once");
      await producer.put({ n: 2 });
      const app = await queue.server({ url: "tcp://127.0.0.1:0" });
      const inn = await QueueBridge.start(b, { name, direction: "import", url: app.url });
      assert.deepEqual(await take(app, 2), [{ n: 1 }, { n: 2 }], "delivered once, then the next");
      await inn.close();
      await app.close();
    } finally {
      await producer.close();
      await out.close();
      await c.close();
      await proxy.close();
    }
  });

  test("closing an exporting bridge while JetStream does not answer: the pending put rejects with ClosedError after the linger, with a PLEXUS_LINGER warning", async () => {
    const proxy = await startProxy(server.port);
    const c = await context(`nats://127.0.0.1:${proxy.port}`);
    const out = await QueueBridge.start(c, { name: fresh("closing"), direction: "export", url: "tcp://127.0.0.1:0" });
    const producer = await queue.client({ url: out.url });
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => void (w.code === "PLEXUS_LINGER" && warnings.push(w.message));
    process.on("warning", onWarning);
    try {
      proxy.deaf = true;
      const put = producer.put("never acknowledged").then(
        () => undefined,
        (e: unknown) => e,
      );
      await eventually("the message taken", () => out.stats().forwarded === 1);
      await out.close({ linger: 100 });
      assert.ok((await put) instanceof ClosedError, String(await put));
      await eventually("the warning", () => warnings.length === 1);
      assert.match(warnings[0] as string, /closed with 1 message\(s\) not stored within the linger of 100 ms/);
    } finally {
      process.off("warning", onWarning);
      await producer.close();
      await out.close();
      await c.close();
      await proxy.close();
    }
  });

  test("failures reach the producer's put: no stream any more -> NoServerError once storeTimeout passed", async () => {
    const out = await QueueBridge.start(a, { name: fresh("gone"), direction: "export", url: "tcp://127.0.0.1:0", storeTimeout: 800, publishTimeout: 200 });
    const producer = await queue.client({ url: out.url });
    try {
      await producer.put("stored");
      const mod = await import("@nats-io/jetstream");
      const jsm = await mod.jetstreamManager(a.nc);
      await jsm.streams.delete(out.stream);
      await assert.rejects(producer.put("lost?"), (e: unknown) => {
        assert.ok(e instanceof NoServerError, String(e));
        assert.match(e.message, /no JetStream stream answered/);
        return true;
      });
      assert.equal(out.stats().errors, 1);
    } finally {
      await producer.close();
      await out.close();
    }
  });

  test("a full stream (maxMessages) refuses the put with ResourceExhaustedError at once; the stream keeps what it had", async () => {
    const out = await QueueBridge.start(a, { name: fresh("full"), direction: "export", url: "tcp://127.0.0.1:0", maxMessages: 2 });
    const producer = await queue.client({ url: out.url });
    try {
      await producer.put(1);
      await producer.put(2);
      await assert.rejects(producer.put(3), ResourceExhaustedError);
      const mod = await import("@nats-io/jetstream");
      assert.equal((await (await mod.jetstreamManager(a.nc)).streams.info(out.stream)).state.messages, 2);
    } finally {
      await producer.close();
      await out.close();
    }
  });

  test("garbage on the queue's subject: counted, reported as ProtocolError, dropped; the queue goes on", async () => {
    const p = await pair({ name: fresh("garbage") });
    try {
      a.nc.publish(p.out.subject, new TextEncoder().encode("not a plexus frame"));
      a.nc.publish(p.out.subject, new Uint8Array(0));
      a.nc.publish(p.out.subject, encode({ a: 1, data: new Float64Array(64) }).subarray(0, 40)); // a frame cut short
      await p.producer.put({ after: "garbage" });
      assert.deepEqual(await take(p.app, 1), [{ after: "garbage" }]);
      await eventually("all three reported", () => b.reports.filter((e) => e instanceof ProtocolError).length >= 3);
      assert.match(b.reports.find((e) => e instanceof ProtocolError)!.message, /is not a Plexus frame/);
      assert.ok(p.inn.stats().errors >= 3);
    } finally {
      await p.close();
      b.reports.length = 0;
    }
  });

  test("an importing bridge killed (SIGKILL, its own process) with messages unacknowledged: JetStream delivers them to another importer", async () => {
    const name = fresh("kill");
    const out = await QueueBridge.start(a, { name, direction: "export", url: "tcp://127.0.0.1:0" });
    const producer = await queue.client({ url: out.url, slots: 64 });
    const victim = fixture("bridge-queue-peer", { servers: [server.url], prefix: "plexus", name, ackWait: 1500, window: 8, hold: true });
    try {
      assert.equal(await victim.line(), "ready");
      const N = 200;
      await Promise.all(Array.from({ length: N }, (_, i) => producer.put({ i })));
      const held: number[] = [];
      for (let k = 0; k < 8; k++) held.push((JSON.parse((await victim.line()).slice(4)) as { i: number }).i);
      victim.proc.kill("SIGKILL");
      await victim.exited;
      const app = await queue.server({ url: "tcp://127.0.0.1:0" });
      const inn = await QueueBridge.start(b, { name, direction: "import", url: app.url, ackWait: 1500 });
      const got = (await take(app, N)) as { i: number }[];
      assert.deepEqual(
        got.map((v) => v.i).sort((x, y) => x - y),
        Array.from({ length: N }, (_, i) => i),
        "every message, those the killed importer held included",
      );
      assert.ok(inn.stats().redelivered >= held.length, `redelivered ${inn.stats().redelivered} >= ${held.length}`);
      await inn.close();
      await app.close();
    } finally {
      victim.proc.kill("SIGKILL");
      await producer.close();
      await out.close();
    }
  });

  test("without the @nats-io/jetstream package, QueueBridge.start rejects with MissingDependencyError naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "plexus-jsq-"));
    try {
      writeFileSync(
        join(dir, "hooks.mjs"),
        `export async function resolve(specifier, context, next) {
  if (specifier === "@nats-io/jetstream" || specifier.startsWith("@nats-io/jetstream/")) return next(specifier, { ...context, parentURL: import.meta.url });
  return next(specifier, context);
}
`,
      );
      writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url);\n`);
      const mod = pathToFileURL(join(root, "dist", "src", "bridge", "queues.js")).href;
      const script = `
        const { QueueBridge } = await import(${JSON.stringify(mod)});
        const ctx = { nats: {}, nc: {}, prefix: "plexus", origin: "x", report() {} };
        try {
          await QueueBridge.start(ctx, { name: "q", direction: "import", url: "tcp://127.0.0.1:1" });
          console.log(JSON.stringify({ name: "resolved" }));
        } catch (e) {
          console.log(JSON.stringify({ name: e.name, code: e.code, packageName: e.packageName, message: e.message }));
        }
      `;
      const r = await promisify(execFile)(process.execPath, ["--import", pathToFileURL(join(dir, "register.mjs")).href, "--input-type=module", "-e", script], { cwd: dir });
      const e = JSON.parse(r.stdout) as { name: string; code: string; packageName: string; message: string };
      assert.equal(e.name, "MissingDependencyError", JSON.stringify(e));
      assert.equal(e.code, "ERR_PLEXUS_MISSING_DEPENDENCY");
      assert.equal(e.packageName, "@nats-io/jetstream");
      assert.equal(e.message, "the `@nats-io/jetstream` package, needed for queues over the NATS bridge, is not installed: npm install @nats-io/jetstream");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("10,000 puts across the loss of a node in a three-node cluster (replicas 3): every resolved put is delivered", { skip }, async () => {
  const cluster = await natsCluster(3);
  const closers: (() => Promise<void>)[] = [() => cluster.close()];
  try {
    const a = await context(cluster.urls, "host-a");
    closers.unshift(() => a.close());
    const b = await context(cluster.urls, "host-b");
    closers.unshift(() => b.close());
    const name = "failover";
    const app = await queue.server({ url: "tcp://127.0.0.1:0", maxQueue: 100_000 });
    closers.unshift(() => app.close());
    const out = await QueueBridge.start(a, { name, direction: "export", url: "tcp://127.0.0.1:0", replicas: 3, publishTimeout: 1000 });
    closers.unshift(() => out.close());
    // ackWait: what the failed node had sent to the importer and never reached it comes again after it.
    const inn = await QueueBridge.start(b, { name, direction: "import", url: app.url, window: 512, ackWait: 5000 });
    closers.unshift(() => inn.close());
    const producer = await queue.client({ url: out.url, slots: 256, timeout: 60_000 });
    closers.unshift(() => producer.close());
      const N = 10_000;
      const delivered = new Map<number, number>();
      let stop = false;
      const consumer = (async () => {
        while (!stop) {
          let m: QueueMessage<{ i: number }>;
          try {
            m = await app.get({ timeout: 200 });
          } catch (e) {
            if (e instanceof TimeoutError) continue;
            break; // closed
          }
          delivered.set(m.value.i, (delivered.get(m.value.i) ?? 0) + 1);
          m.release();
        }
      })();
      const resolved: number[] = [];
      const failed: string[] = [];
      let killed = false;
      const puts: Promise<void>[] = [];
      for (let i = 0; i < N; i++) {
        puts.push(
          producer.put({ i }).then(
            () => void resolved.push(i),
            (e: PlexusError) => void failed.push(`${i}: ${e.name}`),
          ),
        );
        if (i % 256 === 255) await Promise.race([puts[i - 200], new Promise((r) => setTimeout(r, 50))]);
        if (!killed && resolved.length >= N / 3) {
          killed = true;
          // The node the exporter is connected to: its bridge must reconnect to another.
          const port = Number(a.nc.getServer().split(":").pop());
          const victim = cluster.servers.find((s) => s.port === port) ?? cluster.servers[0];
          await victim.stop();
        }
      }
      await Promise.all(puts);
      assert.ok(killed, "a node was killed mid-stream");
      assert.ok(resolved.length > N / 2, `most puts resolved (${resolved.length}; failed: ${failed.slice(0, 5).join(", ")})`);
      await eventually(
        "every resolved put delivered",
        () => resolved.every((i) => delivered.has(i)),
        30_000,
      ).catch(() => {
        const missing = resolved.filter((i) => !delivered.has(i));
        assert.fail(`${missing.length} resolved puts were not delivered (e.g. ${missing.slice(0, 10).join(", ")}); stats out ${JSON.stringify(out.stats())} in ${JSON.stringify(inn.stats())}`);
      });
      const twice = [...delivered.values()].filter((n) => n > 1).length;
      process.stdout.write(`# resolved ${resolved.length}, failed ${failed.length}, delivered ${delivered.size}, delivered twice ${twice}; out ${JSON.stringify(out.stats())}; in ${JSON.stringify(inn.stats())}\n`);
      stop = true;
      await consumer;
  } finally {
    for (const c of closers) await c();
  }
});
