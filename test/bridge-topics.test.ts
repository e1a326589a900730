/**
 * The receiving half of a bridge's pub/sub (`TopicBridge`) on its own, fed NATS messages by
 * hand: how each message of a batch is accounted for (duplicates, gaps, standby, loops, graphs
 * that left), with a stand-in node whose publishers record what they publish. The same paths
 * run end to end against a real nats-server in bridge.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SequenceError, ProtocolError, type PlexusError } from "../src/index.js";
import type { Node } from "../src/node/index.js";
import type { BridgeContext } from "../src/bridge/context.js";
import type { NatsConnection, NatsModule } from "../src/bridge/nats.js";
import { TopicBridge, type TopicRoles } from "../src/bridge/topics.js";
import { NameFilter } from "../src/bridge/subjects.js";
import { envelopes, Kind, sendBatch, type Sender } from "../src/bridge/envelope.js";
import { encodedSize } from "../src/codec/index.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A TopicBridge of graph `me` importing everything, whose publishers record what they publish. */
function bridge(roles: Partial<TopicRoles> = {}): { t: TopicBridge; published: unknown[]; errors: PlexusError[]; feed(payload: Uint8Array): Promise<void> } {
  const published: unknown[] = [];
  const errors: PlexusError[] = [];
  const ctx: BridgeContext = {
    nats: {} as NatsModule,
    nc: {} as NatsConnection,
    prefix: "plexus",
    origin: "me",
    report: (e) => void errors.push(e),
    connected: () => Promise.resolve(),
  };
  const node = {
    remotePublisher: () => Promise.resolve({ local: { count: 0 }, publish: (v: unknown) => Promise.resolve(void published.push(v)), close: () => Promise.resolve() }),
  } as unknown as Node;
  const t = new TopicBridge(
    ctx,
    node,
    { exports: new NameFilter([], []), imports: new NameFilter([">"], []), capacity: 1 << 20, maxMessage: 1 << 16, maxPending: 1 << 18, backpressure: "block", queue: 16, batch: true },
    { sends: () => true, receives: () => true, accepts: () => true, ...roles },
  );
  const receive = (t as unknown as { receive(m: { subject: string; data: Uint8Array }): void }).receive.bind(t);
  return {
    t,
    published,
    errors,
    async feed(payload) {
      receive({ subject: "plexus.t.a.b", data: payload });
      await new Promise((r) => setImmediate(r)); // the publishing runs in microtasks
    },
  };
}

const other: Sender = { origin: enc("other"), port: enc("p1") };

function batchOf(from: Sender, sequences: number[]): Uint8Array {
  const out: Uint8Array[] = [];
  sendBatch(from, sequences, sequences.map((n) => encodedSize(n * 10)), (p) => out.push(p));
  return out[0] as Uint8Array;
}

describe("bridge topics: the messages of a batch, each on its own", () => {
  it("a batch that overlaps what came before: the repeats are duplicates, the rest published in order", async () => {
    const b = bridge();
    await b.feed(envelopes(Kind.Message, other, 1, 10, 1 << 20, 1 << 20)[0] as Uint8Array);
    await b.feed(envelopes(Kind.Message, other, 2, 20, 1 << 20, 1 << 20)[0] as Uint8Array);
    await b.feed(batchOf(other, [1, 2, 3, 4]));
    assert.deepEqual(b.published, [10, 20, 30, 40]);
    const c = b.t.counters;
    assert.equal(c.duplicates, 2);
    assert.equal(c.received, 4);
    assert.equal(c.gaps, 0);
    assert.deepEqual(b.errors, []);
  });

  it("gaps inside a batch are all counted and reported once", async () => {
    const b = bridge();
    await b.feed(batchOf(other, [1, 3, 4, 9]));
    assert.deepEqual(b.published, [10, 30, 40, 90]);
    assert.equal(b.t.counters.gaps, 1 + 4);
    assert.equal(b.errors.length, 1);
    const e = b.errors[0];
    assert.ok(e instanceof SequenceError);
    assert.equal(e.expected, 2);
    assert.equal(e.got, 3);
    assert.match(String(e.cause), /5 in all/);
  });

  it("frames that do not decode are dropped, counted each, reported once; the others are published", async () => {
    const b = bridge();
    const payload = batchOf(other, [1, 2, 3]);
    // Break the second and third frames' codec magic (each frame starts 16 bytes after its item header).
    const first = 40;
    const second = first + 16 + 24;
    const third = second + 16 + 24;
    payload[second + 16] ^= 0xff;
    payload[third + 16] ^= 0xff;
    await b.feed(payload);
    assert.deepEqual(b.published, [10]);
    assert.equal(b.t.counters.malformed, 2);
    assert.equal(b.errors.length, 1);
    assert.ok(b.errors[0] instanceof ProtocolError);
    assert.match(b.errors[0]?.message ?? "", /2 messages/);
  });

  it("on standby, each message is followed, none published; looped and left graphs count every message", async () => {
    const standby = bridge({ receives: () => false });
    await standby.feed(batchOf(other, [1, 2, 3]));
    assert.deepEqual(standby.published, []);
    assert.equal(standby.t.counters.standby, 3);
    const looped = bridge();
    await looped.feed(batchOf({ origin: enc("me"), port: enc("p1") }, [1, 2]));
    assert.equal(looped.t.counters.looped, 2);
    const left = bridge({ accepts: () => false });
    await left.feed(batchOf(other, [1, 2, 3]));
    assert.equal(left.t.counters.dropped, 3);
    assert.deepEqual(left.published, []);
  });
});
