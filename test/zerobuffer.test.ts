/**
 * ZeroBuffer v1 conformance, one process: every rule of docs/zerobuffer-protocol.md §3-§9 (and
 * the choices of §12) that can be observed without a second process (those that need one are in
 * zerobuffer-process.test.ts).
 * Layout cases (exact fit, short tail, stall, wrap markers) are built from frame sizes, which
 * decide the layout deterministically (§6).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { native } from "../src/native.js";
import {
  AbortError,
  BufferFullError,
  ClosedError,
  FrameTooLargeError,
  InPlaceClient,
  InPlaceServer,
  InvalidFrameSizeError,
  MetadataAlreadyWrittenError,
  ProtocolError,
  ProtocolVersionError,
  Reader,
  ReaderAlreadyConnectedError,
  ReaderDeadError,
  SequenceError,
  TimeoutError,
  Writer,
  WriterAlreadyConnectedError,
  WriterDeadError,
  type Frame,
} from "../src/zerobuffer/index.js";
import { Header, OIEB_V1_SIZE, Q, writeU64 } from "../src/zerobuffer/oieb.js";
import { InvalidArgumentError, PlexusError } from "../src/errors.js";
import { deadPid, ForeignWriter, leftovers, mismatch, pattern, uniqueName } from "./helpers/zb.js";

/** A reader and a writer on a fresh buffer; both closed by the returned function. */
async function pair(payloadSize = 1024, metadataSize = 256, writeTimeout = 2000): Promise<{ name: string; reader: Reader; writer: Writer; close: () => Promise<void> }> {
  const name = uniqueName("c");
  const reader = await Reader.create(name, { payloadSize, metadataSize, timeout: 2000 });
  const writer = await Writer.connect(name, { timeout: 2000, writeTimeout });
  return {
    name,
    reader,
    writer,
    close: async () => {
      await writer.close();
      await reader.close();
      assert.deepEqual(leftovers(name), [], "objects left after a clean close");
    },
  };
}

/** Reads one frame and checks its sequence, size and pattern. */
async function expectFrame(reader: Reader, seq: number, size: number): Promise<Frame> {
  const f = await reader.read({ timeout: 2000 });
  assert.equal(f.sequence, seq);
  assert.equal(f.data.length, size);
  assert.equal(mismatch(f.data, seq), -1, `frame ${seq} content`);
  return f;
}

function rawHeader(name: string): Header {
  return new Header(native().segmentOpen(`/${name}`), OIEB_V1_SIZE);
}

// ---- §1-§4: names, creation, header ------------------------------------------------------

test("§1/§3/§4: the reader creates /dev/shm/NAME, both semaphores and the lock file, with the initial OIEB", async () => {
  const name = uniqueName("create");
  const reader = await Reader.create(name, { payloadSize: 1000, metadataSize: 100 });
  try {
    assert.equal(existsSync(`/dev/shm/${name}`), true);
    assert.equal(existsSync(`/dev/shm/sem.sem-w-${name}`), true);
    assert.equal(existsSync(`/dev/shm/sem.sem-r-${name}`), true);
    assert.equal(existsSync(`/tmp/zerobuffer/${name}.lock`), true);
    assert.equal(statSync(`/dev/shm/sem.sem-w-${name}`).size, 32, "a glibc named semaphore");
    // align64(1000) = 1024, align64(100) = 128: 128 + 128 + 1024 bytes.
    assert.equal(statSync(`/dev/shm/${name}`).size, 128 + 128 + 1024);
    assert.deepEqual(reader.headerSnapshot(), {
      oiebSize: 128,
      version: "1.0.0",
      metadataSize: 128,
      metadataFreeBytes: 128,
      metadataWrittenBytes: 0,
      payloadSize: 1024,
      payloadFreeBytes: 1024,
      writePos: 0,
      readPos: 0,
      writtenCount: 0,
      readCount: 0,
      writerPid: 0,
      readerPid: process.pid,
    });
    const h = rawHeader(name);
    for (let i = 12; i < 16; i++) assert.equal(h.load(i), 0, "reserved fields are zero");
    assert.equal(reader.metadata(), null, "no metadata before a writer wrote some");
  } finally {
    await reader.close();
  }
  assert.deepEqual(leftovers(name), [], "§8: close unlinks the shm, both semaphores and the lock file");
});

test("§1: names must be one path component of at most 240 bytes", async () => {
  for (const bad of ["", "a/b", "/lead", ".", "..", "x".repeat(241), "nul\0"]) {
    await assert.rejects(Reader.create(bad), InvalidArgumentError, JSON.stringify(bad));
    await assert.rejects(Writer.connect(bad, { timeout: 10 }), InvalidArgumentError, JSON.stringify(bad));
  }
  const r = await Reader.create(`${uniqueName("n")}-${"y".repeat(200)}`.slice(0, 240), { payloadSize: 64 });
  await r.close();
  await assert.rejects(Reader.create(uniqueName("s"), { payloadSize: 16 }), InvalidArgumentError, "payload must hold a frame");
  await assert.rejects(Reader.create(uniqueName("s"), { metadataSize: -1 }), InvalidArgumentError);
});

