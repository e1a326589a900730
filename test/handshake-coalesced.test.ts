// A peer may write its hello and its first messages in one write (the protocols do not require
// waiting for the server's answer, and clients in other languages will do it): every server
// handles the bytes that arrive together with the handshake.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { GraphServer } from "../src/graph/server.js";
import { CONTROL_SPEC, ControlParser, encodeControl, MsgType, packBody } from "../src/graph/protocol.js";
import { connectTcp, TcpSender } from "../src/transport/tcp.js";
import { encodeHelloBody, FrameType, TCP_SPEC } from "../src/transport/tcp-wire.js";
import { connect, queue } from "../src/index.js";
import { decode, encode } from "../src/codec/index.js";
import { RPC_SPEC } from "../src/rpc/handshake.js";
import { readHeader as readRpcHeader, RPC_HEADER, RpcType } from "../src/rpc/wire.js";
import { frame as netFrame, frameHeader, NetType } from "../src/net/frame.js";
import { encodeBody, FLAG_RELIABLE, HEADER_BYTES, QFrame, QUEUE_SPEC, writeHeader } from "../src/queue/wire.js";
import { encodeHello as netHello } from "../src/net/handshake.js";
import { raw } from "./helpers/raw.js";


async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("graph: a hello and a request in one write get the welcome and the answer", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const c = raw(server.address.port);
  c.sock.write(Buffer.concat([netHello(CONTROL_SPEC, 0, packBody({ host: "h", pid: 4242, threadId: 0, name: "raw" })), encodeControl(MsgType.Request, 7, { op: "snapshot" })]));
  const messages: { type: number; id: number; body: Record<string, unknown> }[] = [];
  const parser = new ControlParser();
  let seen = 0;
  await until(() => {
    const b = c.bytes();
    if (b.length > seen) {
      for (const m of parser.push(b.subarray(seen))) messages.push(m);
      seen = b.length;
    }
    return messages.length >= 2;
  }, "welcome and response");
  assert.equal(messages[0].type, MsgType.Welcome);
  assert.equal(messages[1].type, MsgType.Response);
  assert.equal(messages[1].id, 7);
  assert.equal(messages[1].body.ok, true, JSON.stringify(messages[1].body));
  c.sock.destroy();
});

test("tcp transport: a HELLO and a BYE in one write: welcomed, then let go", async () => {
  await using sender = await TcpSender.create({});
  const c = raw(sender.address.port);
  c.sock.write(Buffer.concat([netHello(TCP_SPEC, 1000, encodeHelloBody({ policy: 0, pid: 4242 })), frameHeader(0, FrameType.Bye)]));
  await until(() => c.bytes().length >= 48, "WELCOME");
  assert.equal(c.bytes()[4], NetType.Welcome, "a WELCOME");
  assert.equal(c.bytes().readUInt32LE(8), 0, "WELCOME status ok");
  await c.closed; // the sender answers BYE by closing the connection
  await until(() => sender.receivers === 0, "the receiver is let go");
});

test("queue: a HELLO and DATA frames in one write are all delivered", async () => {
  await using server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const identity = randomBytes(16);
  const hello = netHello(QUEUE_SPEC, 1000, encodeBody({ resumed: false, slots: 4, maxMessage: 1 << 20, identity, session: randomBytes(8) }));
  const data = (serial: number, flags: number, value: unknown): Buffer => {
    const payload = Buffer.from(encode(value));
    const b = Buffer.alloc(HEADER_BYTES + payload.length);
    writeHeader(b, 0, payload.length, QFrame.Data, flags, serial);
    payload.copy(b, HEADER_BYTES);
    return b;
  };
  const c = raw(server.port);
  c.sock.write(Buffer.concat([hello, data(1, 0, { n: 1 }), data(2, FLAG_RELIABLE, { n: 2 })]));
  const first = await server.get({ timeout: 5000 });
  const second = await server.get({ timeout: 5000 });
  assert.deepEqual([first.value, second.value], [{ n: 1 }, { n: 2 }]);
  assert.equal(first.peer, identity.toString("hex"));
  second.release();
  c.sock.destroy();
});

