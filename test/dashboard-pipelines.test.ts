// The picture of the pipelines that `plexus graph --pipelines` and the dashboard draw, from a
// snapshot and the units' descriptions: units grouped by collection, their placement, arrows
// through the topics streams were given by name; units that did not answer are still shown.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Snapshot } from "../src/index.js";
import { pipelinePicture } from "../src/dashboard/pipelines.js";
import { settingsService, unitOfService, type UnitDescription } from "../src/graph/units.js";

const node = (id: string, name: string, pid: number, threadId = 0): Snapshot["nodes"][number] => ({ id, name, pid, threadId, host: "h" }) as Snapshot["nodes"][number];
const server = (id: string, nodeId: string, path: string): Snapshot["servers"][number] => ({ id, node: nodeId, service: settingsService(path) }) as Snapshot["servers"][number];

test("dashboard pipelines: units grouped by collection with their placement, named topics drawn between units, an undescribed unit placed by its node", () => {
  assert.equal(unitOfService("SYS/A#settings"), "SYS/A");
  assert.equal(unitOfService("#settings"), undefined);
  assert.equal(unitOfService("demo/peak"), undefined);
  const snap = {
    nodes: [node("n1", "demo producer", 40), node("n2", "demo transform (worker)", 30, 2), node("n3", "pipeline SYS (process SYS/IN/LOG)", 50)],
    topics: ["demo/raw", "SYS/IN/LOG/INPUT"],
    publishers: [],
    subscribers: [],
    edges: [{ from: "demo/raw", to: "SYS/IN/LOG/INPUT" }],
    segments: [],
    servers: [server("r1", "n1", "SYS/SRC"), server("r2", "n2", "SYS/IN/FILTER"), server("r3", "n3", "SYS/IN/LOG"), { id: "r4", node: "n2", service: "demo/peak" } as Snapshot["servers"][number]],
    clients: [],
    services: [],
  } as unknown as Snapshot;
  const about = new Map<string, UnitDescription>([
    ["SYS/SRC", { path: "SYS/SRC", placement: "process", pid: 40, threadId: 0, streams: [{ name: "OUTPUT", kind: "output", topic: "demo/raw" }], settings: { rate: 5 } }],
    ["SYS/IN/FILTER", { path: "SYS/IN/FILTER", placement: "worker", pid: 30, threadId: 2, streams: [{ name: "INPUT", kind: "input", topic: "demo/raw" }], settings: {} }],
  ]);
  const p = pipelinePicture(snap, about);
  assert.deepEqual(
    p.units.map((u) => [u.path, u.placement, u.label]),
    [
      ["SYS/IN/FILTER", "worker, pid 30 thread 2", "FILTER (worker, pid 30 thread 2)"],
      ["SYS/IN/LOG", "process, pid 50", "LOG (process, pid 50)"], // no description: placed by its node's name
      ["SYS/SRC", "process, pid 40", "SRC (process, pid 40) rate=5"],
    ],
  );
  assert.deepEqual(p.collections, ["SYS", "SYS/IN"]);
  assert.deepEqual(p.topics, ["demo/raw"]);
  assert.deepEqual(
    p.arrows.map((a) => `${a.from} -> ${a.to} ${a.label ?? ""}`).sort(),
    ["topic:demo/raw -> unit:SYS/IN/FILTER INPUT", "topic:demo/raw -> unit:SYS/IN/LOG INPUT", "unit:SYS/SRC -> topic:demo/raw OUTPUT"],
  );
  // without descriptions every unit is still there, placed by its node
  assert.deepEqual(
    pipelinePicture(snap).units.map((u) => u.placement),
    ["worker, pid 30 thread 2", "process, pid 50", "main thread, pid 40"],
  );
});