test("§2: every object gets mode 0666 minus the umask", async () => {
  const old = process.umask(0o027);
  const name = uniqueName("perm");
  try {
    const reader = await Reader.create(name, { payloadSize: 64 });
    for (const path of [`/dev/shm/${name}`, `/dev/shm/sem.sem-w-${name}`, `/dev/shm/sem.sem-r-${name}`, `/tmp/zerobuffer/${name}.lock`]) {
      assert.equal(statSync(path).mode & 0o777, 0o640, path);
    }
    await reader.close();
  } finally {
    process.umask(old);
  }
});

test("§3: a second reader of the same name is refused with ReaderAlreadyConnectedError; the first keeps working", async () => {
  const p = await pair();
  try {
    const err = await Reader.create(p.name).catch((e: unknown) => e);
    assert.ok(err instanceof ReaderAlreadyConnectedError);
    assert.equal(err.code, "ERR_PLEXUS_ZB_READER_ALREADY_CONNECTED");
    assert.ok(err instanceof PlexusError);
    await p.writer.write(pattern(1, 10));
    (await expectFrame(p.reader, 1, 10)).release();
  } finally {
    await p.close();
  }
});

test("§3: an existing segment of a dead reader is replaced; one of a live reader is refused", async () => {
  const name = uniqueName("exist");
  const dead = await deadPid();
  const seg = native().segmentCreate(`/${name}`, 128 + 64, 0o600);
  new Header(seg, OIEB_V1_SIZE).store(Q.readerPid, dead);
  const reader = await Reader.create(name, { payloadSize: 64, metadataSize: 0 });
  assert.equal(reader.headerSnapshot().readerPid, process.pid);
  assert.equal(statSync(`/dev/shm/${name}`).size, 128 + 64);
  await reader.close();
  // A live reader whose lock lives elsewhere (C# keeps its locks in another directory).
  const seg2 = native().segmentCreate(`/${name}`, 128 + 64, 0o600);
  new Header(seg2, OIEB_V1_SIZE).store(Q.readerPid, process.ppid);
  await assert.rejects(Reader.create(name, { payloadSize: 64 }), ReaderAlreadyConnectedError);
  native().segmentUnlink(`/${name}`);
  assert.deepEqual(leftovers(name), []);
});

test("§3/§12: stale semaphores left behind (Python's close) are replaced, not fatal", async () => {
  const name = uniqueName("stalesem");
  const w = native().semOpen(`/sem-w-${name}`, true, 0o600, 5);
  w.close();
  native().semOpen(`/sem-r-${name}`, true, 0o600, 0).close();
  const p = { reader: await Reader.create(name, { payloadSize: 256 }) };
  const writer = await Writer.connect(name, { timeout: 1000 });
  assert.equal(p.reader.tryRead(), null, "the old semaphore's count of 5 is gone");
  await writer.write(pattern(1, 3));
  (await expectFrame(p.reader, 1, 3)).release();
  await writer.close();
  await p.reader.close();
});

test("§3: the writer waits (bounded) for a reader to create the buffer", async () => {
  const name = uniqueName("wait");
  const t = await Writer.connect(name, { timeout: 60 }).catch((e: unknown) => e);
  assert.ok(t instanceof TimeoutError, String(t));
  const connecting = Writer.connect(name, { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 30));
  const reader = await Reader.create(name, { payloadSize: 256 });
  const writer = await connecting;
  assert.equal(reader.writerPid, process.pid, "writer_pid = getpid() on connect");
  await writer.close();
  assert.equal(reader.writerPid, 0, "writer_pid = 0 on close (§8)");
  await reader.close();
  const ac = new AbortController();
  const aborted = Writer.connect(name, { timeout: 5000, signal: ac.signal });
  ac.abort(new Error("stop"));
  const err = await aborted.catch((e: unknown) => e);
  assert.ok(err instanceof AbortError);
  assert.equal((err.cause as Error).message, "stop");
});

test("§3: a second live writer is refused; a dead writer's slot is taken over", async () => {
  const p = await pair();
  try {
    await assert.rejects(Writer.connect(p.name, { timeout: 500 }), WriterAlreadyConnectedError);
    await p.writer.close();
    rawHeader(p.name).store(Q.writerPid, await deadPid());
    const w2 = await Writer.connect(p.name, { timeout: 500 });
    assert.equal(p.reader.writerPid, process.pid);
    await w2.close();
  } finally {
    await p.close();
  }
});

