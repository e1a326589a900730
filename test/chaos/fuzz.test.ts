/**
 * The fuzzer's short configuration: 3000 mutated inputs over every listening port while honest
 * clients work; no crash, no failed honest operation, memory after GC and descriptors back near
 * where they were. `npm run fuzz` runs the same with 10^6 inputs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runFuzz } from "./fuzz-run.js";
import { MUTATORS } from "./mutators.js";
import { TARGETS } from "./port-targets.js";
import { freshSeed } from "./rng.js";

const MiB = 1 << 20;

test("fuzz, short: every port gets mutated captures of its own traffic; the target survives and honest clients are served", async (t) => {
  const seed = freshSeed();
  const r = await runFuzz({ inputs: 3000, concurrency: 8, seed, settleMs: 6000, maxArrayBuffersGrowth: 16 * MiB, maxHeapGrowth: 16 * MiB, maxFdGrowth: 8 });
  t.diagnostic(`seed ${seed}: ${r.inputs} inputs, ${r.honest.operations} honest operations, ${(r.durationMs / 1000).toFixed(1)} s`);
  assert.deepEqual(r.problems, [], `seed ${seed}`);
  assert.equal(r.crashed, null);
  assert.equal(r.inputs, 3000);
  for (const target of TARGETS) {
    assert.ok((r.captures[target] ?? 0) > 0, `captured ${target}`);
    assert.equal(r.perTarget[target], 500, target);
  }
  for (const m of MUTATORS) if (m !== "flood") assert.ok((r.perMutator[m] ?? 0) > 0, `mutator ${m} used`);
  assert.ok(r.honest.operations > 0);
  assert.equal(r.honest.failed, 0);
  assert.ok(r.memory.before && r.memory.after);
  assert.ok(r.memory.after.arrayBuffers - r.memory.before.arrayBuffers <= 16 * MiB);
  assert.ok((r.memory.fdsAfter as number) <= (r.memory.fdsBefore as number) + 8);
});
