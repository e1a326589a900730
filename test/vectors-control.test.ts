// The test vectors of docs/protocol.md §3 (the GraphServer control protocol): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as netConnect } from "node:net";
import { AccessDeniedError } from "../src/errors.js";
import { GraphClient } from "../src/graph/client.js";
import { CONTROL_SPEC, ControlParser, encodeControl, MsgType, packBody, STATUS_ACCESS_DENIED, unpackBody } from "../src/graph/protocol.js";
import { GraphServer } from "../src/graph/server.js";
import { FRAME_HEADER } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, encodeWelcome, readHello, readWelcome, refusal } from "../src/net/handshake.js";
import { sameBytes, checkVectors, vec } from "./helpers/vectors.js";

/** The messages a parser reads from `bytes`, without their headers and payload views. */
function read(parser: ControlParser, bytes: Buffer): { type: number; id: number; body: Record<string, unknown> }[] {
  return parser.push(bytes).map((m) => ({ type: m.type, id: m.id, body: m.body }));
}

/** `body` is what the encoder is given; `read` what the parser returns (`undefined` reads as nil). */
function controlVector(type: MsgType.Request | MsgType.Response | MsgType.Notify | MsgType.NotifyAck, id: number, body: Record<string, unknown>, got = body) {
  return (bytes: Buffer): void => {
    sameBytes(encodeControl(type, id, body), bytes, "encodeControl");
    const want = [{ type, id, body: got }];
    assert.deepEqual(read(new ControlParser(), bytes), want);
    // One byte at a time: the same single message, at the last byte.
    const parser = new ControlParser();
    for (let i = 0; i < bytes.length - 1; i++) assert.deepEqual(read(parser, bytes.subarray(i, i + 1)), []);
    assert.deepEqual(read(parser, bytes.subarray(bytes.length - 1)), want);
    // The same map with a fixmap header (what most MessagePack encoders write) reads the same.
    assert.deepEqual([...bytes.subarray(FRAME_HEADER, FRAME_HEADER + 2)], [0xde, 0x00], "the encoder writes a map 16 header");
    assert.ok(bytes[FRAME_HEADER + 2] < 16);
    const fixmap = Buffer.concat([bytes.subarray(0, FRAME_HEADER), Buffer.of(0x80 | bytes[FRAME_HEADER + 2]), bytes.subarray(FRAME_HEADER + 3)]);
    fixmap.writeUInt32LE(fixmap.length - FRAME_HEADER, 0);
    assert.deepEqual(read(new ControlParser(), fixmap), want);
  };
}

const HELLO_BODY = { host: "h1", pid: 4242, threadId: 0, name: "cam", token: undefined };

/** What a real GraphServer (with a token) answers to `hello`: its first frame. */
async function serverAnswer(hello: Buffer): Promise<Buffer> {
  await using server = await GraphServer.start({ port: 0, token: "secret-token" });
  const s = netConnect({ host: "127.0.0.1", port: server.address.port });
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  await once(s, "connect");
  s.write(hello);
  await once(s, "close");
  return Buffer.concat(chunks);
}

const control = {
  "control.hello": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeHello(CONTROL_SPEC, 0, packBody(HELLO_BODY)), bytes, "encodeHello with the control body");
    const [m] = new ControlParser().push(bytes);
    assert.equal(m.type, MsgType.Hello);
    const v = readHello(CONTROL_SPEC, m.payload!);
    assert.ok(v.ok);
    assert.equal(v.hello.heartbeat, 0);
    assert.deepEqual(unpackBody(v.hello.body), { ...HELLO_BODY, token: null });
  },
  "control.welcome": async (bytes: Buffer): Promise<void> => {
    const v = readHello(CONTROL_SPEC, vec("control.hello").subarray(FRAME_HEADER));
    assert.ok(v.ok);
    sameBytes(encodeWelcome(CONTROL_SPEC, v.hello, 0, packBody({ node: "n1" })), bytes, "encodeWelcome with the control body");
    const [m] = new ControlParser().push(bytes);
    const w = readWelcome(CONTROL_SPEC, m.header, m.payload!, "the server");
    assert.deepEqual([w.status, w.version, unpackBody(w.body)], [0, 2, { node: "n1" }]);
  },
  "control.refused": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeRefusal(CONTROL_SPEC, STATUS_ACCESS_DENIED, "wrong or missing access token"), bytes, "encodeRefusal");
    // a real server started with a token answers the page's HELLO (no token) with exactly these bytes
    sameBytes(await serverAnswer(vec("control.hello")), bytes, "a GraphServer's answer to a HELLO without its token");
    const [m] = new ControlParser().push(bytes);
    const w = readWelcome(CONTROL_SPEC, m.header, m.payload!, "the server");
    assert.equal(w.status, STATUS_ACCESS_DENIED);
    assert.equal(refusal(CONTROL_SPEC, w, "the server").code, "ERR_PLEXUS_PROTOCOL", "the generic reading; the client maps status 16");
    await assert.rejects(
      (async () => {
        await using server = await GraphServer.start({ port: 0, token: "secret-token" });
        await GraphClient.connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
      })(),
      (e: unknown) => e instanceof AccessDeniedError && /wrong or missing access token/.test(e.message),
    );
  },
  "control.request": controlVector(MsgType.Request, 1, { id: "p2", op: "port.remove" }),
  "control.response": controlVector(MsgType.Response, 1, { ok: true, result: {} }),
  "control.error": controlVector(MsgType.Response, 2, { ok: false, code: "ERR_PLEXUS_CYCLE", message: "cycle" }),
  "control.notify": controlVector(MsgType.Notify, 3, { subscriber: "s3", publishers: [] }),
  "control.notify-ack": (bytes: Buffer): void => {
    controlVector(MsgType.NotifyAck, 3, {})(bytes);
    // A frame with no body at all reads as an empty map too.
    const bare = Buffer.from(bytes.subarray(0, FRAME_HEADER));
    bare.writeUInt32LE(0, 0);
    assert.deepEqual(read(new ControlParser(), bare), [{ type: MsgType.NotifyAck, id: 3, body: {} }]);
  },
};

checkVectors(["control."], control);
