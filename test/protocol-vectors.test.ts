// The test vectors of docs/protocol.md: every ```hex <label> block of the page is checked here.
// For each, the code writes exactly the page's bytes from the field values the page states, and
// reads the page's bytes back to those values. The page and this file must name the same
// vectors, so neither can drift. Where a real endpoint writes the message (a queue client or
// server, an shm writer), its bytes are compared with the page's too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once as onceEvent } from "node:events";
import { readFileSync } from "node:fs";
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { decode, encode, encodeChunks, encodedSize, encodeInto } from "../src/codec/index.js";
import { ProtocolError } from "../src/errors.js";
import { ControlParser, encodeControl, MsgType } from "../src/graph/protocol.js";
import { native, type Received } from "../src/native.js";
import { Liveness } from "../src/net/liveness.js";
import { decodeFrame, prepare, RAW_PREFIX, writeRawHeaders } from "../src/pubsub/wire.js";
import { queue, type QueueClient } from "../src/queue/index.js";
import { linkKey, MqttHub, topicPrefix } from "../src/queue/mqtt.js";
import { FrameParser } from "../src/queue/parser.js";
import {
  decodeHandshake,
  encodeHandshake,
  encodeNack,
  FLAG_IDLE,
  FLAG_RELIABLE,
  FLAG_TAKEN_OVER,
  HandshakeStatus,
  header,
  HEADER_BYTES,
  NackReason,
  QFrame,
  readHeader as readQueueHeader,
  writeHeader as writeQueueHeader,
  type Handshake,
  type Header as QueueHeader,
} from "../src/queue/wire.js";
import { AtomicsBell, RingReader, RingWriter } from "../src/ring/index.js";
import { H_EPOCH, H_WRITE_POS, H_WRITER_PID, H_WRITER_STATE, H_WRITER_WAKE, initRing, readGeometry, ringGeometry, S_STATE, slotIndex } from "../src/ring/layout.js";
import { Heartbeats, TcpChannel } from "../src/rpc/tcp-channel.js";
import { checkRingAddress, hello, HelloKind, readHello } from "../src/rpc/handshake.js";
import {
  decodeAt,
  decodeOwned,
  errorBody,
  FLAG_RAW,
  get32,
  lengthBody,
  LITTLE_ENDIAN,
  rawBody,
  readHeader,
  RpcType,
  valueBody,
  writeHeader as writeRpcHeader,
  writeHeaderWords,
  type Body,
} from "../src/rpc/wire.js";
import { connectShm, ShmSender } from "../src/transport/shm.js";
import {
  controlFrame,
  decodeHello,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  frameBytes,
  frameType,
  FrameType,
  readValue,
  writeHeader as writeTcpHeader,
} from "../src/transport/tcp-wire.js";

// ---- the page --------------------------------------------------------------------------------

const DOC = fileURLToPath(new URL("../../docs/protocol.md", import.meta.url));

