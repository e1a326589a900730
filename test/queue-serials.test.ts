// Queue serials run 1, 2, ..., 2^32 - 1 and then 1 again (0 means "none yet"): a session that
// passes 2^32 messages goes on, duplicates across the wrap are still recognised.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Session, type SessionHost } from "../src/queue/session.js";
import { QFrame } from "../src/queue/wire.js";
import type { Link } from "../src/queue/link.js";

/** A receiving session whose last serial is `last`, with what it delivers and writes. */
function receiver(last: number): { s: Session; delivered: number[]; written: Buffer[] } {
  const delivered: number[] = [];
  const written: Buffer[] = [];
  const host: SessionHost = { deliver: (_s, serial) => void delivered.push(serial), bye: () => {} };
  const s = new Session(Buffer.alloc(16), host, { slots: 16, maxPending: 16 });
  s.peerSlots = 1000;
  (s as unknown as { lastIn: number }).lastIn = last;
  s.link = { write: (chunks: readonly Uint8Array[]) => void written.push(Buffer.concat(chunks.map((c) => Buffer.from(c)))) } as unknown as Link;
  return { s, delivered, written };
}

const data = (serial: number) => ({ length: 0, type: QFrame.Data, flags: 0, a: serial, b: 0 });

test("queue serials: 2^32 - 1 is followed by 1, not 0; a resend from before the wrap is a duplicate", () => {
  const { s, delivered, written } = receiver(0xfffffffe);
  s.onFrame(data(0xffffffff), Buffer.alloc(0));
  s.onFrame(data(1), Buffer.alloc(0));
  s.onFrame(data(2), Buffer.alloc(0));
  assert.deepEqual(delivered, [0xffffffff, 1, 2]);
  // acknowledged serials resent after a reconnection are answered with ACK, not delivered again
  s.ack(0xffffffff, s.generation);
  written.length = 0;
  s.onFrame(data(0xffffffff), Buffer.alloc(0));
  assert.deepEqual(delivered, [0xffffffff, 1, 2]);
  assert.equal(written.length, 1);
  assert.equal(written[0][4], QFrame.Ack);
  assert.equal(written[0].readUInt32LE(8), 0xffffffff);
});

test("queue serials: 0 is never a serial, and a gap is a protocol violation", () => {
  assert.throws(() => receiver(0xffffffff).s.onFrame(data(0), Buffer.alloc(0)), { code: "ERR_PLEXUS_PROTOCOL" });
  assert.throws(() => receiver(5).s.onFrame(data(7), Buffer.alloc(0)), { code: "ERR_PLEXUS_PROTOCOL" });
  const fresh = receiver(0);
  fresh.s.onFrame(data(1), Buffer.alloc(0));
  assert.deepEqual(fresh.delivered, [1]);
});