test("§3: a dead reader at the deadline is ReaderDeadError; a corrupt OIEB is ProtocolError; another version is ProtocolVersionError", async () => {
  const name = uniqueName("oieb");
  const seg = native().segmentCreate(`/${name}`, 128 + 64, 0o600);
  const h = new Header(seg, OIEB_V1_SIZE);
  native().semOpen(`/sem-w-${name}`, true, 0o600, 0).close();
  native().semOpen(`/sem-r-${name}`, true, 0o600, 0).close();
  try {
    h.store(Q.payloadSize, 64);
    h.setVersion(1, 0, 0);
    h.store(Q.readerPid, await deadPid());
    h.oiebSize = 128;
    await assert.rejects(Writer.connect(name, { timeout: 50 }), ReaderDeadError);
    h.store(Q.readerPid, process.pid);
    h.oiebSize = 64;
    await assert.rejects(Writer.connect(name, { timeout: 500 }), (e: unknown) => e instanceof ProtocolError && /oieb_size 64/.test(e.message));
    h.oiebSize = 128;
    h.setVersion(3, 0, 0);
    await assert.rejects(Writer.connect(name, { timeout: 500 }), (e: unknown) => e instanceof ProtocolVersionError && e.found === 3 && e.expected === 1);
    h.setVersion(1, 0, 0);
    h.store(Q.payloadSize, 1 << 20); // larger than the segment
    await assert.rejects(Writer.connect(name, { timeout: 500 }), (e: unknown) => e instanceof ProtocolError && /impossible layout/.test(e.message));
  } finally {
    native().segmentUnlink(`/${name}`);
    native().semUnlink(`/sem-w-${name}`);
    native().semUnlink(`/sem-r-${name}`);
  }
});

test("protocol 1 and protocol 2 refuse each other with ProtocolVersionError", async () => {
  const channel = uniqueName("ver");
  const server = await InPlaceServer.create(channel, () => {}, { payloadSize: 4096 });
  try {
    const err = await Writer.connect(`${channel}_request`, { timeout: 1000 }).catch((e: unknown) => e);
    assert.ok(err instanceof ProtocolVersionError, String(err));
    assert.equal(err.code, "ERR_PLEXUS_ZB_PROTOCOL_VERSION");
    assert.equal(err.expected, 1);
    assert.equal(err.found, 2);
    assert.match(err.message, /protocol 2/);
  } finally {
    await server.close();
  }
  const reader = await Reader.create(`${channel}_request`, { payloadSize: 4096 });
  try {
    const err = await InPlaceClient.connect(channel, { timeout: 1000 }).catch((e: unknown) => e);
    assert.ok(err instanceof ProtocolVersionError, String(err));
    assert.equal(err.expected, 2);
    assert.equal(err.found, 1);
  } finally {
    await reader.close();
  }
  assert.deepEqual(leftovers(`${channel}_request`), []);
});

// ---- §5: metadata ---------------------------------------------------------------------------

test("§5: metadata is written once, with its length prefix and the header accounting", async () => {
  const p = await pair(1024, 100);
  try {
    assert.equal(p.writer.metadataWritten, false);
    assert.throws(() => p.writer.setMetadata(new Uint8Array(0)), InvalidArgumentError, "length 0 is never written");
    assert.throws(() => p.writer.setMetadata(new Uint8Array(121)), FrameTooLargeError, "8 + n > metadata_size");
    p.writer.setMetadata(new Uint8Array(120).fill(7)); // exactly 8 + 120 = 128
    assert.equal(p.writer.metadataWritten, true);
    const h = p.reader.headerSnapshot();
    assert.equal(h.metadataWrittenBytes, 128);
    assert.equal(h.metadataFreeBytes, 0);
    const m = p.reader.metadata();
    assert.ok(m !== null);
    assert.equal(m.length, 120);
    assert.ok(m.every((b) => b === 7));
    assert.throws(() => p.writer.setMetadata(new Uint8Array(1)), MetadataAlreadyWrittenError);
    await p.writer.close();
    const w2 = await Writer.connect(p.name, { timeout: 500 });
    assert.throws(() => w2.setMetadata(new Uint8Array(1)), (e: unknown) => e instanceof MetadataAlreadyWrittenError && e.code === "ERR_PLEXUS_ZB_METADATA_ALREADY_WRITTEN");
    await w2.close();
    // A corrupt length prefix is reported, not trusted.
    writeU64(new DataView(native().segmentOpen(`/${p.name}`), OIEB_V1_SIZE, 8), 0, 500);
    assert.throws(() => p.reader.metadata(), (e: unknown) => e instanceof ProtocolError && /invalid metadata size/.test(e.message));
  } finally {
    await p.close();
  }
});

// ---- §6: frames, wraps, space -----------------------------------------------------------

