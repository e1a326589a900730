/**
 * The receiving half of a bridge's pub/sub (`TopicBridge`) on its own, fed NATS messages by
 * hand: how each message of a batch is accounted for (duplicates, gaps, standby, loops, graphs
 * that left), with a stand-in node whose publishers record what they publish. The same paths
 * run end to end against a real nats-server in bridge.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FrameTooLargeError, SequenceError, ProtocolError, type PlexusError } from "../src/index.js";
import type { Node } from "../src/node/index.js";
import type { BridgeContext } from "../src/bridge/context.js";
import type { NatsConnection, NatsModule } from "../src/bridge/nats.js";
import { TopicBridge, type TopicRoles } from "../src/bridge/topics.js";
import { NameFilter } from "../src/bridge/subjects.js";
import { envelopes, Kind, sendBatch, type Sender } from "../src/bridge/envelope.js";
import { encodedSize } from "../src/codec/index.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A TopicBridge of graph `me` importing everything, whose publishers record what they publish. */
function bridge(
  roles: Partial<TopicRoles> = {},
  publisher: { room?: () => boolean; publishMs?: number } = {},
): { t: TopicBridge; published: unknown[]; ways: string[]; errors: PlexusError[]; feed(payload: Uint8Array): Promise<void>; receive(payload: Uint8Array): void } {
  const published: unknown[] = [];
  /** How each value was published: "now" (tryPublish, in the receiving call) or "queued" (publish). */
  const ways: string[] = [];
  const errors: PlexusError[] = [];
  const ctx: BridgeContext = {
    nats: {} as NatsModule,
    nc: {} as NatsConnection,
    prefix: "plexus",
    origin: "me",
    report: (e) => void errors.push(e),
    online: () => true,
    connected: () => Promise.resolve(),
  };
  const node = {
    remotePublisher: () =>
      Promise.resolve({
        local: { count: 0 },
        publish: async (v: unknown) => {
          if (publisher.publishMs !== undefined) await new Promise((r) => setTimeout(r, publisher.publishMs));
          published.push(v);
          ways.push("queued");
        },
        tryPublish: (v: unknown) => {
          if (publisher.room?.() === false) return false;
          published.push(v);
          ways.push("now");
          return true;
        },
        close: () => Promise.resolve(),
      }),
  } as unknown as Node;
  const t = new TopicBridge(
    ctx,
    node,
    { exports: new NameFilter([], []), imports: new NameFilter([">"], []), capacity: 1 << 20, maxMessage: 1 << 16, maxPending: 1 << 18, backpressure: "block", queue: 16, batch: true },
    // The test's own getters stay live (a spread would copy their values once).
    Object.defineProperties({ sends: () => true, receives: () => true, accepts: () => true, version: 0 }, Object.getOwnPropertyDescriptors(roles)),
  );
  const receive = (t as unknown as { receive(m: { subject: string; data: Uint8Array }): void }).receive.bind(t);
  return {
    t,
    published,
    ways,
    errors,
    receive: (payload) => receive({ subject: "plexus.t.a.b", data: payload }),
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

/** The envelope of message `seq` (value `seq * 10`) of `from`. */
function lone(from: Sender, seq: number, value: unknown = seq * 10): Uint8Array {
  return envelopes(Kind.Message, from, seq, value, 1 << 20, 1 << 20)[0] as Uint8Array;
}

describe("bridge topics: the next message of the same sender is published in the call that received it", () => {
  it("once the topic's publisher is made, each following message is published at once, in order", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    b.receive(lone(other, 2));
    b.receive(lone(other, 3));
    assert.deepEqual(b.published, [10, 20, 30], "published before any microtask ran");
    assert.deepEqual(b.ways, ["queued", "now", "now"]);
    assert.equal(b.t.counters.received, 3);
  });

  it("bytes on the short way arrive as the same kind of bytes, views of the NATS message, whatever memory it is", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    // NATS messages in a Buffer (a socket's memory) and in a plain Uint8Array.
    const second = Buffer.from(lone(other, 2, Buffer.from("ab")));
    const third = Buffer.from(lone(other, 3, Uint8Array.of(5, 6)));
    const fourth = lone(other, 4, Uint8Array.of(7));
    for (const m of [second, third, fourth]) b.receive(m);
    assert.deepEqual(b.ways, ["queued", "now", "now", "now"]);
    assert.ok(Buffer.isBuffer(b.published[1]));
    assert.deepEqual([...(b.published[1] as Buffer)], [0x61, 0x62]);
    for (const [i, m] of [[2, third], [3, fourth]] as const) {
      const v = b.published[i] as Uint8Array;
      assert.equal(Object.getPrototypeOf(v), Uint8Array.prototype, "a plain Uint8Array, not a Buffer");
      assert.equal(v.buffer, m.buffer, "a view, not a copy");
      assert.equal(v.byteOffset, m.byteOffset + m.length - v.length);
    }
    assert.deepEqual([...(b.published[2] as Uint8Array)], [5, 6]);
  });

  it("a gap, a repeat or another sender takes the full way: counted and reported as before", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    await b.feed(lone(other, 2));
    await b.feed(lone(other, 5));
    await b.feed(lone(other, 5));
    await b.feed(lone({ origin: enc("other"), port: enc("p2") }, 1, 7));
    await b.feed(lone(other, 6));
    await b.feed(lone(other, 7));
    assert.deepEqual(b.published, [10, 20, 50, 7, 60, 70]);
    assert.deepEqual(b.ways, ["queued", "now", "queued", "queued", "queued", "now"], "one sender per subject takes the short way: p2 then p1 took the full one");
    const c = b.t.counters;
    assert.equal(c.gaps, 2);
    assert.equal(c.duplicates, 1);
    assert.equal(b.errors.length, 1);
    assert.ok(b.errors[0] instanceof SequenceError);
  });

  it("a publisher without room: the message waits, and the next ones queue behind it, in order", async () => {
    let room = true;
    const b = bridge({}, { room: () => room, publishMs: 30 });
    await b.feed(lone(other, 1));
    await new Promise((r) => setTimeout(r, 50));
    room = false;
    b.receive(lone(other, 2));
    room = true;
    b.receive(lone(other, 3));
    assert.deepEqual(b.published, [10], "2 waits for room; 3 does not pass it");
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(b.published, [10, 20, 30]);
    assert.deepEqual(b.ways, ["queued", "queued", "queued"]);
    b.receive(lone(other, 4));
    assert.deepEqual(b.ways.at(-1), "now", "nothing waits any more");
    assert.equal(b.t.counters.received, 4);
  });

  it("when the roles move (an election), the next message takes the full way and follows them", async () => {
    let receives = true;
    let version = 0;
    const b = bridge({
      receives: () => receives,
      get version() {
        return version;
      },
    });
    await b.feed(lone(other, 1));
    b.receive(lone(other, 2));
    receives = false; // another bridge of this graph publishes it now
    b.receive(lone(other, 3));
    assert.equal(b.t.counters.received, 3, "the version did not move: still this bridge's (as it was until the election)");
    version++;
    await b.feed(lone(other, 4));
    assert.deepEqual(b.published, [10, 20, 30]);
    assert.equal(b.t.counters.standby, 1);
    receives = true;
    version++;
    await b.feed(lone(other, 5));
    b.receive(lone(other, 6));
    assert.deepEqual(b.published, [10, 20, 30, 50, 60]);
    assert.deepEqual(b.ways, ["queued", "now", "now", "queued", "now"]);
  });

  it("a frame that does not decode, on the way of the next message, is counted and reported by the full way", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    const bad = lone(other, 2);
    bad[32 + 5 + 2] ^= 0xff; // the codec frame's magic (after the 32-byte header and the names "other", "p1")
    await b.feed(bad);
    await b.feed(lone(other, 3));
    assert.deepEqual(b.published, [10, 30]);
    assert.equal(b.t.counters.malformed, 1);
    assert.equal(b.errors.length, 1);
    assert.ok(b.errors[0] instanceof ProtocolError);
  });
});

describe("bridge topics: the short way keeps the full way's limits", () => {
  it("a message larger than maxMessage that follows its sender's last is refused, counted and reported", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    await b.feed(lone(other, 2, new Uint8Array(70_000))); // maxMessage is 64 KiB
    await b.feed(lone(other, 3));
    assert.deepEqual(b.published, [10, 30]);
    assert.equal(b.t.counters.malformed, 1);
    assert.equal(b.t.counters.gaps, 1, "and 2 is missing from the sequence");
    assert.deepEqual(
      b.errors.map((e) => e.constructor),
      [FrameTooLargeError, SequenceError],
    );
  });

  it("after a graph's publishers are dropped, its next message makes a new one the full way", async () => {
    const b = bridge();
    await b.feed(lone(other, 1));
    b.receive(lone(other, 2));
    await b.t.dropImports("other");
    await b.feed(lone(other, 3));
    b.receive(lone(other, 4));
    assert.deepEqual(b.published, [10, 20, 30, 40]);
    assert.deepEqual(b.ways, ["queued", "now", "queued", "now"]);
  });
});