/** The page's vectors by label; throws on a malformed block (so a typo cannot hide a vector). */
function readVectors(text: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const opened = text.split("\n").filter((line) => /^```hex\b/.test(line)).length;
  for (const m of text.matchAll(/^```hex[ \t]+(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    const [, label, block] = m;
    assert.ok(!out.has(label), `vector ${label} appears twice in docs/protocol.md`);
    const lines = block.split("\n").filter((line) => line.trim() !== "");
    assert.ok(lines.length > 0, `vector ${label} is empty`);
    const bytes: number[] = [];
    lines.forEach((line, i) => {
      const tokens = line.trim().split(/ +/);
      for (const t of tokens) assert.match(t, /^[0-9a-f]{2}$/, `vector ${label}: "${t}" is not a lowercase hex byte`);
      const last = i === lines.length - 1;
      assert.ok(last ? tokens.length <= 16 : tokens.length === 16, `vector ${label}, line ${i + 1}: 16 bytes a line`);
      bytes.push(...tokens.map((t) => parseInt(t, 16)));
    });
    out.set(label, Buffer.from(bytes));
  }
  assert.equal(out.size, opened, "every ```hex block of docs/protocol.md has a label and its closing fence");
  return out;
}

const VECTORS = readVectors(readFileSync(DOC, "utf8"));

/** The page's bytes of `label`. */
function vec(label: string): Buffer {
  const v = VECTORS.get(label);
  assert.ok(v !== undefined, `docs/protocol.md has no vector ${label}`);
  return v;
}

/** Asserts two byte sequences are equal, showing both in hex when they are not. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex").replace(/(..)(?!$)/g, "$1 ");
  assert.equal(hex(actual), hex(expected), `${what}: the code's bytes differ from the page's`);
}

const ABC = Uint8Array.of(0x61, 0x62, 0x63);

// ---- §1 the ring -------------------------------------------------------------------------------

/** A fresh ring of capacity 4096, 1 reader slot, writer pid 4242 (the page's values). */
function freshRing(): { buffer: SharedArrayBuffer; base: number; data: Uint8Array; words: Int32Array } {
  const geo = ringGeometry({ capacity: 4096, maxReaders: 1 });
  const buffer = new SharedArrayBuffer(geo.byteLength);
  initRing(buffer, geo, 4242);
  return { buffer, base: geo.headerBytes, data: new Uint8Array(buffer, geo.headerBytes, geo.capacity), words: new Int32Array(buffer) };
}

function ringWriter(buffer: SharedArrayBuffer): RingWriter {
  return new RingWriter(buffer, new AtomicsBell(new Int32Array(buffer), H_WRITER_WAKE), { nativeCopy: false });
}

function ringReader(buffer: SharedArrayBuffer): RingReader {
  return new RingReader(buffer, (w, i) => new AtomicsBell(w, i), undefined);
}

/** Reads the next message (it must be there) and releases it; returns a copy and its sequence. */
function readOne(reader: RingReader): { bytes: Uint8Array; sequence: number; at: number } {
  const at = reader.tryReadAt();
  assert.ok(at >= 0, "a message is ready");
  const bytes = reader.ring.bytes.slice(at, at + reader.length);
  const sequence = reader.sequence;
  reader.release();
  return { bytes, sequence, at };
}

/**
 * The page's wrap scenario: "abc", 2032 bytes, 2032 bytes again into a fresh ring, read by one
 * reader. `marker` (if given) replaces the 16 bytes at data offset 2080 before the third message
 * is read. Returns the marker's bytes as written and the third message as read.
 */
function wrapScenario(marker?: Uint8Array): { written: Uint8Array; third: ReturnType<typeof readOne>; base: number } {
  const { buffer, base, data } = freshRing();
  const writer = ringWriter(buffer);
  const reader = ringReader(buffer);
  assert.ok(writer.tryWrite(ABC));
  readOne(reader);
  assert.ok(writer.tryWrite(new Uint8Array(2032)));
  readOne(reader);
  assert.ok(writer.tryWrite(new Uint8Array(2032).fill(0x5a)));
  const written = data.slice(2080, 2096);
  if (marker !== undefined) data.set(marker, 2080);
  const third = readOne(reader);
  reader.leave();
  writer.close();
  return { written, third, base };
}

const ring = {
  "ring.header": (bytes: Buffer): void => {
    const { buffer } = freshRing();
    sameBytes(new Uint8Array(buffer, 0, 32), bytes, "initRing");
    assert.ok(new Uint8Array(buffer, 32, 4096 - 32).every((b) => b === 0), "the rest of the header is zero");
    // Read back: a header whose first 32 bytes are the page's is a valid ring header.
    const copy = new SharedArrayBuffer(buffer.byteLength);
    new Uint8Array(copy).set(bytes);
    assert.deepEqual(readGeometry(copy), { headerBytes: 4096, capacity: 4096, maxReaders: 1 });
    const h = new Int32Array(copy);
    assert.deepEqual([h[H_WRITER_PID], h[H_WRITER_STATE], h[H_EPOCH]], [4242, 1, 0], "writerPid, writerState, epoch");
  },
  "ring.frame": (bytes: Buffer): void => {
    const w = freshRing();
    const writer = ringWriter(w.buffer);
    assert.ok(writer.tryWrite(ABC));
    sameBytes(w.data.subarray(0, 32), bytes, "RingWriter.tryWrite");
    writer.close();
    // Read back: the page's frame, committed by hand, is "abc" with sequence 1.
    const r = freshRing();
    const reader = ringReader(r.buffer);
    r.data.set(bytes, 0);
    Atomics.store(r.words, H_WRITE_POS, bytes.length);
    const got = readOne(reader);
    assert.deepEqual(got.bytes, ABC);
    assert.equal(got.sequence, 1);
    assert.equal(reader.tryReadAt(), -1, "one message");
    reader.leave();
  },
  "ring.wrap": (bytes: Buffer): void => {
    const { written } = wrapScenario();
    sameBytes(written, bytes, "the wrap marker RingWriter wrote");
    // Read back: with the page's marker, and with its ignored bytes (length, 8..15) changed,
    // the reader skips to offset 0 of the next lap and reads message 3 there.
    const scrambled = Buffer.from(bytes);
    scrambled.writeInt32LE(0x12345678, 0);
    scrambled.fill(0xee, 8, 16);
    for (const marker of [bytes, scrambled]) {
      const { third, base } = wrapScenario(marker);
      assert.equal(third.sequence, 3);
      assert.equal(third.at, base + 16, "the frame after the marker is at data offset 0");
      assert.equal(third.bytes.length, 2032);
      assert.ok(third.bytes.every((b) => b === 0x5a));
    }
  },
};

// ---- §2 the shm handshake ------------------------------------------------------------------------

/** The page's JOIN: slot 0, ticket 0x1234. */
const JOIN_STATE = (0x1234 << 2) | 2;

/** The next message on a non-blocking Unix socket (waits up to 5 s). */
async function receive(fd: number): Promise<Received> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const msg = native().recvFds(fd, 64);
    if (msg !== null) return msg;
    assert.ok(Date.now() < deadline, "no message within 5 s");
    await sleep(2);
  }
}