test("§6: frames are packed back to back with {size, sequence} headers; counts and free bytes add up", async () => {
  const p = await pair(1024);
  try {
    assert.equal(await p.writer.write(pattern(1, 100)), 1);
    assert.equal(await p.writer.write(pattern(2, 7)), 2);
    const h = rawHeader(p.name);
    const ring = new DataView(native().segmentOpen(`/${p.name}`), OIEB_V1_SIZE + 256, 1024);
    assert.equal(ring.getUint32(0, true), 100);
    assert.equal(ring.getUint32(8, true), 1);
    assert.equal(ring.getUint32(116, true), 7, "the second header sits right after the first frame");
    assert.equal(ring.getUint32(124, true), 2);
    assert.equal(h.load(Q.writePos), 116 + 23);
    assert.equal(h.load(Q.payloadFree), 1024 - 116 - 23);
    assert.equal(h.load(Q.writtenCount), 2);
    const a = await expectFrame(p.reader, 1, 100);
    assert.equal(h.load(Q.payloadFree), 1024 - 139, "reading does not free space; releasing does");
    a.release();
    a.release(); // idempotent
    assert.equal(h.load(Q.payloadFree), 1024 - 23);
    (await expectFrame(p.reader, 2, 7)).release();
    const s = p.reader.headerSnapshot();
    assert.equal(s.payloadFreeBytes, s.payloadSize);
    assert.equal(s.readPos, s.writePos);
    assert.equal(s.readCount, s.writtenCount);
  } finally {
    await p.close();
  }
});

test("§6: 0-byte frames are InvalidFrameSizeError, frames beyond the ring FrameTooLargeError", async () => {
  const p = await pair(1024);
  try {
    await assert.rejects(p.writer.write(new Uint8Array(0)), (e: unknown) => e instanceof InvalidFrameSizeError && e.code === "ERR_PLEXUS_ZB_INVALID_FRAME_SIZE");
    await assert.rejects(p.writer.write(new Uint8Array(1024 - 15)), (e: unknown) => e instanceof FrameTooLargeError && e.code === "ERR_PLEXUS_FRAME_TOO_LARGE");
    await assert.rejects(p.writer.frameBuffer(0), InvalidFrameSizeError);
    await p.writer.write(pattern(1, 1024 - 16)); // the largest frame fits an empty ring
    (await expectFrame(p.reader, 1, 1024 - 16)).release();
    assert.equal(p.reader.headerSnapshot().writePos, 0, "an exact fit stores write_pos % payload_size");
  } finally {
    await p.close();
  }
});

test("§6 hazard: exact fit — the next frame starts at 0 with no marker and no count", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 500)); // 516
    await p.writer.write(pattern(2, 492)); // 508: ends exactly at 1024
    const h = p.reader.headerSnapshot();
    assert.equal(h.writePos, 0);
    assert.equal(h.writtenCount, 2);
    (await expectFrame(p.reader, 1, 500)).release();
    (await expectFrame(p.reader, 2, 492)).release();
    await p.writer.write(pattern(3, 40));
    assert.equal(p.reader.headerSnapshot().writtenCount, 3, "no marker was counted");
    (await expectFrame(p.reader, 3, 40)).release();
    assert.equal(p.reader.headerSnapshot().readPos, 56);
  } finally {
    await p.close();
  }
});

test("§6: a wrap writes the marker {0,0} at write_pos, counts it, and frees the tail when read", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 600)); // 616
    (await expectFrame(p.reader, 1, 600)).release();
    await p.writer.write(pattern(2, 500)); // tail 408 < 516: wrap
    const ring = new DataView(native().segmentOpen(`/${p.name}`), OIEB_V1_SIZE + 256, 1024);
    assert.equal(ring.getUint32(616, true), 0, "marker size");
    assert.equal(ring.getUint32(624, true), 0, "marker sequence");
    assert.equal(ring.getUint32(0, true), 500);
    const h = p.reader.headerSnapshot();
    assert.equal(h.writtenCount, 3, "frame + marker + frame");
    assert.equal(h.writePos, 516);
    assert.equal(h.payloadFreeBytes, 1024 - 408 - 516);
    (await expectFrame(p.reader, 2, 500)).release();
    const e = p.reader.headerSnapshot();
    assert.equal(e.readCount, 3);
    assert.equal(e.payloadFreeBytes, 1024);
    assert.equal(e.readPos, 516);
  } finally {
    await p.close();
  }
});

test("§6 space rule: a wrap needs tail + total free bytes, so the marker is never overwritten early", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 300)); // [0, 316)
    await p.writer.write(pattern(2, 300)); // [316, 632)
    const f1 = await expectFrame(p.reader, 1, 300);
    f1.release(); // free = 1024 - 316 = 708
    // Next: 500 (516): tail 392 < 516 -> needs 392 + 516 = 908 > 708: must wait for frame 2.
    const pending = p.writer.write(pattern(3, 500));
    let done = false;
    void pending.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, "the writer waits while frame 2 is held");
    (await expectFrame(p.reader, 2, 300)).release();
    assert.equal(await pending, 3);
    (await expectFrame(p.reader, 3, 500)).release();
  } finally {
    await p.close();
  }
});

