/**
 * A queue client outlives its session: when its server does not come back within
 * `reconnectWindow`, what was pending rejects with PeerDeadError and the client is
 * `disconnected`; its next call connects again with a new session. Across real processes (a
 * server process killed with SIGKILL and restarted on the same address after the window) over
 * TCP and through an MQTT broker; in one process, the state, the events, `closed()`, and a
 * server whose window is longer than the client's (it still holds the old session when the
 * client comes back: the new session's messages must not be taken for duplicates of the old
 * one's).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mqttBroker } from "./helpers/mqtt-broker.js";
import { InvalidArgumentError, PeerDeadError, PlexusError, queue, type QueueClient, type QueueClientEvents } from "../src/index.js";
import { fixture, type Child } from "./helpers/child.js";
import { startProxy } from "./helpers/proxy.js";
import { eventually } from "./helpers/eventually.js";

const peerDead = (e: unknown) => e instanceof PeerDeadError;

/** The events a client emitted, in order. */
function record(client: QueueClient): string[] {
  const seen: string[] = [];
  client.on("disconnect", () => seen.push("disconnect"));
  client.on("session-lost", (e) => seen.push(`session-lost ${e.code}`));
  client.on("reconnect", ({ resumed }) => seen.push(`reconnect ${resumed ? "resumed" : "new"}`));
  return seen;
}

/** True if `p` is still pending after the event loop had a turn. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  return (await Promise.race([p, new Promise((r) => setImmediate(() => r(marker)))])) === marker;
}

/** The "got <id>" lines of a server process until it logged `id`. */
async function until(child: Child, id: number): Promise<void> {
  while ((await child.line(10000)) !== `got ${id}`);
}

/**
 * The server process at `url` (reliable, holding its 3rd message unreleased) takes two puts,
 * then is killed with puts in flight; after the client's window a new server process starts at
 * the same address and echoes what it gets: the client's next put reaches it and comes back.
 */
async function killAndRestart(url: string | undefined, clientOpts: Partial<Parameters<typeof queue.client>[0]>): Promise<void> {
  const first = fixture("queue-peer", { role: "server", url, mode: "reliable", holdAfter: 3 });
  const at = await first.line();
  const client = await queue.client<{ id: number }, { id: number }>({ url: at, mode: "reliable", slots: 4, reconnectWindow: 300, ...clientOpts });
  const events = record(client);
  const puts = Array.from({ length: 8 }, (_, id) => client.put({ id }, { timeout: 20000 }));
  await until(first, 2); // 0 and 1 released, 2 held: 2..5 in flight, 6 and 7 wait for a slot
  await Promise.all([puts[0], puts[1]]);
  first.proc.kill("SIGKILL");
  const outcomes = await Promise.allSettled(puts.slice(2));
  for (const [i, o] of outcomes.entries()) {
    assert.equal(o.status, "rejected", `put ${i + 2} was pending at the kill`);
    assert.ok(peerDead(o.reason), `put ${i + 2}: ${String(o.reason)}`);
  }
  assert.equal(client.state, "disconnected");
  assert.deepEqual(events, ["disconnect", "session-lost ERR_PLEXUS_PEER_DEAD"]);
  // the window has passed: the old client would stay dead, this one comes back on its next put
  const second = fixture("queue-peer", { role: "server", url: at, echo: true }); // echoes in fast mode: no wait for our release
  assert.equal(await second.line(), at, "the new server process listens at the same address");
  await client.put({ id: 100 }, { timeout: 10000 });
  await until(second, 100);
  assert.equal(client.state, "connected");
  assert.deepEqual(events.slice(2), ["reconnect new"]);
  // the get that reaches the end of the lost session is told, then the new session's messages follow
  await assert.rejects(client.get({ timeout: 5000 }), peerDead);
  const back = await client.get({ timeout: 10000 });
  assert.equal(back.value.id, 100);
  back.release();
  assert.equal(await pending(client.closed()), true, "closed() resolves only on close()");
  await client.close();
  await client.closed();
  assert.equal(client.state, "closed");
  second.proc.kill("SIGKILL");
  await Promise.all([first.exited, second.exited]);
}

test("recovery over TCP: the server process is killed and restarted on the same port after the window; the client's next put reaches it", async () => {
  await killAndRestart(undefined, {});
});