/** Sends `join` (with an eventfd) to a real shm writer whose slot 0 holds `state`; returns its answer. */
async function askWriter(join: Uint8Array, state: number): Promise<Buffer> {
  const n = native();
  const sender = ShmSender.create({ capacity: 4096, maxReceivers: 1 });
  const efd = n.eventfdCreate();
  let fd = -1;
  try {
    // What a reader in another process sees: its own mapping of the segment.
    const words = new Int32Array(n.segmentOpen(sender.address.name));
    Atomics.store(words, slotIndex(0, S_STATE), state);
    fd = n.unixConnect(sender.address.socket);
    assert.equal(n.sendFds(fd, join, [efd]), join.length);
    const answer = await receive(fd);
    for (const f of answer.fds) n.close(f);
    assert.equal(answer.fds.length, 1, "the answer carries the writer's eventfd");
    return Buffer.from(answer.data);
  } finally {
    if (fd >= 0) n.close(fd);
    n.close(efd);
    await sender.close();
  }
}

/**
 * Runs `connectShm` against a stand-in writer (a real segment and socket) that answers the join
 * with `answer`. Returns the join the reader sent, the state word of the slot it claimed, and
 * how `connectShm` ended.
 */
async function askReader(answer: Uint8Array): Promise<{ join: Buffer; state: number; outcome: unknown }> {
  const n = native();
  const id = `plexus-${process.pid}-${randomBytes(6).toString("hex")}`;
  const address = { kind: "shm" as const, name: `/${id}`, socket: `\0${id}` };
  const geo = ringGeometry({ capacity: 4096, maxReaders: 1 });
  const buffer = n.segmentCreate(address.name, geo.byteLength, 0o600);
  initRing(buffer, geo, process.pid);
  const listenFd = n.unixListen(address.socket);
  const efd = n.eventfdCreate();
  let peer = -1;
  try {
    const connecting = connectShm(address, { connectTimeout: 5000 });
    connecting.catch(() => {}); // observed below
    const deadline = Date.now() + 5000;
    while ((peer = n.unixAccept(listenFd)) < 0) {
      assert.ok(Date.now() < deadline, "the reader did not connect");
      await sleep(2);
    }
    const join = await receive(peer);
    for (const f of join.fds) n.close(f);
    assert.equal(join.fds.length, 1, "the join carries the reader's eventfd");
    const state = Atomics.load(new Int32Array(buffer), slotIndex(0, S_STATE));
    n.sendFds(peer, answer, [efd]);
    let outcome: unknown;
    try {
      const receiver = await connecting;
      await receiver.close();
      outcome = "joined";
    } catch (err) {
      outcome = err;
    }
    return { join: Buffer.from(join.data), state, outcome };
  } finally {
    if (peer >= 0) n.close(peer);
    n.close(listenFd);
    n.close(efd);
    n.segmentUnlink(address.name);
  }
}