test("§6 hazard: stall (the frame can never fit where the ring stands) is BufferFullError, and writing goes on", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 484)); // 500
    (await expectFrame(p.reader, 1, 484)).release();
    // 600 total: tail 524 < 600 and 524 + 600 > 1024, even though the ring is empty.
    const err = await p.writer.write(new Uint8Array(584)).catch((e: unknown) => e);
    assert.ok(err instanceof BufferFullError, String(err));
    assert.equal(err.code, "ERR_PLEXUS_ZB_BUFFER_FULL");
    assert.match(err.message, /stall/);
    assert.equal(await p.writer.write(pattern(2, 100)), 2, "the stalled frame took no sequence number");
    (await expectFrame(p.reader, 2, 100)).release();
  } finally {
    await p.close();
  }
});

test("§9: a writer blocked past its timeout gets BufferFullError while the reader holds the space", async () => {
  const p = await pair(1024, 256, 150);
  try {
    await p.writer.write(pattern(1, 900));
    const f = await expectFrame(p.reader, 1, 900);
    await assert.rejects(p.writer.write(new Uint8Array(200)), (e: unknown) => e instanceof BufferFullError && /within 150 ms/.test(e.message));
    f.release();
    assert.equal(await p.writer.write(pattern(2, 200)), 2);
    (await expectFrame(p.reader, 2, 200)).release();
  } finally {
    await p.close();
  }
});

test("§12 writer: never leaves a short tail; wraps early instead (marker at write_pos, frame at 0)", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 500)); // 516 at 0
    (await expectFrame(p.reader, 1, 500)).release();
    // 490 (506): fits the 508-byte tail but would leave 2 bytes: wrap first.
    await p.writer.write(pattern(2, 490));
    const h = p.reader.headerSnapshot();
    assert.equal(h.writePos, 506, "the frame went to 0");
    assert.equal(h.writtenCount, 3, "marker counted");
    const ring = new DataView(native().segmentOpen(`/${p.name}`), OIEB_V1_SIZE + 256, 1024);
    assert.equal(ring.getUint32(516, true), 0, "marker at the old write_pos");
    (await expectFrame(p.reader, 2, 490)).release();
    // A long run of sizes: after every write, payload_size - write_pos is never in 1..15.
    // At most 480 bytes (496 with the header): an early wrap is then always possible.
    const sizes = [1, 2, 15, 16, 17, 100, 333, 470, 471, 472, 473, 474, 475, 476, 477, 5, 250, 111, 480];
    for (let seq = 3; seq < 600; seq++) {
      const n = sizes[seq % sizes.length] as number;
      await p.writer.write(pattern(seq, n));
      const tail = 1024 - p.reader.headerSnapshot().writePos;
      assert.ok(tail === 1024 || tail >= 16, `short tail of ${tail} after frame ${seq}`);
      (await expectFrame(p.reader, seq, n)).release();
    }
    const end = p.reader.headerSnapshot();
    assert.equal(end.payloadFreeBytes, 1024);
    assert.equal(end.readPos, end.writePos % 1024);
    assert.equal(end.readCount, end.writtenCount);
  } finally {
    await p.close();
  }
});

test("§12 writer: when the early wrap would stall, the frame goes in place and the short tail is zero-filled at the next wrap", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 500)); // [0, 516)
    await p.writer.write(pattern(2, 492)); // [516, 1024): leaves pattern bytes at 1016..1023
    (await expectFrame(p.reader, 1, 500)).release();
    (await expectFrame(p.reader, 2, 492)).release();
    // 1000 (1016) from 0: leaves 8 bytes, and wrapping first would need 1024 + 1016: in place.
    await p.writer.write(pattern(3, 1000));
    assert.equal(p.reader.headerSnapshot().writePos, 1016);
    const ring = new Uint8Array(native().segmentOpen(`/${p.name}`), OIEB_V1_SIZE + 256, 1024);
    assert.ok(ring.subarray(1016).some((b) => b !== 0), "stale bytes in the short tail");
    (await expectFrame(p.reader, 3, 1000)).release();
    const before = p.reader.headerSnapshot().writtenCount;
    await p.writer.write(pattern(4, 50));
    assert.deepEqual([...ring.subarray(1016)], [0, 0, 0, 0, 0, 0, 0, 0], "zero-filled: C++ readers decode it as a marker");
    assert.equal(p.reader.headerSnapshot().writtenCount, before + 1, "no marker, no count for the short tail");
    (await expectFrame(p.reader, 4, 50)).release();
    const end = p.reader.headerSnapshot();
    assert.equal(end.payloadFreeBytes, 1024);
    assert.equal(end.readPos, 66);
  } finally {
    await p.close();
  }
});

