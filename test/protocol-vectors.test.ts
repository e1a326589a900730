// The test vectors of docs/protocol.md for the ring (§1), the shm handshake (§2) and pub/sub
// messages (§4): every ```hex block of those sections is checked here (the other sections'
// vectors: test/vectors-*.test.ts). For each, the code writes exactly the page's bytes from
// the field values the page states, and reads the page's bytes back to those values.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { decode, encode, encodeChunks, encodedSize, encodeInto } from "../src/codec/index.js";
import { ProtocolError } from "../src/errors.js";
import { native, type Received } from "../src/native.js";
import { decodeFrame, prepare, RAW_PREFIX, writeRawHeaders } from "../src/pubsub/wire.js";
import { AtomicsBell, RingReader, RingWriter } from "../src/ring/index.js";
import { H_EPOCH, H_WRITE_POS, H_WRITER_PID, H_WRITER_STATE, H_WRITER_WAKE, initRing, readGeometry, ringGeometry, S_STATE, slotIndex } from "../src/ring/layout.js";
import { connectShm, ShmSender } from "../src/transport/shm.js";
import { vec, sameBytes, ABC, checkVectors } from "./helpers/vectors.js";

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


checkVectors(["ring.", "shm.", "codec.", "pubsub."], { ...ring, ...shm, ...pubsub });