const shm = {
  "shm.join": async (bytes: Buffer): Promise<void> => {
    // Written: the join connectShm sends, with its own ticket and pid in place of the page's.
    const { join, state, outcome } = await askReader(vec("shm.accept"));
    assert.equal(outcome, "joined");
    assert.equal(state & 3, 2, "the slot is active when the join is sent");
    const expected = Buffer.from(bytes);
    expected.writeInt32LE(state, 8);
    expected.writeUInt32LE(process.pid, 12);
    sameBytes(join, expected, "connectShm's join (ticket and pid are this run's)");
    // Read: a writer whose slot 0 holds state 0x48d2 accepts the page's join.
    assert.equal(bytes.readUInt32LE(4), 0);
    assert.equal(bytes.readInt32LE(8), JOIN_STATE);
    assert.equal(bytes.readUInt32LE(12), 4242);
    assert.equal((await askWriter(bytes, JOIN_STATE)).readUInt32LE(4), 0, "status 0: joined");
  },
  "shm.accept": async (bytes: Buffer): Promise<void> => {
    sameBytes(await askWriter(vec("shm.join"), JOIN_STATE), bytes, "the writer's answer to a join it accepts");
    assert.equal((await askReader(bytes)).outcome, "joined");
  },
  "shm.refuse": async (bytes: Buffer): Promise<void> => {
    sameBytes(await askWriter(vec("shm.join"), (0x4321 << 2) | 2), bytes, "the writer's answer to a join for a slot of another owner");
    sameBytes(await askWriter(vec("shm.join"), 0), bytes, "the writer's answer to a join for a free slot");
    const { outcome } = await askReader(bytes);
    assert.ok(outcome instanceof ProtocolError && /refused/.test(outcome.message), `connectShm rejects: ${String(outcome)}`);
  },
};

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

// ---- §4 pub/sub messages --------------------------------------------------------------------------

/** The frame of `value` written by each of the codec's writers. */
function codecWriters(value: unknown): Uint8Array[] {
  const plan = encodedSize(value);
  const into = new Uint8Array(plan.byteLength);
  assert.equal(encodeInto(plan, into), plan.byteLength);
  return [encode(value), into, Buffer.concat(encodeChunks(encodedSize(value)))];
}

function pubsubMessage(value: unknown, sequence: number): Uint8Array {
  const p = prepare(value, sequence);
  const out = new Uint8Array(p.size);
  p.writeTo(out);
  return out;
}

const pubsub = {
  "codec.value": (bytes: Buffer): void => {
    for (const frame of codecWriters({ a: 1 })) sameBytes(frame, bytes, "the codec");
    assert.deepEqual(decode(bytes), { a: 1 });
  },
  "codec.buffer": (bytes: Buffer): void => {
    for (const frame of codecWriters({ a: Uint8Array.of(1, 2, 3) })) sameBytes(frame, bytes, "the codec");
    const got = decode(bytes) as { a: Uint8Array };
    assert.deepEqual(got, { a: Uint8Array.of(1, 2, 3) });
    assert.equal(got.a.constructor, Uint8Array);
  },
  "pubsub.value": (bytes: Buffer): void => {
    sameBytes(pubsubMessage({ a: 1 }, 1), bytes, "prepare");
    assert.deepEqual(decodeFrame(bytes), { sequence: 1, value: { a: 1 } });
  },
  "pubsub.raw": (bytes: Buffer): void => {
    sameBytes(pubsubMessage(Uint8Array.of(1, 2, 3), 2), bytes, "prepare");
    const loan = new Uint8Array(RAW_PREFIX + 3);
    loan.set([1, 2, 3], RAW_PREFIX);
    writeRawHeaders(loan, 2, 3);
    sameBytes(loan, bytes, "a loan committed with 3 bytes");
    const got = decodeFrame(bytes);
    assert.equal(got.sequence, 2);
    assert.deepEqual(got.value, Uint8Array.of(1, 2, 3));
  },
};

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

// ---- §7 queues ---------------------------------------------------------------------------------

/** The page's client identity, session token, and server identity. */
const CLIENT_ID = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const TOKEN = Buffer.from("1122334455667788", "hex");
const SERVER_ID = Buffer.from("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "hex");

/** The page's HELLO: what a client with the default (fast) options and identity CLIENT_ID sends. */
const Q_HELLO: Handshake = { version: 2, status: 0, resumed: false, slots: 16, heartbeat: 1000, maxMessage: 64 << 20, identity: CLIENT_ID, session: TOKEN };
/** The page's WELCOME: what a server with the default options and identity SERVER_ID answers to Q_HELLO. */
const Q_WELCOME: Handshake = { ...Q_HELLO, identity: SERVER_ID };

/** A lazily started scenario, run once however many vectors use it. */
function lazily<T>(run: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= run());
}

/**
 * The frames a socket receives, each whole (header and payload) as it was on the wire. PINGs
 * (an endpoint writes one whenever it was quiet for its heartbeat) are checked against the page's
 * and skipped.
 */
