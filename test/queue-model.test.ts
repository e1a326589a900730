/**
 * A model of a queue session, checked against the real thing (fast-check model-based testing):
 * random sequences of puts, gets, cut connections (the client reconnects and resumes), outages
 * longer than the client's `reconnectWindow` (the client loses its session and is
 * `disconnected`; its next put starts a new session while the server, whose window is longer,
 * still holds the old one), client crashes with a takeover of the identity by a new client
 * object, and server-side idle turns, in both modes, over real TCP through a relay the test can
 * cut. After each sequence the test settles every put and drains the server, then checks what
 * the queue promises:
 *
 * - every put that resolved was received by the server's application (reliable mode: taken by
 *   `get`; fast mode: queued at the server, so drained by the final gets) — nothing
 *   acknowledged is lost;
 * - no message is received twice (resends after a reconnection are recognised);
 * - nothing is received that was never put;
 * - a put that rejected did so with a typed error (`PeerDeadError` after a takeover, a crash
 *   or a lost session, `ClosedError` after close), never a hang;
 * - the client is usable at the end, whatever happened to its sessions: one more put resolves
 *   and reaches the server's application.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { PlexusError, queue, type QueueClient, type QueueServer } from "../src/index.js";
import { startProxy, type Proxy } from "./helpers/proxy.js";

/** The client's `reconnectWindow` (ms). */
const WINDOW = 200;

/** What the model knows: the values put, and the state of each. */
interface Model {
  /** Values put so far (a put is numbered in order). */
  put: number;
  /** Gets done so far (bounded by the puts, so a get never waits on an empty queue forever). */
  got: number;
  /** Outages so far (each lasts the client's window: few per sequence keep the test short). */
  outages: number;
  /**
   * The client's state as the model predicts it: `disconnected` after an outage until the next
   * put (which connects it again); otherwise `connected` (or on its way: `reconnecting`).
   */
  state: "connected" | "disconnected";
}

/** The real system and what it observed. */
interface Real {
  server: QueueServer;
  identity: Buffer;
  mode: "fast" | "reliable";
  client: QueueClient;
  proxy: Proxy;
  /** Clients and relays of crashed clients, closed at the end. */
  dead: { client: QueueClient; proxy: Proxy }[];
  /** Every put's settlement. */
  puts: Promise<void>[];
  resolved: Set<number>;
  rejected: Map<number, string>;
  received: number[];
  next: number;
}

async function newClient(r: Pick<Real, "server" | "identity" | "mode">): Promise<{ client: QueueClient; proxy: Proxy }> {
  const proxy = await startProxy(r.server.port);
  // A window far shorter than the server's (5 s): after an outage the server still holds the old session.
  const client = await queue.client({ url: `tcp://127.0.0.1:${proxy.port}`, identity: r.identity, mode: r.mode, reconnectWindow: WINDOW, timeout: 5000, linger: 500 });
  return { client, proxy };
}

/** One message taken at the server (if one comes within `ms`), recorded before its release. */
async function takeOne(r: Real, ms: number): Promise<boolean> {
  let m;
  try {
    m = await r.server.get({ timeout: ms });
  } catch {
    return false;
  }
  r.received.push((m.value as { n: number }).n);
  m.release();
  return true;
}

class PutCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    // After an outage nothing connects the client before this put; otherwise it is up or on its way.
    if (m.state === "disconnected") assert.equal(r.client.state, "disconnected", "the client's state after an outage");
    else assert.ok(r.client.state !== "failed" && r.client.state !== "closed", `the client's state: ${r.client.state}`);
    m.put++;
    m.state = "connected"; // a put connects a disconnected client again (a new session)
    const n = r.next++;
    r.puts.push(
      r.client.put({ n }).then(
        () => void r.resolved.add(n),
        (e: unknown) => void r.rejected.set(n, e instanceof PlexusError ? e.code : `untyped: ${String(e)}`),
      ),
    );
    // Most puts reach the server before the next command (what a takeover must not lose), some not.
    await new Promise((resolve) => (n % 4 === 0 ? setImmediate(resolve) : setTimeout(resolve, 2)));
  }
  toString(): string {
    return "put";
  }
}

