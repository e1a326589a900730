// The test vectors of docs/protocol.md §3 (the GraphServer control protocol): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { ControlParser, encodeControl, MsgType } from "../src/graph/protocol.js";
import { sameBytes, checkVectors } from "./helpers/vectors.js";

// ---- §3 control protocol ------------------------------------------------------------------------

/** `body` is what the encoder is given; `read` what the parser returns (`undefined` reads as nil). */
function controlVector(type: MsgType, id: number, body: Record<string, unknown>, read = body) {
  return (bytes: Buffer): void => {
    sameBytes(encodeControl(type, id, body), bytes, "encodeControl");
    const want = [{ type, id, body: read }];
    assert.deepEqual(new ControlParser().push(bytes), want);
    // One byte at a time: the same single message, at the last byte.
    const parser = new ControlParser();
    for (let i = 0; i < bytes.length - 1; i++) assert.deepEqual(parser.push(bytes.subarray(i, i + 1)), []);
    assert.deepEqual(parser.push(bytes.subarray(bytes.length - 1)), want);
    // The same map with a fixmap header (what most MessagePack encoders write) reads the same.
    assert.deepEqual([...bytes.subarray(12, 14)], [0xde, 0x00], "the encoder writes a map 16 header");
    assert.ok(bytes[14] < 16);
    const fixmap = Buffer.concat([bytes.subarray(0, 12), Buffer.of(0x80 | bytes[14]), bytes.subarray(15)]);
    fixmap.writeUInt32LE(fixmap.length - 4, 0);
    assert.deepEqual(new ControlParser().push(fixmap), want);
  };
}

const control = {
  "control.hello": controlVector(
    MsgType.Hello,
    0,
    { host: "h1", pid: 4242, threadId: 0, name: "cam", token: undefined },
    { host: "h1", pid: 4242, threadId: 0, name: "cam", token: null },
  ),
  "control.welcome": controlVector(MsgType.Welcome, 0, { node: "n1", version: 1 }),
  "control.request": controlVector(MsgType.Request, 1, { id: "p2", op: "port.remove" }),
  "control.response": controlVector(MsgType.Response, 1, { ok: true, result: {} }),
  "control.error": controlVector(MsgType.Response, 2, { ok: false, code: "ERR_PLEXUS_CYCLE", message: "cycle" }),
  "control.notify": controlVector(MsgType.Notify, 3, { subscriber: "s3", publishers: [] }),
  "control.notify-ack": (bytes: Buffer): void => {
    controlVector(MsgType.NotifyAck, 3, {})(bytes);
    // A frame with no body at all reads as an empty map too.
    const bare = Buffer.from(bytes.subarray(0, 12));
    bare.writeUInt32LE(8, 0);
    assert.deepEqual(new ControlParser().push(bare), [{ type: MsgType.NotifyAck, id: 3, body: {} }]);
  },
};


checkVectors(["control."], { ...control });