class FrameTap {
  private buffered = Buffer.alloc(0);
  private ended = false;
  /** PINGs skipped so far. */
  pings = 0;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => (this.buffered = Buffer.concat([this.buffered, chunk])));
    socket.on("close", () => (this.ended = true));
    socket.on("error", () => {});
  }

  /** The next frame, or null once the peer closed the connection after its last frame (waits up to 5 s). */
  async next(): Promise<Buffer | null> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const b = this.buffered;
      if (b.length >= HEADER_BYTES && b.length >= HEADER_BYTES + b.readUInt32LE(0)) {
        const frame = Buffer.from(b.subarray(0, HEADER_BYTES + b.readUInt32LE(0)));
        this.buffered = b.subarray(frame.length);
        if (frame[4] !== QFrame.Ping) return frame;
        sameBytes(frame, vec("queue.ping"), "a PING an endpoint wrote");
        this.pings++;
        continue;
      }
      if (this.ended) {
        assert.equal(b.length, 0, "the connection closed between frames");
        return null;
      }
      assert.ok(Date.now() < deadline, "no queue frame within 5 s");
      await sleep(2);
    }
  }
}

async function dial(port: number): Promise<{ socket: Socket; tap: FrameTap }> {
  const socket = netConnect({ host: "127.0.0.1", port, noDelay: true });
  const tap = new FrameTap(socket);
  await onceEvent(socket, "connect");
  return { socket, tap };
}

/**
 * A real client (identity CLIENT_ID, default options but `mode`) against a stand-in server that
 * answers its HELLO with the page's WELCOME (echoing the client's token) and acknowledges its
 * DATA: what the client wrote for connect, `put({a: 1})` and close, frame by frame.
 */
async function clientWrites(mode: "fast" | "reliable"): Promise<{ token: Buffer; hello: Buffer; data: Buffer; bye: Buffer }> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = onceEvent(server, "connection");
  let client: QueueClient | undefined;
  let socket: Socket | undefined;
  try {
    const connecting = queue.client({ url: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, identity: CLIENT_ID, mode, linger: 1000 });
    connecting.catch(() => {}); // observed below
    socket = (await accepted)[0] as Socket;
    const tap = new FrameTap(socket);
    const hello = await tap.next();
    assert.ok(hello !== null, "the client sends HELLO");
    const { session: token } = decodeHandshake(hello.subarray(HEADER_BYTES));
    socket.write(encodeHandshake(QFrame.Welcome, { ...Q_WELCOME, session: token }));
    client = await connecting;
    const put = client.put({ a: 1 });
    const data = await tap.next();
    assert.ok(data !== null, "the client sends DATA");
    socket.write(header(0, QFrame.Ack, 0, readQueueHeader(data, 0).serial));
    await put;
    await client.close();
    const bye = await tap.next();
    assert.ok(bye !== null, "the client sends BYE");
    assert.equal(await tap.next(), null, "then closes the connection");
    return { token, hello, data, bye };
  } finally {
    socket?.destroy();
    await client?.close();
    server.close();
  }
}

const fastClient = lazily(() => clientWrites("fast"));
const reliableClient = lazily(() => clientWrites("reliable"));

/**
 * A real server (default options but `maxQueue: 1`), talked to over raw sockets with the page's
 * frames: what it wrote, frame by frame, with the identity it drew.
 *
 * A sends the page's HELLO and DATA 1, which is queued and acknowledged (and taken by a get);
 * A drops. B sends the same HELLO (the session resumes). C sends it with another token (C takes
 * the identity over: B gets BYE, taken over), then DATA 1 (queued, acknowledged) and DATA 2
 * (parked: the queue holds one message). D sends the page's HELLO again (its token was
 * superseded), E a HELLO of version 1 (36 bytes, no token). Then the server closes: C's DATA 2
 * is refused, C gets BYE.
 */
