// The test vectors of docs/protocol.md §0 (the frame and the handshake every stream protocol is
// built on): see helpers/vectors.ts. The protocols' own sections check real endpoints.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError, ResourceExhaustedError } from "../src/errors.js";
import { FrameParser } from "../src/net/frame-parser.js";
import { FRAME_HEADER, frameHeader, NetType, PING_FRAME, readFrameHeader, type FrameHeader } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, encodeWelcome, readHello, readWelcome, refusal, Status, type HandshakeSpec } from "../src/net/handshake.js";
import { checkVectors, sameBytes, vec } from "./helpers/vectors.js";

/** The page's example protocol: magic "PLXE", knows capability bit 0. */
const CLIENT: HandshakeSpec = { name: "example", server: "example server", magic: 0x45584c50, version: 4, minVersion: 2, capabilities: 5 };
const SERVER: HandshakeSpec = { name: "example", server: "example server", magic: 0x45584c50, version: 3, minVersion: 1, capabilities: 1 };

/** The frames a parser reads from `bytes` (a table that knows no protocol type: only the connection's pass). */
function frames(bytes: Buffer): { h: FrameHeader; payload: Buffer }[] {
  const out: { h: FrameHeader; payload: Buffer }[] = [];
  const p = new FrameParser({ maxMessage: 1 << 20, check: () => assert.fail("no protocol frame here") }, (h, f) => out.push({ h, payload: Buffer.from(f.subarray(FRAME_HEADER)) }));
  for (const b of bytes) p.push(Buffer.of(b)); // a byte at a time
  assert.ok(p.idle);
  return out;
}

const net = {
  "net.header": (bytes: Buffer): void => {
    sameBytes(frameHeader(0x0102, 3, 1, 0x11223344, 0x55667788), bytes, "frameHeader");
    assert.deepEqual(readFrameHeader(bytes, 0), { length: 0x0102, type: 3, flags: 1, a: 0x11223344, b: 0x55667788 });
  },
  "net.ping": (bytes: Buffer): void => {
    sameBytes(PING_FRAME, bytes, "PING_FRAME");
    assert.deepEqual(frames(bytes), [], "the parser takes PINGs and delivers nothing");
  },
  "net.hello": (bytes: Buffer): void => {
    sameBytes(encodeHello(CLIENT, 250, Buffer.from("body")), bytes, "encodeHello");
    const [{ h, payload }] = frames(bytes);
    assert.equal(h.type, NetType.Hello);
    const v = readHello(SERVER, payload);
    assert.ok(v.ok);
    assert.deepEqual({ ...v.hello, body: v.hello.body.toString() }, { version: 4, minVersion: 2, capabilities: 5, heartbeat: 250, body: "body" });
    assert.equal(v.version, 3, "the highest version both speak");
  },
  "net.welcome": (bytes: Buffer): void => {
    const v = readHello(SERVER, vec("net.hello").subarray(FRAME_HEADER));
    assert.ok(v.ok);
    sameBytes(encodeWelcome(SERVER, v.hello, 500, Buffer.from("ok")), bytes, "encodeWelcome");
    const [{ h, payload }] = frames(bytes);
    const w = readWelcome(CLIENT, h, payload, "the server");
    assert.deepEqual({ ...w, body: w.body.toString() }, { version: 3, minVersion: 1, capabilities: 1, heartbeat: 500, body: "ok", status: Status.Ok });
  },
  "net.refusal": (bytes: Buffer): void => {
    const spec = { ...SERVER, version: 3, minVersion: 3 };
    sameBytes(encodeRefusal(spec, Status.Full, "at most 2 peers"), bytes, "encodeRefusal");
    const [{ h, payload }] = frames(bytes);
    const w = readWelcome(spec, h, payload, "the server");
    assert.equal(w.status, Status.Full);
    const e = refusal(spec, w, "the server");
    assert.ok(e instanceof ResourceExhaustedError);
    assert.match(e.message, /the server has as many peers as it accepts: at most 2 peers/);
  },
};

checkVectors(["net."], net);

test("handshake: no common version is refused with both ranges; the client raises a version mismatch", () => {
  const old: HandshakeSpec = { ...CLIENT, version: 2, minVersion: 1 };
  const server: HandshakeSpec = { ...SERVER, version: 5, minVersion: 3 };
  const v = readHello(server, encodeHello(old, 100).subarray(FRAME_HEADER));
  assert.ok(!v.ok);
  assert.equal(v.status, Status.Version);
  const answer = encodeRefusal(server, v.status, v.reason);
  const w = readWelcome(old, readFrameHeader(answer, 0), answer.subarray(FRAME_HEADER), "the server");
  const e = refusal(old, w, "the server");
  assert.ok(e instanceof ProtocolError);
  assert.match(e.message, /version mismatch with the server: it speaks versions 3\.\.5, this end 1\.\.2/);
});

test("handshake: a HELLO of another Plexus protocol is refused as the wrong protocol, naming both", () => {
  const queueHello = encodeHello({ name: "queue", server: "queue server", magic: 0x51584c50, version: 3, minVersion: 3, capabilities: 0 }, 100);
  const v = readHello({ name: "request/response", server: "request/response server", magic: 0x52584c50, version: 4, minVersion: 4, capabilities: 0 }, queueHello.subarray(FRAME_HEADER));
  assert.deepEqual(v, { ok: false, status: Status.WrongProtocol, reason: "this port serves request/response, not the queue protocol" });
});

test("handshake: a WELCOME granting an unoffered capability, or choosing a version outside the range, is a protocol error", () => {
  const hello = readHello(SERVER, encodeHello(CLIENT, 1).subarray(FRAME_HEADER));
  assert.ok(hello.ok);
  const greedy = encodeWelcome({ ...SERVER, capabilities: 0xff }, { ...hello.hello, capabilities: 0xff }, 1);
  assert.throws(() => readWelcome(CLIENT, readFrameHeader(greedy, 0), greedy.subarray(FRAME_HEADER), "x"), (e: unknown) => e instanceof ProtocolError && /capabilities/.test(e.message));
  const high = encodeWelcome({ ...SERVER, version: 9 }, { ...hello.hello, version: 9 }, 1);
  assert.throws(() => readWelcome(CLIENT, readFrameHeader(high, 0), high.subarray(FRAME_HEADER), "x"), /version 9/);
});

test("frames: the connection's types are checked before the payload (malformed PING, oversized HELLO, reserved bytes, unknown types)", () => {
  const parse = (b: Buffer): void => {
    new FrameParser({ maxMessage: 1 << 20, check: () => "ok" }, () => {}).push(b);
  };
  assert.throws(() => parse(frameHeader(1, NetType.Ping)), ProtocolError);
  assert.throws(() => parse(frameHeader(0, NetType.Ping, 0, 1)), ProtocolError);
  assert.throws(() => parse(frameHeader(1 << 20, NetType.Hello)), /malformed HELLO/);
  assert.throws(() => parse(frameHeader(0, NetType.Welcome, 1)), /malformed WELCOME/);
  assert.throws(() => parse(frameHeader(0, 0x90)), /unknown frame type 0x90/);
  const reserved = frameHeader(0, 3);
  reserved[6] = 1;
  assert.throws(() => parse(reserved), /reserved/);
});
