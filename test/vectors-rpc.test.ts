// The test vectors of docs/protocol.md §6 (request/response): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { type Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { decode, decodeAt } from "../src/codec/index.js";
import { Heartbeats, TcpChannel } from "../src/rpc/tcp-channel.js";
import { ringAddress, RPC_SPEC } from "../src/rpc/handshake.js";
import { readHandshakeFrame, type Exchanged } from "../src/net/exchange.js";
import { NetType, PING_FRAME } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, readHello, readWelcome, refusal, Status } from "../src/net/handshake.js";
import { ResourceExhaustedError } from "../src/errors.js";
import { decodeOwned, errorBody, FLAG_RAW, get32, lengthBody, LITTLE_ENDIAN, rawBody, readHeader, RpcType, valueBody, writeHeader as writeRpcHeader, writeHeaderWords, type Body } from "../src/rpc/wire.js";
import { vec, sameBytes, checkVectors } from "./helpers/vectors.js";

// ---- §6 request/response ---------------------------------------------------------------------------

const RING_NAME = "/plexus-4242-0123456789ab";

/** Reads a handshake frame with the handshake's own reader, from a stand-in socket. */
async function readHandshake(bytes: Uint8Array, type: NetType.Hello | NetType.Welcome): Promise<Exchanged> {
  const socket = new PassThrough();
  socket.write(bytes);
  try {
    return await readHandshakeFrame(socket as unknown as Socket, { type, what: "the page", timeout: 5000 });
  } finally {
    socket.destroy();
  }
}

/** A HELLO vector: `hello` writes the page's bytes; a server reads back `heartbeat` and `body`. */
function helloVector(hello: Buffer, heartbeat: number, body: Uint8Array) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(hello, bytes, "encodeHello");
    const f = await readHandshake(bytes, NetType.Hello);
    assert.equal(f.rest.length, 0);
    const v = readHello(RPC_SPEC, f.payload);
    assert.ok(v.ok);
    assert.equal(v.version, 4);
    assert.deepEqual({ version: v.hello.version, minVersion: v.hello.minVersion, capabilities: v.hello.capabilities, heartbeat: v.hello.heartbeat }, { version: 4, minVersion: 4, capabilities: 0, heartbeat });
    sameBytes(v.hello.body, body, "the body");
  };
}

/** A message as the channels write it (header, then body). */
function rpcMessage(type: RpcType, id: number, aux: number, body: Body): Uint8Array {
  const out = new Uint8Array(16 + body.size);
  writeRpcHeader(out, 0, type, body.flags, id, aux);
  body.writeTo(out, 16);
  if (LITTLE_ENDIAN) {
    // The shm path writes the header as four words: the same bytes.
    const words = new Int32Array(4);
    writeHeaderWords(words, 0, type, body.flags, id, aux);
    sameBytes(new Uint8Array(words.buffer), out.subarray(0, 16), "writeHeaderWords vs writeHeader");
  }
  return out;
}

function rpcValueVector(type: RpcType, id: number, value: unknown) {
  return (bytes: Buffer): void => {
    sameBytes(rpcMessage(type, id, 0, valueBody(value)), bytes, "header + valueBody");
    assert.deepEqual(readHeader(bytes), { type, flags: 0, id, aux: 0 });
    assert.deepEqual(decodeOwned(bytes, 16, bytes.length), value);
    assert.deepEqual(decodeAt(bytes, 16, bytes.length), value);
  };
}

const rpc = {
  "rpc.hello-shm": async (bytes: Buffer): Promise<void> => {
    const name = Buffer.from(RING_NAME, "utf8");
    await helloVector(encodeHello(RPC_SPEC, 0, name), 0, name)(bytes);
    assert.deepEqual(ringAddress(bytes.subarray(32)), { name: RING_NAME, socket: `\0${RING_NAME.slice(1)}` });
  },
  "rpc.hello-tcp": helloVector(encodeHello(RPC_SPEC, 1000), 1000, new Uint8Array(0)),
  "rpc.refused": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeRefusal(RPC_SPEC, Status.Full, "maxClients"), bytes, "encodeRefusal");
    const f = await readHandshake(bytes, NetType.Welcome);
    const w = readWelcome(RPC_SPEC, f.header, f.payload, "the server");
    assert.equal(w.status, Status.Full);
    const err = refusal(RPC_SPEC, w, "the server");
    assert.ok(err instanceof ResourceExhaustedError);
    assert.match(err.message, /maxClients/);
  },
  "rpc.request": rpcValueVector(RpcType.Request, 1, { a: 1 }),
  "rpc.response": rpcValueVector(RpcType.Response, 1, { a: 2 }),
  "rpc.error": (bytes: Buffer): void => {
    sameBytes(rpcMessage(RpcType.Error, 2, 0, errorBody(new Error("boom"))), bytes, "header + errorBody");
    assert.deepEqual(readHeader(bytes), { type: RpcType.Error, flags: 0, id: 2, aux: 0 });
    assert.deepEqual(decode(bytes.subarray(16)), { code: "ERR_PLEXUS_HANDLER", name: "Error", message: "boom" });
  },
  "rpc.raw-request": (bytes: Buffer): void => {
    sameBytes(rpcMessage(RpcType.Request, 3, 0, rawBody(Uint8Array.of(1, 2, 3))), bytes, "header + rawBody");
    assert.deepEqual(readHeader(bytes), { type: RpcType.Request, flags: FLAG_RAW, id: 3, aux: 0 });
    assert.deepEqual([...bytes.subarray(16)], [1, 2, 3]);
  },
  "rpc.in-place": (bytes: Buffer): void => {
    sameBytes(rpcMessage(RpcType.InPlace, 3, 1, lengthBody(2)), bytes, "header + lengthBody");
    assert.deepEqual(readHeader(bytes), { type: RpcType.InPlace, flags: 0, id: 3, aux: 1 });
    assert.equal(bytes.length, 20);
    assert.equal(get32(bytes, 16), 2);
  },
  "rpc.tcp-request": async (bytes: Buffer): Promise<void> => {
    // rpc.request with the body's length in place of the magic
    const ring = vec("rpc.request");
    sameBytes(bytes.subarray(4), ring.subarray(4), "the frame is rpc.request but for its first word");
    assert.equal(bytes.readUInt32LE(0), ring.length - 16);
    // A tcp channel over a stand-in socket: what it writes, and what it reads.
    const written: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk);
        done();
      },
    });
    const heartbeats = new Heartbeats(1000, 10000);
    const channel = new TcpChannel(socket as unknown as Socket, 1 << 20, undefined, heartbeats, 1000);
    try {
      channel.send(RpcType.Request, 1, 0, valueBody({ a: 1 }));
      await new Promise((resolve) => setImmediate(resolve));
      sameBytes(Buffer.concat(written), bytes, "TcpChannel.send");
      const got: unknown[] = [];
      channel.onMessage = (b, at, end, frame) => {
        got.push({ header: readHeader(b, at, end), value: decodeOwned(b, at + 16, end) });
        frame.release();
      };
      // a PING before it (§0) is taken as liveness only: nothing reaches the owner for it
      socket.push(Buffer.concat([PING_FRAME, bytes]));
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(got, [{ header: { type: RpcType.Request, flags: 0, id: 1, aux: 0 }, value: { a: 1 } }]);
      assert.ok(!channel.closed);
    } finally {
      socket.destroy();
    }
  },
};


checkVectors(["rpc."], { ...rpc });
