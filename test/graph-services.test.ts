/** The registry's request/response part: servers, clients, and who is told when servers change. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { InvalidArgumentError } from "../src/index.js";
import { NotFoundError } from "../src/errors.js";
import { Registry } from "../src/graph/registry.js";

const ep = { host: "h", pid: 1, threadId: 0 };

test("registry: clients of a service learn of every server that comes and goes, and only they", () => {
  const r = new Registry();
  const a = r.addNode({ name: "a", host: "h", pid: 1, threadId: 0 }).id;
  const b = r.addNode({ name: "b", host: "h", pid: 2, threadId: 0 }).id;
  const { client, servers } = r.addClient(a, "resize");
  assert.deepEqual(servers, []);
  const { client: other } = r.addClient(a, "other");
  const { server: s1, changed } = r.addServer(b, "resize", ep, false);
  assert.deepEqual([...changed.keys()], [client.id]);
  assert.deepEqual(changed.get(client.id)?.map((s) => s.id), [s1.id]);
  const { server: s2, changed: c2 } = r.addServer(b, "resize", ep, true, "rmine");
  assert.equal(s2.id, "rmine");
  assert.equal(s2.inPlace, true);
  assert.deepEqual(c2.get(client.id)?.map((s) => s.id).sort(), [s1.id, s2.id].sort());
  assert.equal(c2.has(other.id), false);
  assert.deepEqual(r.addClient(b, "resize").servers.map((s) => s.id).sort(), [s1.id, s2.id].sort());
  const c3 = r.removeServer(b, s1.id);
  assert.deepEqual(c3.get(client.id)?.map((s) => s.id), [s2.id]);
  assert.throws(() => r.removeServer(a, s2.id), NotFoundError, "only its node removes a server");
  assert.throws(() => r.addServer(b, "resize", ep, false, client.id), InvalidArgumentError, "ids are unique across kinds");
  const snap = r.snapshot();
  assert.deepEqual(snap.servers.map((s) => s.id), [s2.id]);
  assert.equal(snap.clients.length, 3);
});

test("registry: a node's death removes its servers and clients and tells the other clients", () => {
  const r = new Registry();
  const a = r.addNode({ name: "a", host: "h", pid: 1, threadId: 0 }).id;
  const b = r.addNode({ name: "b", host: "h", pid: 2, threadId: 0 }).id;
  const { client } = r.addClient(a, "svc");
  r.addClient(b, "svc");
  r.addServer(b, "svc", ep, false);
  const { services } = r.removeNode(b);
  assert.deepEqual([...services.keys()], [client.id]);
  assert.deepEqual(services.get(client.id), []);
  assert.equal(r.snapshot().clients.length, 1);
  assert.equal(r.snapshot().servers.length, 0);
  r.removeClient(a, client.id);
  assert.throws(() => r.removeClient(a, client.id), NotFoundError);
  assert.throws(() => r.addServer(a, "bad name", ep, false), InvalidArgumentError);
});