test("queue: a message the server refused is refused again when resent after a reconnection (never acknowledged)", async () => {
  await using server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const identity = randomBytes(16);
  const session = randomBytes(8);
  const hello = netHello(QUEUE_SPEC, 1000, encodeBody({ resumed: false, slots: 4, maxMessage: 1 << 20, identity, session }));
  const garbage = Buffer.from([0xc1, 0xc1, 0xc1, 0xc1]); // not a codec frame
  const data = Buffer.alloc(HEADER_BYTES + garbage.length);
  writeHeader(data, 0, garbage.length, QFrame.Data, FLAG_RELIABLE, 1);
  garbage.copy(data, HEADER_BYTES);
  /** The types and serials of the frames after the WELCOME. */
  const framesAfterWelcome = (b: Buffer): [number, number][] => {
    const out: [number, number][] = [];
    if (b.length < HEADER_BYTES) return out;
    for (let at = HEADER_BYTES + b.readUInt32LE(0); at + HEADER_BYTES <= b.length; at += HEADER_BYTES + b.readUInt32LE(at)) out.push([b[at + 4], b.readUInt32LE(at + 8)]);
    return out;
  };
  const first = raw(server.port);
  first.sock.write(Buffer.concat([hello, data]));
  await until(() => framesAfterWelcome(first.bytes()).length >= 1, "the NACK");
  assert.deepEqual(framesAfterWelcome(first.bytes())[0], [QFrame.Nack, 1], "the malformed message is refused");
  // the NACK is lost with the connection: the client reconnects (same session) and resends serial 1
  first.sock.destroy();
  await first.closed;
  const again = raw(server.port);
  again.sock.write(Buffer.concat([hello, data]));
  await until(() => framesAfterWelcome(again.bytes()).length >= 1, "the answer to the resend");
  assert.equal(again.bytes()[HEADER_BYTES + 16], 1, "the session was resumed (the WELCOME body's first byte, after the preamble)");
  assert.deepEqual(framesAfterWelcome(again.bytes())[0], [QFrame.Nack, 1], "refused again, not acknowledged");
  again.sock.destroy();
});

test("rpc over tcp: a hello and a request in one write get the server's WELCOME and the answer", async () => {
  await using graphServer = await GraphServer.start({ port: 0 });
  await using node = await connect({ address: `127.0.0.1:${graphServer.address.port}`, embedded: false });
  await using srv = await node.server<{ a: number }, number>("coalesced", (v) => v.a + 1, { transport: "tcp" });
  const info = (await node.snapshot()).servers.find((s) => s.service === "coalesced");
  const tcp = info?.endpoints.tcp as { host: string; port: number };
  const request = netFrame(RpcType.Request, 0, 1, 0, encode({ a: 41 }));
  const c = raw(tcp.port);
  c.sock.write(Buffer.concat([netHello(RPC_SPEC, 1000), request]));
  const WELCOME_BYTES = (b: Buffer): number => (b.length >= 16 ? 16 + b.readUInt32LE(0) : Infinity);
  await until(() => c.bytes().length >= WELCOME_BYTES(c.bytes()) + RPC_HEADER, "the answer");
  const b = c.bytes();
  const at = WELCOME_BYTES(b);
  assert.equal(b[4], NetType.Welcome, "the server's WELCOME");
  assert.equal(b.readUInt32LE(8), 0, "status ok");
  const len = b.readUInt32LE(at);
  await until(() => c.bytes().length >= at + RPC_HEADER + len, "the whole answer");
  const answer = c.bytes().subarray(at, at + RPC_HEADER + len);
  assert.deepEqual(readRpcHeader(answer, 0, answer.length), { type: RpcType.Response, flags: 0, id: 1, aux: 0 });
  assert.equal(decode(answer.subarray(RPC_HEADER)), 42);
  assert.equal(srv.counters.requests, 1);
  c.sock.destroy();
});

test("rpc over tcp: connections that end in their first read (hello + an oversized length) leave no channel behind", async () => {
  await using graphServer = await GraphServer.start({ port: 0 });
  await using node = await connect({ address: `127.0.0.1:${graphServer.address.port}`, embedded: false });
  await using srv = await node.server<number, number>("hostile", (v) => v + 1, { transport: "tcp" });
  const info = (await node.snapshot()).servers.find((s) => s.service === "hostile");
  const tcp = info?.endpoints.tcp as { host: string; port: number };
  const badFrame = frameHeader(0xffffffff, RpcType.Request); // a length no server accepts: the channel itself ends
  for (let i = 0; i < 40; i++) {
    const c = raw(tcp.port);
    c.sock.write(Buffer.concat([netHello(RPC_SPEC, 1000), badFrame]));
    await c.closed; // the server hangs up on the malformed frame
  }
  await until(() => srv.connections === 0, "every hostile channel to be forgotten");
  await using client = await node.client<number, number>("hostile", { transport: "tcp" });
  assert.equal(await client.request(1, { timeout: 5000 }), 2);
});

test("tcp transport: an onPeerError callback that throws does not stop the sender; it serves its other receivers", async () => {
  const seen: string[] = [];
  await using sender = await TcpSender.create({
    onPeerError: (err) => {
      seen.push(err.code);
      throw new Error("the application's callback failed");
    },
  });
  const bad = raw(sender.address.port);
  bad.sock.write(Buffer.concat([netHello(TCP_SPEC, 1000, encodeHelloBody({ policy: 0, pid: 4242 })), Buffer.alloc(16, 0x55)]));
  await bad.closed; // dropped for the garbage frame, reported to the throwing callback
  assert.equal(seen.length, 1, "the receiver's drop was reported");
  assert.match(seen[0], /^ERR_PLEXUS_/);
  await using rx = await connectTcp(sender.address);
  await sender.send(new Uint8Array([1, 2, 3]));
  const f = await rx.receive({ timeout: 5000 });
  assert.deepEqual([...(f?.bytes ?? [])], [1, 2, 3]);
  f?.release();
});
