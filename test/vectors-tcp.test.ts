// The test vectors of docs/protocol.md §5 (the tcp transport): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { FRAME_HEADER, frameHeader, NetType, readFrameHeader, readU64, typeWord, writeFrameHeader64 } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, encodeWelcome, readHello, readWelcome, refusal, Status } from "../src/net/handshake.js";
import { ResourceExhaustedError } from "../src/errors.js";
import { decodeHelloBody, decodeWelcomeBody, encodeHelloBody, encodeWelcomeBody, frameBytes, FrameType, TCP_SPEC } from "../src/transport/tcp-wire.js";
import { sameBytes, ABC, checkVectors } from "./helpers/vectors.js";

// ---- §5 the tcp transport -------------------------------------------------------------------------

/** The HELLO of the page: a drop-oldest receiver, pid 4242, heartbeat 1000 ms. */
const HELLO = encodeHello(TCP_SPEC, 1000, encodeHelloBody({ policy: 1, pid: 4242 }));

/** A control frame of type `type` and `value`: written as the transport writes it, read back. */
function tcpControl(type: FrameType, value: number) {
  return (bytes: Buffer): void => {
    const written = Buffer.alloc(FRAME_HEADER, 0xff);
    writeFrameHeader64(written, 0, 0, type, value);
    sameBytes(written, bytes, "writeFrameHeader64");
    if (value === 0) sameBytes(frameHeader(0, type), bytes, "frameHeader");
    assert.equal(bytes.length, 16);
    assert.equal(bytes.readUInt32LE(0), 0, "no payload");
    assert.equal(typeWord(bytes, 0), type);
    assert.equal(readU64(bytes, 0), value);
  };
}

const tcp = {
  "tcp.hello": (bytes: Buffer): void => {
    sameBytes(HELLO, bytes, "encodeHello + encodeHelloBody");
    const h = readFrameHeader(bytes, 0);
    assert.deepEqual(h, { length: 24, type: NetType.Hello, flags: 0, a: 0, b: 0 });
    const verdict = readHello(TCP_SPEC, bytes.subarray(FRAME_HEADER));
    assert.ok(verdict.ok);
    assert.equal(verdict.version, 2);
    assert.deepEqual([verdict.hello.version, verdict.hello.minVersion, verdict.hello.capabilities, verdict.hello.heartbeat], [2, 2, 0, 1000]);
    assert.deepEqual(decodeHelloBody(verdict.hello.body), { policy: 1, pid: 4242 });
  },
  "tcp.welcome": (bytes: Buffer): void => {
    const verdict = readHello(TCP_SPEC, HELLO.subarray(FRAME_HEADER));
    assert.ok(verdict.ok);
    const body = { capacity: 65536, maxMessage: 1024, startSeq: 1 };
    sameBytes(encodeWelcome(TCP_SPEC, verdict.hello, 1000, encodeWelcomeBody(body)), bytes, "encodeWelcome + encodeWelcomeBody");
    assert.equal(bytes.length, 48, "frames after it stay at 16-byte stream offsets");
    const h = readFrameHeader(bytes, 0);
    assert.deepEqual(h, { length: 32, type: NetType.Welcome, flags: 0, a: Status.Ok, b: 0 });
    const w = readWelcome(TCP_SPEC, h, bytes.subarray(FRAME_HEADER), "the page");
    assert.deepEqual([w.status, w.version, w.minVersion, w.capabilities, w.heartbeat], [0, 2, 2, 0, 1000]);
    assert.deepEqual(decodeWelcomeBody(w.body), body);
  },
  "tcp.welcome-full": (bytes: Buffer): void => {
    // As the sender refuses (tcp-listener.ts): status 3, its version range, the reason text.
    sameBytes(encodeRefusal(TCP_SPEC, Status.Full, "maxReceivers (1) reached"), bytes, "encodeRefusal");
    const h = readFrameHeader(bytes, 0);
    assert.deepEqual(h, { length: 40, type: NetType.Welcome, flags: 0, a: Status.Full, b: 0 });
    const w = readWelcome(TCP_SPEC, h, bytes.subarray(FRAME_HEADER), "the page");
    assert.equal(w.status, Status.Full);
    assert.equal(w.body.toString("utf8"), "maxReceivers (1) reached");
    assert.ok(refusal(TCP_SPEC, w, "the page") instanceof ResourceExhaustedError);
  },
  "tcp.data": (bytes: Buffer): void => {
    // As the sender builds a frame: header, payload, zero padding to frameBytes(length).
    const frame = Buffer.alloc(frameBytes(ABC.length), 0xff);
    writeFrameHeader64(frame, 0, ABC.length, FrameType.Data, 1);
    frame.set(ABC, 16);
    frame.fill(0, 16 + ABC.length);
    sameBytes(frame, bytes, "writeFrameHeader64 + payload + padding");
    const length = bytes.readUInt32LE(0);
    assert.equal(length, 3);
    assert.equal(typeWord(bytes, 0), FrameType.Data);
    assert.equal(readU64(bytes, 0), 1);
    assert.equal(bytes.length, frameBytes(length));
    assert.deepEqual(new Uint8Array(bytes.subarray(16, 16 + length)), ABC);
    assert.ok(bytes.subarray(16 + length).every((b) => b === 0), "zero padding");
  },
  "tcp.end": tcpControl(FrameType.End, 5),
  "tcp.want": tcpControl(FrameType.Want, 0),
  "tcp.ack": tcpControl(FrameType.Ack, 2 ** 32 + 32),
  "tcp.bye": tcpControl(FrameType.Bye, 0),
};

checkVectors(["tcp."], { ...tcp });
