import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connectShm, PeerDeadError, ShmSender, sweepStaleSegments, type ShmAddress } from "../src/index.js";
import { native } from "../src/native.js";
import { checkMessage, message } from "./conformance/suite.js";
import { fixture } from "./helpers/child.js";
import { killedWriterNeverTears } from "./helpers/torn.js";

// Sizes that force wraps, exact fits and tiny frames in a 64 KiB ring.
const SIZES = [1, 4000, 0, 16, 17, 30000, 777, 8192 - 16, 12345, 64];

test("shm: one writer process, three reader processes, thousands of messages with wraps", async () => {
  const count = 3000;
  const writer = fixture("stream-writer", { transport: "shm", readers: 3, count, sizes: SIZES, capacity: 65536 });
  const address = JSON.parse(await writer.line()) as ShmAddress;
  const readers = [0, 1, 2].map(() => fixture("stream-reader", { address, sizes: SIZES }));
  for (const r of readers) assert.equal(await r.line(), "joined");
  for (const r of readers) {
    const result = JSON.parse(await r.line(60000)) as { count: number; errors: string[] };
    assert.deepEqual(result, { count, errors: [] });
    assert.equal(await r.exited, 0);
  }
  assert.equal(await writer.exited, 0);
  assert.equal(existsSync(`/dev/shm${address.name}`), false, "the writer unlinks its segment on close");
});

test("shm: kill -9 of a reader that holds messages frees a blocked writer", async () => {
  await using sender = ShmSender.create({ capacity: 16384, timeout: 10000 });
  const reader = fixture("stream-reader", { address: sender.address, sizes: [1000], hold: 3 });
  assert.equal(await reader.line(), "joined");
  let seq = 1;
  for (; seq <= 3; seq++) await sender.send(message(seq, 1000));
  assert.equal(await reader.line(), "holding");
  while (sender.trySend(message(seq, 1000))) seq++;
  const blocked = sender.send(message(seq, 1000));
  const t0 = performance.now();
  reader.proc.kill("SIGKILL");
  await blocked;
  const waited = performance.now() - t0;
  assert.equal(sender.receivers, 0);
  assert.equal(await reader.exited, "SIGKILL");
  assert.ok(waited < 5000, `freed after ${waited.toFixed(1)} ms`);
});

test("shm: kill -9 of the writer: the reader gets what was committed, then PeerDeadError", async () => {
  const writer = fixture("stream-writer", { transport: "shm", readers: 1, count: 0, sizes: [100, 5000], capacity: 65536, hang: true });
  const address = JSON.parse(await writer.line()) as ShmAddress;
  const rx = await connectShm(address);
  let seq = 0;
  const f = await rx.receive({ timeout: 10000 });
  assert.ok(f);
  f.release();
  seq++;
  writer.proc.kill("SIGKILL");
  await writer.exited;
  let err: unknown;
  try {
    for (;;) {
      const g = await rx.receive({ timeout: 10000 });
      assert.ok(g, "the stream must not end quietly when the writer dies");
      seq++;
      assert.equal(g.sequence, seq);
      checkMessage(g.bytes, seq, [100, 5000][(seq - 1) % 2]);
      g.release();
    }
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof PeerDeadError, `got ${String(err)}`);
  assert.equal((err as PeerDeadError).code, "ERR_PLEXUS_PEER_DEAD");
  await rx.close();
  assert.equal(existsSync(`/dev/shm${address.name}`), false, "the dead writer's segment is unlinked");
});

test("shm: a writer killed mid-stream never delivers a torn message (repeated)", () => killedWriterNeverTears("shm", connectShm));

test("shm: connecting to a sender that is gone is a PeerDeadError", async () => {
  const sender = ShmSender.create({ capacity: 8192 });
  const address = sender.address;
  await sender.close();
  await assert.rejects(connectShm(address), { code: "ERR_PLEXUS_PEER_DEAD" });
});

test("shm: segments of dead processes are swept", async () => {
  const child = fixture("stream-writer", { transport: "shm", readers: 99, count: 0, sizes: [1], capacity: 8192 });
  const address = JSON.parse(await child.line()) as ShmAddress;
  child.proc.kill("SIGKILL");
  await child.exited;
  // A live process's segment must survive the sweep.
  await using live = ShmSender.create({ capacity: 8192 });
  // (Another test file running at the same time may sweep first; either way it must go.)
  const removed = sweepStaleSegments();
  assert.ok(!removed.includes(live.address.name.slice(1)));
  assert.ok(existsSync(`/dev/shm${live.address.name}`));
  assert.equal(existsSync(`/dev/shm${address.name}`), false);
});

test("shm: a corrupt ring header is refused with ProtocolError", async () => {
  await using sender = ShmSender.create({ capacity: 8192 });
  const view = new Int32Array(native().segmentOpen(sender.address.name));
  const magic = view[0];
  view[0] = 0x0bad0bad;
  await assert.rejects(connectShm(sender.address), { code: "ERR_PLEXUS_PROTOCOL" });
  view[0] = magic;
  await using rx = await connectShm(sender.address);
  await sender.send(message(1, 10));
  const f = await rx.receive({ timeout: 2000 });
  assert.ok(f);
  checkMessage(f.bytes, 1, 10);
});

test("shm: garbage on the handshake socket is refused and the sender keeps serving", async () => {
  await using sender = ShmSender.create({ capacity: 8192 });
  const n = native();
  const socket = sender.address.socket;
  const efd = n.eventfdCreate();
  const bad = (v: (d: DataView) => void, len = 16): Uint8Array => {
    const b = new Uint8Array(len);
    v(new DataView(b.buffer));
    return b;
  };
  const attempts: { data: Uint8Array; fds: number[] }[] = [
    { data: new Uint8Array([1, 2, 3]), fds: [] }, // short, no fd
    { data: bad((d) => d.setUint32(0, 0xdeadbeef, true)), fds: [efd] }, // wrong magic
    { data: bad((d) => (d.setUint32(0, 0x314a5850, true), d.setUint32(4, 9999, true))), fds: [efd] }, // slot out of range
    { data: bad((d) => (d.setUint32(0, 0x314a5850, true), d.setUint32(4, 0, true), d.setInt32(8, 12345, true))), fds: [efd] }, // not the slot owner
    { data: bad((d) => d.setUint32(0, 0x314a5850, true), 64), fds: [efd] }, // oversized
    { data: bad((d) => d.setUint32(0, 0x314a5850, true)), fds: [] }, // no eventfd
  ];
  for (const a of attempts) {
    const fd = n.unixConnect(socket);
    n.sendFds(fd, a.data, a.fds);
    // The sender answers "refused" or just hangs up; it never hands out its eventfd for free.
    let answer = null;
    for (let i = 0; i < 200 && answer === null; i++) {
      await new Promise((r) => setTimeout(r, 2));
      answer = n.recvFds(fd, 64);
    }
    assert.ok(answer !== null, "the sender reacts to every bad handshake");
    if (answer.data.length > 0) assert.equal(new DataView(answer.data.buffer, answer.data.byteOffset).getUint32(4, true), 1, "status refused");
    for (const f of answer.fds) n.close(f);
    n.close(fd);
  }
  n.close(efd);
  // An honest receiver still gets served.
  await using rx = await connectShm(sender.address);
  await sender.send(message(1, 100));
  const f = await rx.receive({ timeout: 2000 });
  assert.ok(f);
  checkMessage(f.bytes, 1, 100);
  assert.equal(sender.receivers, 1);
});
