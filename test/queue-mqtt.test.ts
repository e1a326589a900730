/**
 * The MQTT backend through real brokers — aedes in this process and a mosquitto process the
 * test starts — with the same API and guarantees as over TCP: puts resolve on the receiving
 * endpoint's ACK (not the broker's PUBACK), reliable mode waits for release, replies reach the
 * named client, broadcast reaches all, a client that goes away makes pending puts reject, frames
 * go at QoS 0 (QoS 1 with `?qos=1`), and a broker restarted mid-stream leaves no put unsettled.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mqttBroker, type TestBroker } from "./helpers/mqtt-broker.js";
import { mosquitto } from "./helpers/mosquitto.js";
import { PlexusError, queue } from "../src/index.js";

const code = (c: string) => (e: unknown) => (e as PlexusError).code === c;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The brokers every test runs against. */
const BROKERS: { kind: string; start: () => Promise<TestBroker> }[] = [
  { kind: "aedes", start: mqttBroker },
  { kind: "mosquitto", start: mosquitto },
];

for (const { kind, start: startBroker } of BROKERS) {
  test(`mqtt (${kind}): put/get both ways through a broker, msg.peer, reply, broadcast, fast acks`, async () => {
    const b = await startBroker();
    const server = await queue.server({ url: `${b.url}/jobs` });
    assert.match(server.url, /^mqtt:\/\/127\.0\.0\.1:\d+\/jobs$/);
    const c1 = await queue.client({ url: `${b.url}/jobs` });
    const c2 = await queue.client({ url: `${b.url}/jobs` });
    await c1.put({ n: 1, data: new Int16Array([1, -1]) });
    const m = await server.get<{ n: number; data: Int16Array }>({ timeout: 5000 });
    assert.equal(m.value.n, 1);
    assert.deepEqual([...m.value.data], [1, -1]);
    assert.equal(m.peer, c1.id);
    await server.put("for c1", m.peer);
    assert.equal((await c1.get({ timeout: 5000 })).value, "for c1");
    await server.put("all");
    assert.equal((await c1.get({ timeout: 5000 })).value, "all");
    assert.equal((await c2.get({ timeout: 5000 })).value, "all");
    const many = Array.from({ length: 100 }, (_, i) => c2.put(i));
    await Promise.all(many);
    const got: unknown[] = [];
    for (let i = 0; i < 100; i++) got.push((await server.get({ timeout: 5000 })).value);
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
    await c1.close();
    await c2.close();
    await server.close();
    await b.close();
  });

  test(`mqtt (${kind}): reliable puts resolve only on release by the receiving application, not on the broker's PUBACK`, async () => {
    const b = await startBroker();
    const server = await queue.server({ url: `${b.url}/rel` });
    const client = await queue.client({ url: `${b.url}/rel`, mode: "reliable" });
    let resolved = false;
    const p = client.put("x").then(() => (resolved = true));
    const m = await server.get({ timeout: 5000 });
    await sleep(100);
    assert.equal(resolved, false);
    m.release();
    await p;
    await client.close();
    await server.close();
    await b.close();
  });

  test(`mqtt (${kind}): a client that goes silent is dead after peerTimeout; the server's puts to it reject PeerDeadError`, async () => {
    const b = await startBroker();
    const server = await queue.server({ url: `${b.url}/dead`, heartbeat: 30, peerTimeout: 200, reconnectWindow: 100, mode: "reliable" });
    const client = await queue.client({ url: `${b.url}/dead`, heartbeat: 30, peerTimeout: 200 });
    const p = assert.rejects(server.put("never released", client.id), code("ERR_PLEXUS_PEER_DEAD"));
    await client.get({ timeout: 5000 });
    // the client disappears without BYE: its broker connection is cut
    await (client as unknown as { hub: { close(): Promise<void> } }).hub.close();
    await p;
    assert.deepEqual(server.peers, []);
    await client.close();
    await server.close();
    await b.close();
  });

  test(`mqtt (${kind}): no broker is PeerDeadError; wildcards in the queue name are refused`, async () => {
    const b = await startBroker();
    const port = Number(new URL(b.url).port);
    await b.close();
    await assert.rejects(queue.client({ url: `mqtt://127.0.0.1:${port}/q`, connectTimeout: 500 }), code("ERR_PLEXUS_PEER_DEAD"));
    await assert.rejects(queue.server({ url: "mqtt://127.0.0.1:1883/a/+" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
  });

  test(`mqtt (${kind}): the broker connection of a client is cut; frames lost meanwhile are recovered (gap or silence -> new HELLO -> resend) and every put resolves`, async () => {
    const { startProxy } = await import("./helpers/proxy.js");
    const b = await startBroker();
    const proxy = await startProxy(Number(new URL(b.url).port));
    const opts = { heartbeat: 30, peerTimeout: 300, reconnectWindow: 5000, timeout: 10000 };
    const server = await queue.server({ url: `${b.url}/cut`, ...opts });
    const client = await queue.client({ url: `mqtt://127.0.0.1:${proxy.port}/cut`, ...opts });
    const got: unknown[] = [];
    const taking = (async () => {
      while (got.length < 40) got.push((await server.get({ timeout: 10000 })).value);
    })();
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      puts.push(client.put(i));
      if (i === 15) proxy.cut();
      await sleep(5);
    }
    await Promise.all(puts);
    await taking;
    assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => i));
    await client.close();
    await server.close();
    await proxy.close();
    await b.close();
  });

  test(`mqtt (${kind}): a new client takes over a dead client's identity: its puts reach the server, the put in flight to the dead one rejects PeerDeadError`, async () => {
    const b = await startBroker();
    const opts = { heartbeat: 30, peerTimeout: 300, mode: "reliable" as const };
    const server = await queue.server({ url: `${b.url}/take`, ...opts, reconnectWindow: 30000 });
    const x = await queue.client({ url: `${b.url}/take`, ...opts, reconnectWindow: 300, connectTimeout: 200 });
    const got: unknown[] = [];
    const taking = (async () => {
      for (;;) {
        try {
          const m = await server.get();
          got.push(m.value);
          m.release();
        } catch {
          return;
        }
      }
    })();
    await Promise.all(Array.from({ length: 5 }, (_, i) => x.put(`x${i}`, { timeout: 5000 })));
    const first = server.put("first for x", x.id); // reliable: resolves on x's release
    (await x.get({ timeout: 5000 })).release();
    await first;
    const toX = assert.rejects(server.put("held by x", { peers: [x.id], timeout: 20000 }), code("ERR_PLEXUS_PEER_DEAD"));
    await x.get({ timeout: 5000 }); // taken, never released
    // x dies: its broker connection goes away without a BYE
    await (x as unknown as { hub: { close(): Promise<void> } }).hub.close();
    const y = await queue.client({ url: `${b.url}/take`, ...opts, identity: x.id });
    await toX;
    await Promise.all(Array.from({ length: 10 }, (_, i) => y.put(`y${i}`, { timeout: 5000 })));
    assert.deepEqual(got, [...Array.from({ length: 5 }, (_, i) => `x${i}`), ...Array.from({ length: 10 }, (_, i) => `y${i}`)]);
    const forY = server.put("for y", { peers: [y.id], timeout: 5000 });
    const m = await y.get({ timeout: 5000 });
    assert.equal(m.value, "for y", "what was in flight to the old client is not handed to the new one");
    m.release();
    await forY;
    await y.close();
    await x.close();
    await server.close();
    await taking;
    await b.close();
  });

  test(`mqtt (${kind}): a live client displaced by a new one with its identity ends with PeerDeadError; the two never see each other's frames`, async () => {
    const b = await startBroker();
    const opts = { heartbeat: 30, peerTimeout: 300, mode: "reliable" as const };
    const server = await queue.server({ url: `${b.url}/live`, ...opts });
    const x = await queue.client({ url: `${b.url}/live`, ...opts });
    const sent = x.put("x1");
    const m1 = await server.get({ timeout: 5000 });
    assert.equal(m1.value, "x1");
    m1.release();
    await sent;
    const y = await queue.client({ url: `${b.url}/live`, ...opts, identity: x.id });
    // both subscribe to the same topic: x learns from the BYE meant for its session, y ignores it
    await assert.rejects(x.get({ timeout: 5000 }), code("ERR_PLEXUS_PEER_DEAD"));
    await assert.rejects(x.put("x2"), code("ERR_PLEXUS_PEER_DEAD"));
    const p = y.put("y1");
    const m2 = await server.get({ timeout: 5000 });
    assert.equal(m2.value, "y1", "y's first message is not taken for a duplicate of x's");
    m2.release();
    await p;
    const toY = server.put("to y", y.id);
    const m3 = await y.get({ timeout: 5000 });
    assert.equal(m3.value, "to y");
    m3.release();
    await toY;
    assert.deepEqual(server.peers, [y.id]);
    await x.close();
    await y.close();
    await server.close();
    await b.close();
  });

  test(`mqtt (${kind}): frames go at QoS 0 (the queue acknowledges them itself), at QoS 1 with ?qos=1; a bad qos is refused`, async () => {
    const b = await startBroker();
    const mqtt = await import("mqtt");
    const observer = await mqtt.connectAsync(b.url, { clientId: `observer-${process.pid}`, clean: true });
    const seen = new Map<string, Set<number>>();
    observer.on("message", (topic, _payload, packet) => {
      const name = topic.split("/")[2] as string;
      if (!seen.has(name)) seen.set(name, new Set());
      seen.get(name)?.add(packet.qos);
    });
    await observer.subscribeAsync("plexus/q/#", { qos: 1 });
    for (const [name, query, want] of [
      ["q0", "", 0],
      ["q1", "?qos=1", 1],
    ] as const) {
      const server = await queue.server({ url: `${b.url}/${name}${query}` });
      assert.equal(server.url, `${b.url}/${name}${query}`);
      const client = await queue.client({ url: `${b.url}/${name}${query}`, mode: "reliable" });
      for (let i = 0; i < 5; i++) {
        const p = client.put(i);
        const m = await server.get({ timeout: 5000 });
        assert.equal(m.value, i);
        m.release();
        await p;
      }
      await client.close();
      await server.close();
      await sleep(50);
      assert.deepEqual([...(seen.get(name) ?? [])], [want], `queue ${name}: every frame at QoS ${want}`);
    }
    await observer.endAsync();
    await assert.rejects(queue.client({ url: `${b.url}/x?qos=2` }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
    await assert.rejects(queue.server({ url: "tcp://127.0.0.1:0?qos=1" }), code("ERR_PLEXUS_INVALID_ARGUMENT"));
    await b.close();
  });

  for (const query of ["", "?qos=1"]) {
    test(`mqtt (${kind}${query}): the broker restarts mid-stream; every put settles (here: resolves, the session outlives the outage), each message is taken once, in order`, async () => {
      const b = await startBroker();
      const opts = { heartbeat: 50, peerTimeout: 400, reconnectWindow: 5000, connectTimeout: 500 };
      const server = await queue.server({ url: `${b.url}/restart${query}`, ...opts, handshakeTimeout: 500 });
      const client = await queue.client({ url: `${b.url}/restart${query}`, ...opts, mode: "reliable", slots: 4, timeout: 8000 });
      const got: unknown[] = [];
      let taking = true;
      const takes = (async () => {
        while (taking) {
          try {
            const m = await server.get({ timeout: 100 });
            got.push(m.value);
            m.release();
          } catch (err) {
            assert.ok(err instanceof PlexusError, String(err));
          }
        }
      })();
      const puts: Promise<void>[] = [];
      for (let i = 0; i < 60; i++) {
        puts.push(client.put(i));
        if (i === 20) await b.restart(300);
        await sleep(5);
      }
      const settled = await Promise.allSettled(puts);
      for (const r of settled) if (r.status === "rejected") assert.ok(r.reason instanceof PlexusError, `a put rejected with ${String(r.reason)}`);
      // The outage is shorter than reconnectWindow: the session survives it, so every put
      // resolves and the server takes each message once, in order.
      assert.deepEqual(settled.filter((r) => r.status === "rejected"), []);
      await client.put("after", { timeout: 8000 });
      const end = Date.now() + 5000;
      while (got.length < 61 && Date.now() < end) await sleep(20);
      assert.deepEqual(got, [...Array.from({ length: 60 }, (_, i) => i), "after"]);
      taking = false;
      await takes;
      await client.close();
      await server.close();
      await b.close();
    });
  }
}