test("§12 reader: a foreign writer's short tail with stale data is an implicit wrap; write_pos == payload_size is accepted", async () => {
  const name = uniqueName("foreign");
  const reader = await Reader.create(name, { payloadSize: 1024, metadataSize: 0 });
  const fw = new ForeignWriter(name);
  try {
    fw.write(500); // [0,516)
    fw.write(492); // [516,1024): write_pos == 1024 (C++ does not wrap it)
    assert.equal(fw.writePos, 1024);
    (await expectFrame(reader, 1, 500)).release();
    (await expectFrame(reader, 2, 492)).release();
    assert.equal(reader.headerSnapshot().readPos, 0);
    fw.write(1000); // tail 0 -> wrap without marker; [0,1016): leaves 8 stale bytes of frame 2
    (await expectFrame(reader, 3, 1000)).release();
    fw.write(30); // tail 8 < 46: no marker (C++), stale bytes stay; frame at 0
    const f = await expectFrame(reader, 4, 30);
    assert.equal(reader.headerSnapshot().readPos, 46);
    f.release();
    const h = reader.headerSnapshot();
    assert.equal(h.payloadFreeBytes, 1024, "the implicit wrap gave the 8 bytes back");
    assert.equal(h.readPos, h.writePos % 1024);
    // A Plexus writer continues after the foreign one (its sequence starts again at 1).
    const w = await Writer.connect(name, { timeout: 500 });
    await w.write(pattern(1, 97));
    await assert.rejects(reader.read(), (e: unknown) => e instanceof SequenceError && e.expected === 5 && e.got === 1);
    (await expectFrame(reader, 1, 97)).release();
    for (let seq = 2; seq <= 50; seq++) {
      await w.write(pattern(seq, 97));
      (await expectFrame(reader, seq, 97)).release();
    }
    await w.close();
  } finally {
    fw.close();
    await reader.close();
  }
});

test("§6 [DIFF]: Python's count of marker-less wraps does not disturb a Plexus reader", async () => {
  const name = uniqueName("py");
  const reader = await Reader.create(name, { payloadSize: 1024, metadataSize: 0 });
  const fw = new ForeignWriter(name, true);
  try {
    const sizes = [500, 492, 1000, 30, 200, 300];
    for (let seq = 1; seq <= 60; seq++) {
      fw.write(sizes[(seq - 1) % sizes.length] as number);
      (await expectFrame(reader, seq, sizes[(seq - 1) % sizes.length] as number)).release();
    }
    const h = reader.headerSnapshot();
    assert.equal(h.payloadFreeBytes, 1024);
    assert.equal(h.readPos, h.writePos % 1024);
    assert.ok(h.writtenCount > h.readCount, "Python counts wraps the reader never sees");
  } finally {
    fw.close();
    await reader.close();
  }
});

test("§6: releases are FIFO — a later frame released first frees nothing until the earlier ones are released", async () => {
  const p = await pair(1024);
  try {
    for (let seq = 1; seq <= 3; seq++) await p.writer.write(pattern(seq, 100));
    const f1 = await expectFrame(p.reader, 1, 100);
    const f2 = await expectFrame(p.reader, 2, 100);
    const f3 = await expectFrame(p.reader, 3, 100);
    const free = (): number => p.reader.headerSnapshot().payloadFreeBytes;
    assert.equal(free(), 1024 - 348);
    f3.release();
    f2.release();
    assert.equal(free(), 1024 - 348, "out-of-order releases wait for frame 1");
    f1.release();
    assert.equal(free(), 1024);
  } finally {
    await p.close();
  }
});

test("§6: a frame is released by `using`, by the next turn of for-await, and by leaving the loop", async () => {
  const p = await pair(1024);
  try {
    await p.writer.write(pattern(1, 100));
    {
      using f = await p.reader.read();
      assert.equal(f.sequence, 1);
      assert.equal(p.reader.headerSnapshot().payloadFreeBytes, 1024 - 116);
    }
    assert.equal(p.reader.headerSnapshot().payloadFreeBytes, 1024);
    for (let seq = 2; seq <= 4; seq++) await p.writer.write(pattern(seq, 100));
    let seen = 0;
    for await (const f of p.reader) {
      seen++;
      assert.equal(mismatch(f.data, f.sequence), -1);
      assert.equal(p.reader.headerSnapshot().payloadFreeBytes, 1024 - 116 * (4 - f.sequence + 1), "earlier frames were released by the loop");
      if (f.sequence === 4) break;
    }
    assert.equal(seen, 3);
    assert.equal(p.reader.headerSnapshot().payloadFreeBytes, 1024, "break released the last frame");
  } finally {
    await p.close();
  }
});

test("§6 zero-copy: frameBuffer -> fill in place -> commit; cancel publishes nothing", async () => {
  const p = await pair(1024);
  try {
    const fb = await p.writer.frameBuffer(200);
    assert.equal(fb.sequence, 1);
    fb.data.set(pattern(1, 200));
    const other = p.writer.write(pattern(2, 10)); // waits for the loan
    assert.equal(fb.commit(), 1);
    assert.equal(await other, 2);
    assert.throws(() => fb.commit(), InvalidArgumentError);
    (await expectFrame(p.reader, 1, 200)).release();
    (await expectFrame(p.reader, 2, 10)).release();
    {
      using loan = await p.writer.frameBuffer(50);
      loan.data.fill(1);
    } // cancelled by `using`
    assert.equal(p.reader.tryRead(), null, "a cancelled loan publishes nothing");
    await p.writer.write(pattern(3, 5));
    (await expectFrame(p.reader, 3, 5)).release();
  } finally {
    await p.close();
  }
});

