/**
 * Queues across real processes over TCP, TLS and gRPC, and the fault test (over TCP and over
 * gRPC): the peer process is
 * killed at random points, again and again, and every put must settle — resolved (and then
 * the peer had logged the message before acknowledging it) or rejected with a typed error.
 * None hangs, none is silently lost.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { queue, PlexusError } from "../src/index.js";
import { fixture, remainingLines, type Child } from "./helpers/child.js";
import { testCerts } from "./helpers/tcp-certs.js";

/** Every remaining stdout line of a child, until it ends. */
const drain = (c: Child): Promise<string[]> => remainingLines(c);

test("across processes: two clients put to a server process that echoes each value back to its sender", async () => {
  const child = fixture("queue-peer", { role: "server", echo: true, mode: "reliable" });
  const url = await child.line();
  const clients = await Promise.all([queue.client({ url, slots: 8 }), queue.client({ url, slots: 8 })]);
  const N = 300;
  await Promise.all(
    clients.map(async (c, k) => {
      const puts: Promise<void>[] = [];
      for (let i = 0; i < N; i++) puts.push(c.put({ id: k * N + i, data: new Uint32Array(64).fill(k * N + i) }));
      for (let i = 0; i < N; i++) {
        const m = await c.get<{ id: number; data: Uint32Array }>({ timeout: 10000 });
        assert.equal(m.value.id, k * N + i);
        assert.ok(m.value.data.every((x) => x === k * N + i));
        m.release();
      }
      await Promise.all(puts);
    }),
  );
  for (const c of clients) await c.close();
  child.proc.kill();
  const got = (await drain(child)).filter((l) => l.startsWith("got ")).length;
  assert.equal(got, 2 * N);
});

for (const scheme of ["tls", "grpcs"]) {
  test(`across processes over ${scheme}: a client process receives what the server puts to it`, async () => {
    const c = testCerts();
    const server = await queue.server({ url: `${scheme}://127.0.0.1:0`, tls: { key: c.serverKey, cert: c.serverCert } });
    const child = fixture("queue-peer", { role: "client", url: server.url.replace("127.0.0.1", "localhost"), tls: { ca: c.ca } });
    const id = (await child.line()).split(" ")[1];
    for (let i = 0; i < 50; i++) await server.put({ id: i }, id);
    await server.close();
    const lines = await drain(child);
    assert.deepEqual(lines, Array.from({ length: 50 }, (_, i) => `got ${i}`));
    assert.equal(await child.exited, 0, child.stderr()); // the server's BYE ended the child's loop
  });
}

for (const scheme of ["tcp", "grpc"]) {
  test(`fault (${scheme}): the peer process is killed at random points 8 times; every put resolves (and was logged) or rejects typed`, async () => {
    let resolvedTotal = 0;
    let rejectedTotal = 0;
    for (let round = 0; round < 8; round++) {
      const clientSide = round % 2 === 0; // even rounds: this process is the client, the killed one the server
      // Rounds 0-3 kill after a random time, wherever the stream is (maybe already done). Rounds
      // 4-7 kill a peer that took a random number of messages and holds the last one unreleased,
      // so puts are certainly in flight at the kill.
      const holdAfter = round >= 4 ? 1 + Math.floor(Math.random() * 150) : undefined;
      const killAfter = 5 + Math.floor(Math.random() * 60);
      const N = 200;
      let child: Child;
      let puts: Promise<void>[];
      let close: () => Promise<void>;
      if (clientSide) {
        child = fixture("queue-peer", { role: "server", url: `${scheme}://127.0.0.1:0`, mode: "reliable", holdAfter });
        const url = await child.line();
        const client = await queue.client({ url, mode: "reliable", slots: 4, reconnectWindow: 300, heartbeat: 50, peerTimeout: 500 });
        puts = Array.from({ length: N }, (_, i) => client.put({ id: i }, { timeout: 10000 }));
        close = () => client.close();
      } else {
        const server = await queue.server({ url: `${scheme}://127.0.0.1:0`, mode: "reliable", slots: 4, reconnectWindow: 300, heartbeat: 50, peerTimeout: 500 });
        child = fixture("queue-peer", { role: "client", url: server.url, reconnectWindow: 300, holdAfter });
        const id = (await child.line()).split(" ")[1];
        puts = Array.from({ length: N }, (_, i) => server.put({ id: i }, { peers: [id], timeout: 10000 }));
        close = () => server.close();
      }
      const seen: string[] = [];
      if (holdAfter === undefined) await new Promise((r) => setTimeout(r, killAfter));
      else while (seen.filter((l) => l.startsWith("got ")).length < holdAfter) seen.push(await child.line(10000));
      child.proc.kill("SIGKILL");
      const outcomes = await Promise.allSettled(puts); // resolves only if none hangs
      const logged = new Set([...seen, ...(await drain(child))].filter((l) => l.startsWith("got ")).map((l) => Number(l.slice(4))));
      if (holdAfter !== undefined) {
        // Reliable: a put resolves only once its message was released — the held one never was,
        // nor anything after it.
        const got = seen.filter((l) => l.startsWith("got "));
        const held = Number((got[got.length - 1] as string).slice(4));
        assert.equal(outcomes[held]?.status, "rejected", `round ${round}: the held message's put must reject`);
        const rejected = outcomes.filter((o) => o.status === "rejected").length;
        assert.ok(rejected >= N - holdAfter + 1, `round ${round}: held after ${holdAfter}, only ${rejected} puts rejected`);
      }
      outcomes.forEach((o, i) => {
        if (o.status === "fulfilled") {
          resolvedTotal++;
          assert.ok(logged.has(i), `round ${round}: put ${i} resolved but the peer never released it`);
        } else {
          rejectedTotal++;
          assert.ok(o.reason instanceof PlexusError, `round ${round}: put ${i} rejected with ${String(o.reason)}`);
          assert.equal(o.reason.code, "ERR_PLEXUS_PEER_DEAD", `round ${round}: put ${i}: ${o.reason.message}`);
        }
      });
      await close();
    }
    assert.equal(resolvedTotal + rejectedTotal, 8 * 200);
    assert.ok(rejectedTotal >= 4 * 50, "the kills must have interrupted the held rounds' puts");
  });
}
