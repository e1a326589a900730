/**
 * The soak's short configuration: 15 seconds of mixed load across seven processes; nothing
 * lost, torn or failed, every process sampled and still alive, descriptors flat (RSS is bounded
 * only generously: 15 s is mostly warm-up). `npm run soak
 * -- --minutes 10` runs the long one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSoak } from "./soak-run.js";

test("soak, short: mixed load across processes; ledgers clean, descriptors flat, every process sampled", async () => {
  const r = await runSoak({ minutes: 0.25, rate: 300, sampleMs: 500, warmupMs: 3000, maxRssGrowth: 2, maxFdGrowth: 2 });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(Object.keys(r.processes).sort(), ["pub", "q-client", "q-server", "rpc-client", "rpc-server", "sub-shm", "sub-tcp"]);
  for (const [name, p] of Object.entries(r.processes)) {
    assert.ok(p.samples >= 4, name);
    assert.ok(p.fds[1] <= p.fds[0] + 2, name);
  }
  for (const [k, v] of Object.entries(r.verdicts)) {
    assert.ok(v.received > 0, k);
    assert.equal(v.torn + v.wrong + v.lost + v.duplicates + v.gaps + v.timeouts + v.failed, 0, k);
  }
  assert.equal(r.passed, true);
});