const serverWrites = lazily(async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", maxQueue: 1, linger: 1000 });
  const identity = (server as unknown as { identity: Buffer }).identity;
  const sockets: Socket[] = [];
  const open = async (): Promise<FrameTap> => {
    const { socket, tap } = await dial(server.port);
    sockets.push(socket);
    return tap;
  };
  const data2 = Buffer.from(vec("queue.data-fast"));
  data2.writeUInt32LE(2, 8);
  const otherHello = encodeHandshake(QFrame.Hello, { ...Q_HELLO, session: Buffer.from("99aabbccddeeff00", "hex") });
  const v1Hello = Buffer.from(vec("queue.hello").subarray(0, HEADER_BYTES + 36));
  v1Hello.writeUInt32LE(36, 0);
  v1Hello.writeUInt16LE(1, HEADER_BYTES + 4);
  try {
    const a = await open();
    a.socket.write(vec("queue.hello"));
    const welcome = await a.next();
    a.socket.write(vec("queue.data-fast"));
    const ack = await a.next();
    const m = await server.get({ timeout: 5000 });
    assert.deepEqual([m.value, m.peer], [{ a: 1 }, CLIENT_ID.toString("hex")]);
    a.socket.destroy();

    const b = await open();
    b.socket.write(vec("queue.hello"));
    const resumed = await b.next();

    const c = await open();
    c.socket.write(otherHello);
    const cWelcome = await c.next();
    const takenOver = await b.next();
    assert.equal(await b.next(), null, "the server closes the connection it wrote BYE (taken over) to");
    c.socket.write(Buffer.concat([vec("queue.data-fast"), data2]));
    const cAck = await c.next();

    const d = await open();
    d.socket.write(vec("queue.hello"));
    const superseded = await d.next();
    assert.equal(await d.next(), null, "the server closes the connection after a refusal");

    const e = await open();
    e.socket.write(v1Hello);
    const version = await e.next();
    assert.equal(await e.next(), null, "the server closes the connection after a refusal");

    await server.close();
    const nack = await c.next();
    const bye = await c.next();
    assert.equal(await c.next(), null, "the server closes the connection after BYE");
    return { identity, welcome, ack, resumed, cWelcome, takenOver, cAck, superseded, version, nack, bye };
  } finally {
    for (const s of sockets) s.destroy();
    await server.close();
  }
});

/**
 * A real server that beats every 50 ms and collects sessions idle for 400 ms, given the page's
 * HELLO over a raw socket: the PINGs it writes while idle, then its BYE.
 */
const idleServerWrites = lazily(async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", heartbeat: 50, idleTimeout: 400, linger: 1000 });
  let socket: Socket | undefined;
  try {
    const d = await dial(server.port);
    socket = d.socket;
    socket.write(vec("queue.hello"));
    const welcome = await d.tap.next();
    assert.ok(welcome !== null && welcome[4] === QFrame.Welcome && welcome[HEADER_BYTES + 6] === HandshakeStatus.Ok, "joined");
    const bye = await d.tap.next();
    assert.ok(bye !== null, "the server writes BYE");
    assert.equal(await d.tap.next(), null, "the server closes the connection after BYE");
    return { bye, pings: d.tap.pings };
  } finally {
    socket?.destroy();
    await server.close();
  }
});

/** A frame the real server wrote: the page's bytes, with the server's identity in place of the page's. */
async function fromServer(pick: (w: Awaited<ReturnType<typeof serverWrites>>) => Buffer | null, bytes: Buffer, what: string, identityAt?: number): Promise<void> {
  const w = await serverWrites();
  const frame = pick(w);
  assert.ok(frame !== null, `the server wrote ${what}`);
  const expected = Buffer.from(bytes);
  if (identityAt !== undefined) w.identity.copy(expected, identityAt);
  sameBytes(frame, expected, `the server's ${what}${identityAt !== undefined ? " (the identity is this run's)" : ""}`);
}

/** Where the writer's identity is in a HELLO or WELCOME frame. */
const IDENTITY_AT = HEADER_BYTES + 20;

/** The frames a FrameParser reads from `bytes`, fed whole and fed one byte at a time (the same). */
function queueFrames(bytes: Buffer): { header: QueueHeader; payload: Buffer }[] {
  const read = (chunks: Buffer[]): { header: QueueHeader; payload: Buffer }[] => {
    const out: { header: QueueHeader; payload: Buffer }[] = [];
    const parser = new FrameParser(64 << 20, (h, payload) => out.push({ header: h, payload: Buffer.from(payload) }));
    for (const c of chunks) parser.push(c);
    assert.ok(parser.idle, "the bytes end with a whole frame");
    return out;
  };
  const whole = read([bytes]);
  assert.deepEqual(read([...bytes].map((b) => Buffer.of(b))), whole);
  return whole;
}

/** The one frame `bytes` hold. */
function queueFrame(bytes: Buffer): { header: QueueHeader; payload: Buffer } {
  const frames = queueFrames(bytes);
  assert.equal(frames.length, 1, "one frame");
  return frames[0];
}