test("a server process restarted within the window: what was in flight rejects, what waited reaches the new server, gets go on without a break", async () => {
  const first = fixture("queue-peer", { role: "server", mode: "reliable", holdAfter: 3 });
  const at = await first.line();
  const client = await queue.client<{ id: number }, { id: number }>({ url: at, mode: "reliable", slots: 2, reconnectWindow: 10000 });
  const events = record(client);
  const puts = Array.from({ length: 8 }, (_, id) => client.put({ id }, { timeout: 20000 }));
  await until(first, 2);
  await Promise.all([puts[0], puts[1]]); // released: 2 is held and 3 in flight; 4..7 wait for a slot
  first.proc.kill("SIGKILL");
  await first.exited;
  const second = fixture("queue-peer", { role: "server", url: at, echo: true });
  assert.equal(await second.line(), at);
  const outcomes = await Promise.allSettled(puts);
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ["fulfilled", "fulfilled", "rejected", "rejected", "fulfilled", "fulfilled", "fulfilled", "fulfilled"],
  );
  for (const o of outcomes) if (o.status === "rejected") assert.ok(peerDead(o.reason), String(o.reason));
  assert.deepEqual(events, ["disconnect", "session-lost ERR_PLEXUS_PEER_DEAD", "reconnect new"]);
  for (let id = 4; id < 8; id++) {
    const m = await client.get({ timeout: 5000 }); // the echoes, with no break before them
    assert.equal(m.value.id, id);
    m.release();
  }
  await client.close();
  second.proc.kill("SIGKILL");
  await second.exited;
});


test("recovery over MQTT: the server process is killed and a new one joins the queue after the window; the client's next put reaches it", async () => {
  const b = await mqttBroker();
  try {
    // the server is silent once killed: dead after 300 ms (three of its 100 ms heartbeats)
    await killAndRestart(`${b.url}/recover`, { heartbeat: 50, peerTimeout: 300, connectTimeout: 200 });
  } finally {
    await b.close();
  }
});

test("recovery: a server with a longer window still holds the old session; the client's new session is not mistaken for it", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", reconnectWindow: 30000 });
  const proxy = await startProxy(server.port);
  const client = await queue.client({ url: `tcp://127.0.0.1:${proxy.port}`, mode: "reliable", reconnectWindow: 200 });
  const events = record(client);
  for (let i = 0; i < 5; i++) {
    const p = client.put(`old ${i}`);
    const m = await server.get({ timeout: 5000 });
    assert.equal(m.value, `old ${i}`);
    m.release();
    await p;
  }
  const toClient = assert.rejects(server.put("to the old session", { peers: [client.id], timeout: 20000 }), peerDead);
  await client.get({ timeout: 5000 }); // taken, never released: in flight at the outage
  proxy.refusing = true;
  proxy.cut();
  await eventually("the client's session lost", () => client.state === "disconnected", 5000);
  proxy.refusing = false;
  assert.deepEqual(server.peers, [client.id], "the server still holds the old session");
  // serials 1.. again: a server that resumed the old session would acknowledge them as duplicates
  const puts = Array.from({ length: 5 }, (_, i) => client.put(`new ${i}`, { timeout: 10000 }));
  for (let i = 0; i < 5; i++) {
    const m = await server.get({ timeout: 5000 });
    assert.equal(m.value, `new ${i}`, "every put of the new session reached the server's application");
    m.release();
  }
  await Promise.all(puts);
  await toClient; // the server's put to the old session rejected when the new one started
  assert.deepEqual(events, ["disconnect", "session-lost ERR_PLEXUS_PEER_DEAD", "reconnect new"]);
  await client.close();
  await server.close();
  await proxy.close();
});

test("recovery: state and events through a cut (resumed), a server that does not come back (lost) and a get that reconnects", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", reconnectWindow: 200 });
  const proxy = await startProxy(server.port);
  const client = await queue.client({ url: `tcp://127.0.0.1:${proxy.port}`, reconnectWindow: 200 });
  assert.equal(client.state, "connected");
  const events = record(client);
  let thrown = 0;
  client.on("disconnect", () => {
    thrown++;
    throw new Error("a listener's own failure"); // contained: the client goes on
  });
  proxy.cut();
  await eventually("the reconnection", () => events.length === 2 && client.state === "connected", 5000);
  assert.deepEqual(events, ["disconnect", "reconnect resumed"]);
  await client.put("after the cut");
  assert.equal((await server.get({ timeout: 5000 })).value, "after the cut");
  proxy.refusing = true;
  proxy.cut();
  await eventually("the client's session lost", () => client.state === "disconnected", 5000);
  assert.deepEqual(events.slice(2), ["disconnect", "session-lost ERR_PLEXUS_PEER_DEAD"]);
  assert.equal(thrown, 2);
  // a get alone brings a disconnected client back (a consumer must be able to receive again)
  proxy.refusing = false;
  await assert.rejects(client.get({ timeout: 5000 }), peerDead); // the end of the lost session
  const next = client.get({ timeout: 5000 });
  await eventually("the new session", () => server.peers.length === 1 && client.state === "connected", 5000);
  await server.put("to the new session", client.id);
  assert.equal((await next).value, "to the new session");
  assert.deepEqual(events.slice(4), ["reconnect new"]);
  assert.throws(() => client.on("closed" as keyof QueueClientEvents, () => {}), InvalidArgumentError);
  await client.close();
  assert.equal(client.state, "closed");
  await assert.rejects(client.put("late"), (e: unknown) => e instanceof PlexusError && e.code === "ERR_PLEXUS_CLOSED");
  await server.close();
  await proxy.close();
});
