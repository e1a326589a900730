// The test vectors of docs/protocol.md §8 (the NATS bridge): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { decode, encodedSize } from "../src/codec/index.js";
import { envelopes, Kind, readBatch, readEnvelope, Reassembler, sendBatch } from "../src/bridge/envelope.js";
import { vec, sameBytes, checkVectors } from "./helpers/vectors.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

checkVectors(["bridge."], {
  "bridge.message": (bytes) => {
    const [m] = envelopes(Kind.Message, { origin: enc("host-a"), port: enc("p1") }, 42, { a: 1 }, 1 << 20, 1 << 20);
    sameBytes(m, bytes, "bridge.message");
    const e = readEnvelope(bytes);
    assert.deepEqual({ kind: e.kind, origin: e.origin, port: e.port, sequence: e.sequence, count: e.count }, { kind: Kind.Message, origin: "host-a", port: "p1", sequence: 42, count: 1 });
    assert.deepEqual(decode(e.chunk), { a: 1 });
  },
  "bridge.chunk-0": (bytes) => {
    const value = Uint8Array.from({ length: 40 }, (_, i) => i);
    const parts = envelopes(Kind.Message, { origin: enc("h"), port: new Uint8Array(0) }, 7, value, 60, 1 << 20);
    assert.equal(parts.length, 3);
    sameBytes(parts[0], bytes, "bridge.chunk-0");
    const r = new Reassembler(1 << 20, 1 << 20);
    assert.equal(r.add(readEnvelope(vec("bridge.chunk-0"))), undefined);
    const whole = r.add(readEnvelope(parts[1])) ?? r.add(readEnvelope(parts[2]));
    assert.ok(whole);
    assert.deepEqual(decode(whole.frame), value);
  },
  "bridge.batch": (bytes) => {
    const sent: Uint8Array[] = [];
    sendBatch({ origin: enc("h"), port: enc("p") }, [3, 4], [encodedSize(1), encodedSize("ab")], (p) => sent.push(p));
    assert.equal(sent.length, 1);
    sameBytes(sent[0], bytes, "bridge.batch");
    const e = readEnvelope(bytes);
    assert.deepEqual({ kind: e.kind, origin: e.origin, port: e.port, sequence: e.sequence, items: e.items }, { kind: Kind.Batch, origin: "h", port: "p", sequence: 3, items: 2 });
    assert.deepEqual(
      readBatch(e, 1 << 20).map((m) => [m.sequence, decode(m.frame)]),
      [
        [3, 1],
        [4, "ab"],
      ],
    );
  },
});
