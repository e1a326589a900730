import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "../src/graph/registry.js";

const ep = { host: "h", pid: 1, threadId: 0 };

test("registry: a subscriber receives from every publisher upstream in the DAG", () => {
  const r = new Registry();
  const n = r.addNode({ name: "a", host: "h", pid: 1, threadId: 0 }).id;
  const { publisher: camera } = r.addPublisher(n, "camera", ep);
  const { subscriber: display, upstream } = r.addSubscriber(n, "display");
  assert.deepEqual(upstream, []);
  let changed = r.addEdge(n, "camera", "filtered", false);
  assert.equal(changed.size, 0, "nobody subscribes to filtered yet");
  changed = r.addEdge(n, "filtered", "display", false);
  assert.deepEqual([...changed.keys()], [display.id]);
  assert.deepEqual(changed.get(display.id)?.map((p) => p.id), [camera.id]);
  const { publisher: other, changed: c2 } = r.addPublisher(n, "filtered", ep);
  assert.deepEqual(c2.get(display.id)?.map((p) => p.id).sort(), [camera.id, other.id].sort());
  assert.deepEqual(r.upstream("camera").map((p) => p.id), [camera.id]);
});

test("registry: cycles and self-edges are refused with CycleError; duplicate edges are no-ops", () => {
  const r = new Registry();
  const n = r.addNode({ name: "a", host: "h", pid: 1, threadId: 0 }).id;
  r.addEdge(n, "a", "b", false);
  r.addEdge(n, "b", "c", false);
  assert.throws(() => r.addEdge(n, "c", "a", false), { code: "ERR_PLEXUS_CYCLE" });
  assert.throws(() => r.addEdge(n, "x", "x", false), { code: "ERR_PLEXUS_CYCLE" });
  assert.equal(r.addEdge(n, "a", "b", false).size, 0);
  assert.equal(r.snapshot().edges.length, 2);
  assert.throws(() => r.removeEdge("a", "zzz"), { code: "ERR_PLEXUS_NOT_FOUND" });
  assert.throws(() => r.addEdge(n, "bad topic", "b", false), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
});

test("registry: a node that leaves takes its ports, its own edges and its segments; persistent edges stay", () => {
  const r = new Registry();
  const a = r.addNode({ name: "a", host: "h", pid: 1, threadId: 0 }).id;
  const b = r.addNode({ name: "b", host: "h", pid: 2, threadId: 0 }).id;
  const { publisher } = r.addPublisher(a, "t", ep);
  r.addEdge(a, "t", "u", false);
  r.addEdge(a, "t", "v", true);
  r.addSegment(a, "/plexus-1-abc");
  const { subscriber } = r.addSubscriber(b, "u");
  const { subscriber: sv } = r.addSubscriber(b, "v");
  assert.deepEqual(r.upstream("u").map((p) => p.id), [publisher.id]);
  const { segments, changed } = r.removeNode(a);
  assert.deepEqual(segments, ["/plexus-1-abc"]);
  assert.deepEqual(changed.get(subscriber.id), []);
  assert.deepEqual(changed.get(sv.id), []);
  const snap = r.snapshot();
  assert.deepEqual(snap.edges, [{ from: "t", to: "v", owner: null }]);
  assert.equal(snap.publishers.length, 0);
  assert.equal(snap.nodes.length, 1);
  assert.throws(() => r.removePort(b, publisher.id), { code: "ERR_PLEXUS_NOT_FOUND" });
  assert.throws(() => r.addSegment(b, "/etc/passwd"), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
});

test("registry: what a bridge reports of other graphs is checked, replaced on each report, and leaves with its node", () => {
  const r = new Registry();
  const bridge = r.addNode({ name: "plexus-bridge:plexus:a:1", host: "h", pid: 1, threadId: 0 }).id;
  r.setRemote(bridge, [{ origin: "b", hostnames: ["hb"], topics: ["t"], services: [], queues: ["jobs"] }]);
  assert.deepEqual(r.snapshot().remote, [{ node: bridge, origin: "b", hostnames: ["hb"], topics: ["t"], services: [], queues: ["jobs"] }]);
  r.setRemote(bridge, [{ origin: "c" }]);
  assert.deepEqual(r.snapshot().remote.map((g) => [g.origin, g.queues]), [["c", []]]);
  assert.throws(() => r.setRemote(bridge, [{ origin: "" }]), /origin/);
  assert.throws(() => r.setRemote(bridge, [{ origin: "d", topics: "t" }]), /topics must be a list/);
  assert.throws(() => r.setRemote(bridge, "x"), /graphs must be a list/);
  assert.throws(() => r.setRemote("n-unknown", []), /unknown node/);
  r.removeNode(bridge);
  assert.deepEqual(r.snapshot().remote, []);
});
