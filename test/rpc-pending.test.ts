/**
 * The client's table of requests in flight: ids are unique and never 0, an answer to a request
 * that left the table never matches the request that took its slot next, and the table holds
 * at most its capacity.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PendingTable } from "../src/rpc/pending.js";

interface Entry {
  id: number;
  n: number;
}

test("pending table: fresh ids per use, stale ids never match, size and capacity", () => {
  const t = new PendingTable<Entry>(3); // rounded up to 4 slots
  const ids = new Set<number>();
  const held: Entry[] = [];
  for (let n = 0; n < 4; n++) {
    const e = { id: t.open(), n };
    t.set(e);
    held.push(e);
    assert.notEqual(e.id, 0);
    ids.add(e.id);
  }
  assert.equal(ids.size, 4);
  assert.equal(t.size, 4);
  assert.throws(() => t.open(), RangeError, "full");
  for (const e of held) assert.equal(t.get(e.id), e);

  // Free one slot and reuse it: the old id no longer matches, the new one does.
  const old = held[1];
  t.delete(old.id);
  assert.equal(t.size, 3);
  assert.equal(t.get(old.id), undefined);
  const next = { id: t.open(), n: 9 };
  t.set(next);
  assert.notEqual(next.id, old.id);
  assert.equal(next.id & 3, old.id & 3, "the freed slot is taken again");
  assert.equal(t.get(old.id), undefined, "a late answer to the old request finds nothing");
  t.delete(old.id); // a second delete of a stale id frees nothing
  assert.equal(t.size, 4);
  assert.equal(t.get(next.id), next);

  // entries() is a copy: deleting while walking it is safe.
  for (const e of t.entries()) t.delete(e.id);
  assert.equal(t.size, 0);
  assert.deepEqual(t.entries(), []);
});

test("pending table: freed slots are taken in turn, so ids repeat only after ~2^32 requests", () => {
  // One request at a time through a wide table (maxInFlight 65536): a slot taken again at once
  // would repeat its ids every 2^32 / 2^16 uses — a late answer to a request that timed out
  // could then resolve a later one. In turn, no id repeats within 200 000 requests.
  const t = new PendingTable<Entry>(65536);
  const late = { id: t.open(), n: -1 };
  t.set(late);
  t.delete(late.id); // timed out; its answer may still come
  const seen = new Set<number>([late.id]);
  for (let n = 0; n < 200_000; n++) {
    const e = { id: t.open(), n };
    t.set(e);
    assert.ok(e.id > 0 && e.id <= 0xffffffff);
    assert.ok(!seen.has(e.id), `id ${e.id} repeated after ${n} requests`);
    seen.add(e.id);
    assert.equal(t.get(late.id), undefined, "the late answer matches nothing");
    t.delete(e.id);
  }
  // A narrow table: its slots' uses grow fast, ids still distinct.
  const narrow = new PendingTable<Entry>(2);
  const ids = new Set<number>();
  for (let n = 0; n < 100_000; n++) {
    const e = { id: narrow.open(), n };
    narrow.set(e);
    ids.add(e.id);
    narrow.delete(e.id);
  }
  assert.equal(ids.size, 100_000);
  assert.equal(narrow.size, 0);
});