class GetCommand implements fc.AsyncCommand<Model, Real> {
  check(m: Model): boolean {
    return m.got < m.put;
  }
  async run(m: Model, r: Real): Promise<void> {
    if (await takeOne(r, 200)) m.got++;
  }
  toString(): string {
    return "get";
  }
}

/** The connection drops (both sides see a reset): the client reconnects and resumes its session. */
class CutCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    r.proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  toString(): string {
    return "cut";
  }
}

/**
 * The server is unreachable for longer than the client's window: the client loses its session
 * (what it had pending rejects) and waits, disconnected, for its next put.
 */
class OutageCommand implements fc.AsyncCommand<Model, Real> {
  check(m: Model): boolean {
    return m.outages < 2;
  }
  async run(m: Model, r: Real): Promise<void> {
    m.outages++;
    m.state = "disconnected";
    r.proxy.refusing = true;
    r.proxy.cut();
    const end = Date.now() + 20 * WINDOW;
    while (r.client.state !== "disconnected") {
      assert.ok(Date.now() < end, `the client is still ${r.client.state} ${20 * WINDOW} ms into an outage`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    r.proxy.refusing = false;
  }
  toString(): string {
    return "outage";
  }
}

/** The client's process dies (its relay closes for good) and a new client object takes its identity over. */
class TakeoverCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.dead.push({ client: r.client, proxy: r.proxy });
    await r.proxy.close();
    const next = await newClient(r);
    r.client = next.client;
    r.proxy = next.proxy;
    m.state = "connected";
  }
  toString(): string {
    return "takeover";
  }
}

const commands = [
  fc.constant(new PutCommand()),
  fc.constant(new PutCommand()),
  fc.constant(new GetCommand()),
  fc.constant(new GetCommand()),
  fc.constant(new CutCommand()),
  fc.constant(new OutageCommand()),
  fc.constant(new TakeoverCommand()),
];

async function check(mode: "fast" | "reliable", runs: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
      const server = await queue.server({ url: "tcp://127.0.0.1:0", linger: 500 });
      const identity = randomBytes(16);
      const first = await newClient({ server, identity, mode });
      const r: Real = { server, identity, mode, ...first, dead: [], puts: [], resolved: new Set(), rejected: new Map(), received: [], next: 1 };
      try {
        await fc.asyncModelRun(() => ({ model: { put: 0, got: 0, outages: 0, state: "connected" as const }, real: r }), cmds);
        // Whatever happened to its sessions, the client works: one more put reaches the server.
        const last = r.next++;
        r.puts.push(r.client.put({ n: last }, { timeout: 10000 }).then(() => void r.resolved.add(last)));
        // Settle: the server takes everything that arrives while the puts settle, then what is left.
        const draining = (async () => {
          while (await takeOne(r, 300));
        })();
        await Promise.all(r.puts);
        await draining;
        while (await takeOne(r, 300));
        const received = new Set(r.received);
        assert.equal(received.size, r.received.length, `a message was received twice: ${JSON.stringify(r.received)}`);
        for (const n of received) assert.ok(n >= 1 && n < r.next, `received ${n}, never put`);
        const lost = [...r.resolved].filter((n) => !received.has(n));
        assert.deepEqual(lost, [], `puts that resolved but never reached the server's application (${cmds.toString()})`);
        for (const [n, code] of r.rejected) assert.match(code, /^ERR_PLEXUS_(PEER_DEAD|CLOSED|TIMEOUT)$/, `put ${n} rejected with ${code}`);
        assert.equal(r.resolved.size + r.rejected.size, r.next - 1, "every put settled");
        assert.ok(r.resolved.has(last) && received.has(last), `the client did not recover (${cmds.toString()})`);
      } finally {
        await r.client.close().catch(() => {});
        await r.proxy.close();
        for (const d of r.dead) {
          await d.client.close().catch(() => {});
        }
        await server.close();
      }
    }),
    { numRuns: runs },
  );
}

test("queue model (reliable): across cuts, outages, takeovers and gets, every resolved put is received once and the client recovers", async () => {
  await check("reliable", 25);
});

test("queue model (fast): across cuts, outages, takeovers and gets, every resolved put is received once and the client recovers", async () => {
  await check("fast", 25);
});
