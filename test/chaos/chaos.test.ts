/**
 * The chaos suite's short configuration: every pattern (pub/sub and rpc over shm, TCP and TLS;
 * queues in both modes with fresh and taken-over identities over TCP, TLS and MQTT) with one
 * random kill -9 and restart each, then the verdicts: nothing torn, wrong, lost, duplicated or
 * hung, no leaked segment, no zombie. `npm run chaos` runs the same with 200 kills per pattern.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runChaos } from "./chaos-run.js";
import { allPatterns } from "./patterns.js";
import { freshSeed } from "./rng.js";

test("chaos, short: one kill per pattern; every verdict clean", async (t) => {
  const seed = freshSeed();
  const r = await runChaos({ only: [], kills: 1, minGapMs: 50, maxGapMs: 250, maxRestartDelayMs: 100, rate: 200, seed });
  t.diagnostic(`seed ${seed}, ${r.patterns.length} patterns, ${(r.durationMs / 1000).toFixed(1)} s`);
  assert.deepEqual(r.patterns.map((p) => p.pattern), allPatterns().map((p) => p.name));
  for (const p of r.patterns) {
    assert.deepEqual(p.problems, [], `${p.pattern} (seed ${seed})`);
    assert.equal(p.kills, 1, p.pattern);
    assert.ok(p.received > 0, `${p.pattern}: nothing received`);
    assert.equal(p.torn + p.wrong + p.lost + p.duplicates + p.gaps + p.timeouts, 0, p.pattern);
    assert.equal(p.zombies, 0, p.pattern);
  }
  assert.equal(r.passed, true);
});