test("§6 hazard: sem-r at SEM_VALUE_MAX — the EOVERFLOW of sem_post on release is ignored", async () => {
  const p = await pair(1024);
  try {
    // A glibc semaphore is a 32-byte file whose first word holds the value: set it to INT_MAX.
    const semFile = native().segmentOpen(`/sem.sem-r-${p.name}`);
    Atomics.store(new Uint32Array(semFile, 0, 1), 0, 0x7fffffff);
    const probe = native().semOpen(`/sem-r-${p.name}`, false, 0, 0);
    assert.equal(probe.value(), 0x7fffffff);
    assert.equal(probe.post(), false, "sem_post now fails with EOVERFLOW");
    probe.close();
    await p.writer.write(pattern(1, 100));
    const f = await expectFrame(p.reader, 1, 100);
    f.release(); // posts sem-r: EOVERFLOW, ignored
    assert.equal(p.reader.headerSnapshot().payloadFreeBytes, 1024, "the space was still credited");
    await p.writer.write(pattern(2, 100));
    (await expectFrame(p.reader, 2, 100)).release();
  } finally {
    await p.close();
  }
});

// ---- §8/§9: lifetimes, liveness ----------------------------------------------------------

test("§9 hazard: graceful writer exit with frames queued — they are delivered, then WriterDeadError (graceful)", async () => {
  const p = await pair(4096);
  try {
    for (let seq = 1; seq <= 5; seq++) await p.writer.write(pattern(seq, 300));
    await p.writer.close();
    for (let seq = 1; seq <= 5; seq++) (await expectFrame(p.reader, seq, 300)).release();
    const err = await p.reader.read({ timeout: 2000 }).catch((e: unknown) => e);
    assert.ok(err instanceof WriterDeadError, String(err));
    assert.equal(err.graceful, true);
    assert.equal(err.code, "ERR_PLEXUS_ZB_WRITER_DEAD");
    // for-await ends quietly after a graceful exit, and a new writer starts again at 1.
    const w2 = await Writer.connect(p.name, { timeout: 500 });
    for (let seq = 1; seq <= 3; seq++) await w2.write(pattern(seq, 10));
    await w2.close();
    const seqs: number[] = [];
    for await (const f of p.reader) seqs.push(f.sequence);
    assert.deepEqual(seqs, [1, 2, 3]);
  } finally {
    await p.close();
  }
});

test("§3/§9: a new writer after a dead one restarts at 1: SequenceError, then its frames", async () => {
  const p = await pair(4096);
  try {
    for (let seq = 1; seq <= 3; seq++) await p.writer.write(pattern(seq, 50));
    // The writer "dies": its pid is dead and it never closes.
    const h = rawHeader(p.name);
    h.store(Q.writerPid, await deadPid());
    const w2 = await Writer.connect(p.name, { timeout: 500 });
    await w2.write(pattern(1, 60));
    for (let seq = 1; seq <= 3; seq++) (await expectFrame(p.reader, seq, 50)).release();
    const err = await p.reader.read().catch((e: unknown) => e);
    assert.ok(err instanceof SequenceError, String(err));
    assert.equal(err.expected, 4);
    assert.equal(err.got, 1);
    (await expectFrame(p.reader, 1, 60)).release();
    await w2.close();
  } finally {
    await p.close();
  }
});

test("§9: a dead writer's committed frames are read, then WriterDeadError (not graceful)", async () => {
  const p = await pair(4096);
  try {
    await p.writer.write(pattern(1, 50));
    rawHeader(p.name).store(Q.writerPid, await deadPid());
    (await expectFrame(p.reader, 1, 50)).release();
    const err = await p.reader.read({ timeout: 2000 }).catch((e: unknown) => e);
    assert.ok(err instanceof WriterDeadError && !err.graceful, String(err));
  } finally {
    await p.close();
  }
});

test("§8/§9: writes after the reader closed are ReaderDeadError; a blocked writer learns it within a slice", async () => {
  const p = await pair(1024, 256, 10_000);
  await p.writer.write(pattern(1, 900));
  const blocked = p.writer.write(new Uint8Array(500)).catch((e: unknown) => e);
  await new Promise((r) => setTimeout(r, 20));
  await p.reader.close();
  const err = await blocked; // not BufferFullError: noticed long before the 10 s write timeout
  assert.ok(err instanceof ReaderDeadError, String(err));
  assert.equal(err.code, "ERR_PLEXUS_ZB_READER_DEAD");
  await assert.rejects(p.writer.write(new Uint8Array(1)), ReaderDeadError);
  await p.writer.close();
  assert.deepEqual(leftovers(p.name), []);
});

