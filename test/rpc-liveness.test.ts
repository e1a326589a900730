/**
 * Request/response over TCP keeps its links alive the way the transport and the queue do: each
 * end writes at least every `heartbeat` ms (a PING when idle) and drops a peer silent for
 * `max(peerTimeout, 3 × its heartbeat)`. Real sockets: a relay that turns into a black hole (no
 * FIN, nothing forwarded either way), an idle link that must stay up, a server that holds a
 * client back with slow handlers, and bad options.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { InvalidArgumentError, PeerDeadError, type ServerInfo } from "../src/index.js";
import { GraphClient } from "../src/graph/client.js";
import { self } from "../src/graph/identity.js";
import { graph, until } from "./helpers/rpc.js";
import { startProxy } from "./helpers/proxy.js";

const { node, address } = await graph();
let n = 0;
const fresh = (base: string): string => `${base}-${++n}`;

/** Small liveness settings: a 50 ms heartbeat, a peer dead after 300 ms of silence. */
const QUICK = { heartbeat: 50, peerTimeout: 300 };

/** The TCP port a server of `service` listens on. */
async function tcpPort(service: string): Promise<number> {
  const info = (await node.snapshot()).servers.find((s) => s.service === service) as ServerInfo;
  return (info.endpoints.tcp as { port: number }).port;
}

test("tcp: a server behind a black hole (no FIN) — its requests in flight reject with PeerDeadError within about peerTimeout, both ends drop the link, the other server answers", async () => {
  const real = fresh("real");
  await using server = await node.server<number, number>(real, (x) => x + 1, { transport: "tcp", tcp: QUICK });
  const port = await tcpPort(real);
  const proxy = await startProxy(port);
  // Two registrations of that server under another service: one through the relay, one direct.
  const service = fresh("black-hole");
  const registrar = await GraphClient.connect({ address, embedded: false });
  const viaProxy = (await registrar.request<{ server: string }>("server.add", { service, endpoints: { ...self(), pid: 1, tcp: { host: "127.0.0.1", port: proxy.port } }, inPlace: false })).server;
  const direct = (await registrar.request<{ server: string }>("server.add", { service, endpoints: { ...self(), pid: 1, tcp: { host: "127.0.0.1", port } }, inPlace: false })).server;
  try {
    await using client = await node.client<number, number>(service, { transport: "tcp", ...QUICK });
    await until(() => client.servers.length === 2);
    assert.equal(server.connections, 2);
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map((x) => client.request(x))), [2, 3, 4, 5]);

    proxy.frozen = true; // bytes either way are swallowed; both connections stay open
    // Requests go to the link with the fewest in flight, in turn: half of these into the hole.
    // Their 30 s timeout never comes into play: the silent peer is declared dead first
    // (PeerDeadError, not TimeoutError) — the class is the check, no clock is read.
    const outcomes = await Promise.all(
      [10, 11, 12, 13, 14, 15].map((x) =>
        client.request(x, { timeout: 30_000 }).then(
          (v) => ({ v }),
          (e: unknown) => ({ e }),
        ),
      ),
    );
    const lost = outcomes.filter((o) => "e" in o);
    const answered = outcomes.filter((o) => "v" in o);
    assert.equal(lost.length, 3, `requests into the hole: ${JSON.stringify(outcomes)}`);
    assert.equal(answered.length, 3);
    for (const o of lost) {
      const e = (o as { e: unknown }).e;
      assert.ok(e instanceof PeerDeadError, `expected PeerDeadError, got ${String(e)}`);
      assert.equal(e.code, "ERR_PLEXUS_PEER_DEAD");
      // The client's silence check, or the server's (same peerTimeout), whichever ticks first:
      // the server then closes its side, which the relay passes on as the end of the connection.
      assert.match(e.message, /^the server of ".*" \(pid \d+ on .+\) died or lost its connection$/);
      assert.match(String((e.cause as Error | undefined)?.message), /no byte from the request\/response peer|closed the connection or died/);
    }
    // The link is gone from the client; the server dropped its end of it too (it heard nothing).
    assert.deepEqual(client.servers, [direct]);
    assert.ok(!client.servers.includes(viaProxy));
    await until(() => server.connections === 1, 3000);
    // The other server takes every request now.
    assert.deepEqual(await Promise.all([20, 21, 22].map((x) => client.request(x, { timeout: 5000 }))), [21, 22, 23]);
  } finally {
    await registrar.close();
    await proxy.close();
  }
});

test("tcp: an idle, healthy link with a 300 ms peerTimeout stays up for several timeouts (heartbeats) and answers afterwards", async () => {
  const service = fresh("idle");
  await using server = await node.server<string, string>(service, (s) => s.toUpperCase(), { transport: "tcp", tcp: QUICK });
  await using client = await node.client<string, string>(service, { transport: "tcp", ...QUICK });
  assert.deepEqual(client.servers, [server.id]);
  assert.equal(await client.request("a"), "A");
  await new Promise((r) => setTimeout(r, 5 * QUICK.peerTimeout)); // nothing sent by either application
  assert.deepEqual(client.servers, [server.id]);
  assert.equal(server.connections, 1);
  assert.equal(await client.request("still here", { timeout: 2000 }), "STILL HERE");
  assert.equal(server.connections, 1); // the same connection, not a new one
});

test("tcp: a server that stops reading a client (maxConcurrent, slow handlers) for longer than peerTimeout keeps it", async () => {
  const service = fresh("held-back");
  await using server = await node.server<number, number>(
    service,
    async (x) => {
      await new Promise((r) => setTimeout(r, 2 * QUICK.peerTimeout));
      return x * 2;
    },
    { transport: "tcp", tcp: QUICK, maxConcurrent: 1 },
  );
  await using client = await node.client<number, number>(service, { transport: "tcp", ...QUICK });
  // One handled at a time: the connection is paused for ~1.8 s, its PINGs wait unread in the socket.
  assert.deepEqual(await Promise.all([1, 2, 3].map((x) => client.request(x, { timeout: 10_000 }))), [2, 4, 6]);
  assert.equal(server.connections, 1);
  assert.deepEqual(client.servers, [server.id]);
});

test("tcp: bad heartbeat and peerTimeout options are refused with InvalidArgumentError naming the option", async () => {
  const bad: unknown[] = [0, -1, Number.NaN, Infinity, 2 ** 31, "1000"];
  for (const value of bad) {
    for (const option of ["heartbeat", "peerTimeout"]) {
      const what = `${option}: ${String(value)}`;
      await assert.rejects(node.client(fresh("bad"), { [option]: value }), (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError, what);
        assert.equal(e.code, "ERR_PLEXUS_INVALID_ARGUMENT");
        assert.match(e.message, new RegExp(`^node\\.client: option "${option}" must be`), what);
        return true;
      });
      await assert.rejects(node.server(fresh("bad"), () => 1, { transport: "tcp", tcp: { [option]: value } }), (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError, what);
        assert.equal(e.code, "ERR_PLEXUS_INVALID_ARGUMENT");
        assert.match(e.message, new RegExp(`^node\\.server: option "tcp\\.${option}" must be`), what);
        return true;
      });
    }
  }
  assert.deepEqual((await node.snapshot()).servers.filter((s) => s.service.startsWith("bad-")), []);
});
