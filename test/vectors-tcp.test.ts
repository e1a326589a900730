// The test vectors of docs/protocol.md §5 (the tcp transport): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { controlFrame, decodeHello, decodeWelcome, encodeHello, encodeWelcome, frameBytes, frameType, FrameType, readValue, writeHeader as writeTcpHeader } from "../src/transport/tcp-wire.js";
import { sameBytes, ABC, checkVectors } from "./helpers/vectors.js";

// ---- §5 the tcp transport -------------------------------------------------------------------------

/** A control frame of type `type` and `value`: written by `controlFrame`, read back. */
function tcpControl(type: FrameType, value: number) {
  return (bytes: Buffer): void => {
    sameBytes(value === 0 ? controlFrame(type) : controlFrame(type, value), bytes, "controlFrame");
    assert.equal(bytes.length, 16);
    assert.equal(bytes.readUInt32LE(0), 0, "no payload");
    assert.equal(frameType(bytes, 0), type);
    assert.equal(readValue(bytes, 0), value);
  };
}

const tcp = {
  "tcp.hello": (bytes: Buffer): void => {
    const h = { version: 1, policy: 1, pid: 4242, heartbeat: 1000 };
    sameBytes(encodeHello(h), bytes, "encodeHello");
    assert.deepEqual(decodeHello(bytes), { ...h, reserved: true });
  },
  "tcp.welcome": (bytes: Buffer): void => {
    const w = { version: 1, status: 0, capacity: 65536, maxMessage: 1024, startSeq: 1, heartbeat: 1000 };
    sameBytes(encodeWelcome(w), bytes, "encodeWelcome");
    assert.deepEqual(decodeWelcome(bytes), w);
  },
  "tcp.welcome-full": (bytes: Buffer): void => {
    // As the sender refuses (tcp.ts): status, its version, zeros.
    const w = { version: 1, status: 3, capacity: 0, maxMessage: 0, startSeq: 0, heartbeat: 0 };
    sameBytes(encodeWelcome(w), bytes, "encodeWelcome");
    assert.deepEqual(decodeWelcome(bytes), w);
  },
  "tcp.data": (bytes: Buffer): void => {
    // As the sender builds a frame: header, payload, zero padding to frameBytes(length).
    const frame = Buffer.alloc(frameBytes(ABC.length), 0xff);
    writeTcpHeader(frame, 0, ABC.length, FrameType.Data, 1);
    frame.set(ABC, 16);
    frame.fill(0, 16 + ABC.length);
    sameBytes(frame, bytes, "writeHeader + payload + padding");
    const length = bytes.readUInt32LE(0);
    assert.equal(length, 3);
    assert.equal(frameType(bytes, 0), FrameType.Data);
    assert.equal(readValue(bytes, 0), 1);
    assert.equal(bytes.length, frameBytes(length));
    assert.deepEqual(new Uint8Array(bytes.subarray(16, 16 + length)), ABC);
    assert.ok(bytes.subarray(16 + length).every((b) => b === 0), "zero padding");
  },
  "tcp.end": tcpControl(FrameType.End, 5),
  "tcp.ping": tcpControl(FrameType.Ping, 0),
  "tcp.want": tcpControl(FrameType.Want, 0),
  "tcp.ack": tcpControl(FrameType.Ack, 2 ** 32 + 32),
  "tcp.bye": tcpControl(FrameType.Bye, 0),
};


checkVectors(["tcp."], { ...tcp });