function queueHandshake(type: QFrame.Hello | QFrame.Welcome, fields: Handshake, real: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeHandshake(type, fields), bytes, "encodeHandshake");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 44, type, flags: 0, serial: 0 });
    assert.deepEqual(decodeHandshake(payload), fields);
    await real(bytes);
  };
}

/** A frame without payload: `header` writes it, the parser reads it back. */
function queueControl(type: QFrame, flags: number, serial: number, real?: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(header(0, type, flags, serial), bytes, "header");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 0, type, flags, serial });
    assert.equal(payload.length, 0);
    await real?.(bytes);
  };
}

/** DATA `serial` of `{a: 1}`: as a put writes it (the codec frame after 12 bytes of room, the header written into the room). */
function queueData(flags: number, serial: number, real: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    const frame = encode({ a: 1 });
    const b = Buffer.alloc(HEADER_BYTES + frame.length, 0xff);
    b.set(frame, HEADER_BYTES);
    writeQueueHeader(b, 0, frame.length, QFrame.Data, flags, serial);
    sameBytes(b, bytes, "writeHeader + codec frame");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 20, type: QFrame.Data, flags, serial });
    assert.deepEqual(decode(payload), { a: 1 });
    await real(bytes);
  };
}

/** A fake mqtt.js client: what an MqttHub publishes, and a way to deliver messages to it. */
function mqttHub(identity: Buffer, token: Buffer | undefined): { hub: MqttHub; published: { topic: string; payload: Buffer; qos: number }[] } {
  const published: { topic: string; payload: Buffer; qos: number }[] = [];
  const client = {
    on: () => undefined,
    subscribeAsync: () => Promise.resolve(),
    publish: (topic: string, payload: Buffer, opts: { qos: number }) => published.push({ topic, payload, qos: opts.qos }),
    endAsync: () => Promise.resolve(),
  };
  // MqttHub.connect dials a broker; the hub itself only needs something to publish through.
  const Hub = MqttHub as unknown as new (client: unknown, identity: Buffer, prefix: string, token: Buffer | undefined) => MqttHub;
  return { hub: new Hub(client, identity, topicPrefix("jobs"), token), published };
}