// ---- bad input, handles, signals -------------------------------------------------------

test("bad input: a header with an impossible size is InvalidFrameSizeError; the reader stays refused, the process serves on", async () => {
  const name = uniqueName("bad");
  const reader = await Reader.create(name, { payloadSize: 1024, metadataSize: 0 });
  const fw = new ForeignWriter(name);
  try {
    const forged = new Uint8Array(16);
    const v = new DataView(forged.buffer);
    v.setUint32(0, 0xffffffff, true);
    v.setUint32(4, 0xffff, true); // size ~2^48
    v.setUint32(8, 1, true);
    fw.poke(0, forged);
    fw.post();
    const err = await reader.read().catch((e: unknown) => e);
    assert.ok(err instanceof InvalidFrameSizeError, String(err));
    await assert.rejects(reader.read(), InvalidFrameSizeError, "a corrupt ring is not read further");
    // A frame that straddles the end of the ring.
    const other = uniqueName("bad2");
    const r2 = await Reader.create(other, { payloadSize: 1024, metadataSize: 0 });
    const fw2 = new ForeignWriter(other);
    fw2.write(500);
    (await r2.read()).release();
    v.setUint32(0, 1000, true);
    v.setUint32(4, 0, true);
    v.setUint32(8, 2, true);
    fw2.poke(516, forged); // 1000 bytes at 516 would run past the end
    fw2.post();
    await assert.rejects(r2.read(), InvalidFrameSizeError);
    fw2.close();
    await r2.close();
  } finally {
    fw.close();
    await reader.close();
  }
});

test("handles: read timeout, aborted signals (already and during), closed handles; close is idempotent", async () => {
  const p = await pair(1024);
  try {
    await assert.rejects(p.reader.read({ timeout: 30 }), TimeoutError);
    const ac = new AbortController();
    ac.abort("early");
    const e1 = await p.reader.read({ signal: ac.signal }).catch((e: unknown) => e);
    assert.ok(e1 instanceof AbortError && e1.cause === "early");
    const e2 = await p.writer.write(new Uint8Array(1), { signal: ac.signal }).catch((e: unknown) => e);
    assert.ok(e2 instanceof AbortError && e2.cause === "early");
    const ac2 = new AbortController();
    const pending = p.reader.read({ timeout: 10_000, signal: ac2.signal });
    setTimeout(() => ac2.abort(new Error("late")), 20);
    const e3 = await pending.catch((e: unknown) => e);
    assert.ok(e3 instanceof AbortError, String(e3));
    assert.equal((e3.cause as Error).message, "late");
    await assert.rejects(p.reader.read({ timeout: -1 }), InvalidArgumentError);
    // The reader still works after all that.
    await p.writer.write(pattern(1, 10));
    (await expectFrame(p.reader, 1, 10)).release();
    const waiting = p.reader.read({ timeout: 10_000 });
    await p.writer.close();
    await p.writer.close();
    await p.writer[Symbol.asyncDispose]();
    await assert.rejects(p.writer.write(new Uint8Array(1)), ClosedError);
    assert.throws(() => p.writer.setMetadata(new Uint8Array(1)), ClosedError);
    const e4 = await waiting.catch((e: unknown) => e);
    assert.ok(e4 instanceof WriterDeadError && e4.graceful, String(e4));
    const pendingRead = p.reader.read({ timeout: 10_000 });
    await p.reader.close();
    await assert.rejects(pendingRead, ClosedError);
    await assert.rejects(p.reader.read(), ClosedError);
    assert.throws(() => p.reader.tryRead(), ClosedError);
    await p.reader[Symbol.asyncDispose]();
  } finally {
    await p.close();
  }
});

test("plexus/zerobuffer loads through the exports map from ESM and CommonJS and moves a frame", async () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const script = (load: string): string =>
    `${load}; (async () => { const r = await zb.Reader.create("plexus-zbt-pkg-" + process.pid, { payloadSize: 64 }); ` +
    `const w = await zb.Writer.connect(r.name); await w.write(new Uint8Array([7, 8])); const f = await r.read(); ` +
    `console.log(f.sequence, f.data.join(","), new zb.WriterDeadError().code); f.release(); await w.close(); await r.close(); })()`;
  const run = promisify(execFile);
  const esm = await run(process.execPath, ["--input-type=module", "-e", script(`const zb = await import("plexus/zerobuffer")`)], { cwd: root });
  assert.equal(esm.stdout.trim(), "1 7,8 ERR_PLEXUS_ZB_WRITER_DEAD");
  const cjs = await run(process.execPath, ["-e", script(`const zb = require("plexus/zerobuffer")`)], { cwd: root });
  assert.equal(cjs.stdout.trim(), "1 7,8 ERR_PLEXUS_ZB_WRITER_DEAD");
});
