// The test vectors of docs/protocol.md §6 (request/response): see helpers/vectors.ts.
import assert from "node:assert/strict";
import { type Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { decode } from "../src/codec/index.js";
import { Heartbeats, TcpChannel } from "../src/rpc/tcp-channel.js";
import { checkRingAddress, hello, HelloKind, readHello } from "../src/rpc/handshake.js";
import { decodeAt, decodeOwned, errorBody, FLAG_RAW, get32, lengthBody, LITTLE_ENDIAN, rawBody, readHeader, RpcType, valueBody, writeHeader as writeRpcHeader, writeHeaderWords, type Body } from "../src/rpc/wire.js";
import { vec, sameBytes, checkVectors } from "./helpers/vectors.js";

// ---- §6 request/response ---------------------------------------------------------------------------

const RING_NAME = "/plexus-4242-0123456789ab";

/** Reads a handshake message with the handshake's own reader, from a stand-in socket. */
async function readHandshake(bytes: Uint8Array): Promise<{ kind: number; body: unknown; rest: Buffer }> {
  const socket = new PassThrough();
  socket.write(bytes);
  try {
    return await readHello(socket as unknown as Socket, 5000);
  } finally {
    socket.destroy();
  }
}

function handshakeVector(kind: HelloKind, body: unknown) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(hello(kind, body), bytes, "hello");
    const got = await readHandshake(bytes);
    assert.deepEqual(got, { kind, body, rest: Buffer.alloc(0) });
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
    const address = { name: RING_NAME, socket: `\0${RING_NAME.slice(1)}` };
    await handshakeVector(HelloKind.Shm, address)(bytes);
    assert.deepEqual(checkRingAddress((await readHandshake(bytes)).body), address);
  },
  "rpc.hello-tcp": handshakeVector(HelloKind.Tcp, { heartbeat: 1000 }),
  "rpc.tcp-ping": async (bytes: Buffer): Promise<void> => {
    // the u32 length, then an empty message of type Ping
    const header = Buffer.alloc(16);
    writeRpcHeader(header, 0, RpcType.Ping, 0, 0, 0);
    const framed = Buffer.alloc(4 + 16);
    framed.writeUInt32LE(16, 0);
    header.copy(framed, 4);
    sameBytes(framed, bytes, "length + Ping header");
    // a tcp channel takes it as liveness only: nothing reaches its owner, the channel stays open
    const socket = new Duplex({ read() {}, write(_c: Buffer, _e, done) { done(); } });
    const channel = new TcpChannel(socket as unknown as Socket, 1 << 20, undefined, new Heartbeats(1000, 10000), 1000);
    try {
      let delivered = 0;
      channel.onMessage = (_b, _at, _end, frame) => {
        delivered++;
        frame.release();
      };
      socket.push(bytes);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(delivered, 0, "a PING is not a message");
      assert.ok(!channel.closed);
    } finally {
      socket.destroy();
    }
  },
  "rpc.refused": handshakeVector(HelloKind.Refused, { code: "ERR_PLEXUS_PROTOCOL", message: "bad hello" }),
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
    sameBytes(bytes.subarray(4), vec("rpc.request"), "the framed message is rpc.request");
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
      socket.push(bytes);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(got, [{ header: { type: RpcType.Request, flags: 0, id: 1, aux: 0 }, value: { a: 1 } }]);
      assert.ok(!channel.closed);
    } finally {
      socket.destroy();
    }
  },
};


checkVectors(["rpc."], { ...rpc });