const queues = {
  "queue.hello": queueHandshake(QFrame.Hello, Q_HELLO, async (bytes) => {
    const { token, hello } = await fastClient();
    const expected = Buffer.from(bytes);
    token.copy(expected, HEADER_BYTES + 36);
    sameBytes(hello, expected, "a client's HELLO (the token is this run's)");
  }),
  "queue.welcome": queueHandshake(QFrame.Welcome, Q_WELCOME, (bytes) => fromServer((w) => w.welcome, bytes, "WELCOME", IDENTITY_AT)),
  "queue.welcome-resumed": queueHandshake(QFrame.Welcome, { ...Q_WELCOME, resumed: true }, (bytes) =>
    fromServer((w) => w.resumed, bytes, "WELCOME to the same client reconnecting", IDENTITY_AT),
  ),
  "queue.welcome-superseded": queueHandshake(QFrame.Welcome, { ...Q_WELCOME, status: HandshakeStatus.Superseded }, async (bytes) => {
    await fromServer((w) => w.superseded, bytes, "WELCOME to a client whose identity was taken over", IDENTITY_AT);
    // The new session started from the other token: a WELCOME like the page's, with that token.
    const expected = Buffer.from(vec("queue.welcome"));
    Buffer.from("99aabbccddeeff00", "hex").copy(expected, HEADER_BYTES + 36);
    await fromServer((w) => w.cWelcome, expected, "WELCOME to the client that took the identity over", IDENTITY_AT);
  }),
  "queue.welcome-version": queueHandshake(QFrame.Welcome, { ...Q_WELCOME, status: HandshakeStatus.Version, session: Buffer.alloc(8) }, (bytes) =>
    fromServer((w) => w.version, bytes, "WELCOME to a version-1 HELLO", IDENTITY_AT),
  ),
  "queue.data-fast": queueData(0, 1, async (bytes) => {
    sameBytes((await fastClient()).data, bytes, "a fast client's put({a: 1})");
  }),
  "queue.data-reliable": queueData(FLAG_RELIABLE, 1, async (bytes) => {
    sameBytes((await reliableClient()).data, bytes, "a reliable client's put({a: 1})");
  }),
  "queue.ack": queueControl(QFrame.Ack, 0, 1, async (bytes) => {
    await fromServer((w) => w.ack, bytes, "ACK of a queued DATA 1");
    await fromServer((w) => w.cAck, bytes, "ACK of a queued DATA 1 (the new session's)");
  }),
  "queue.nack": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeNack(2, NackReason.Closed, "queue closed"), bytes, "encodeNack");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 16, type: QFrame.Nack, flags: 0, serial: 2 });
    assert.equal(payload.readUInt32LE(0), NackReason.Closed);
    assert.equal(payload.toString("utf8", 4), "queue closed");
    await fromServer((w) => w.nack, bytes, "NACK of the DATA 2 it held when it closed");
  },
  "queue.ping": queueControl(QFrame.Ping, 0, 0, async () => {
    // The tap compared each PING the idle server wrote with the page's.
    assert.ok((await idleServerWrites()).pings > 0, "the idle server wrote PINGs");
  }),
  "queue.bye": queueControl(QFrame.Bye, 0, 0, async (bytes) => {
    sameBytes((await fastClient()).bye, bytes, "a client's BYE on close");
    await fromServer((w) => w.bye, bytes, "BYE on close");
  }),
  "queue.bye-idle": queueControl(QFrame.Bye, FLAG_IDLE, 0, async (bytes) => {
    sameBytes((await idleServerWrites()).bye, bytes, "the server's BYE to a session it collected");
  }),
  "queue.bye-taken-over": queueControl(QFrame.Bye, FLAG_TAKEN_OVER, 0, (bytes) => fromServer((w) => w.takenOver, bytes, "BYE to the client whose identity was taken over")),
  "queue.mqtt-data": (bytes: Buffer): void => {
    const data = vec("queue.data-fast");
    const clientHex = CLIENT_ID.toString("hex");
    // Written: the server's link to the client's session publishes DATA 1 of {a: 1}.
    const server = mqttHub(SERVER_ID, undefined);
    const toClient = server.hub.link(linkKey(clientHex, TOKEN), `c/${clientHex}`, 64 << 20, TOKEN, new Liveness(500, 1000, 5000));
    toClient.write([data]);
    assert.deepEqual(server.published, [{ topic: "plexus/q/jobs/c/000102030405060708090a0b0c0d0e0f", payload: bytes, qos: 1 }]);
    assert.equal(bytes.length, 16 + 8 + HEADER_BYTES + bytes.readUInt32LE(24), "identity, token, header, payload");
    // Read: the client (identity and token the page's) gets the frame, from the server's identity.
    const client = mqttHub(CLIENT_ID, TOKEN);
    const fromServerLink = client.hub.link("server", "s", 64 << 20, TOKEN, new Liveness(500, 1000, 5000));
    const unknown: string[] = [];
    client.hub.onUnknown = (peer, token, frame) => {
      unknown.push(`${peer}:${token.toString("hex")}`);
      fromServerLink.receive(frame);
    };
    const got: { header: QueueHeader; payload: Buffer }[] = [];
    fromServerLink.bind({ frame: (h, payload) => got.push({ header: h, payload }), gone: (err) => assert.fail(`the link ended: ${String(err)}`) });
    const route = (payload: Buffer): void => (client.hub as unknown as { route(topic: string, payload: Buffer): void }).route(server.published[0].topic, payload);
    route(bytes);
    assert.deepEqual(unknown, [`${SERVER_ID.toString("hex")}:${TOKEN.toString("hex")}`]);
    assert.deepEqual(got, [{ header: { length: 20, type: QFrame.Data, flags: 0, serial: 1 }, payload: data.subarray(HEADER_BYTES) }]);
    assert.deepEqual(decode(got[0].payload), { a: 1 });
    // The same message with another session token is not for this client: dropped.
    const other = Buffer.from(bytes);
    other[16] ^= 0xff;
    route(other);
    assert.equal(got.length, 1);
  },
};

// ---- the checks ---------------------------------------------------------------------------------

const CHECKS: Record<string, (bytes: Buffer) => void | Promise<void>> = { ...ring, ...shm, ...control, ...pubsub, ...tcp, ...rpc, ...queues };

test("docs/protocol.md and this test name the same vectors", () => {
  const documented = [...VECTORS.keys()].sort();
  const checked = Object.keys(CHECKS).sort();
  assert.deepEqual(
    { missingFromThePage: checked.filter((l) => !VECTORS.has(l)), notChecked: documented.filter((l) => !(l in CHECKS)) },
    { missingFromThePage: [], notChecked: [] },
  );
});

for (const [label, check] of Object.entries(CHECKS)) {
  test(`vector ${label}`, async () => {
    await check(vec(label));
  });
}
