/**
 * Queue reads that the receiver places itself (`onread`): the parser chooses where each socket
 * read goes — the rest of a large payload, in place, or a read buffer — and frames come out
 * intact whatever sizes the kernel hands over. Plain TCP queue connections read this way, on the
 * server (connections accepted by the addon) and on the client.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PeerDeadError, queue, SystemError, type PlexusError } from "../src/index.js";
import { FrameParser } from "../src/net/frame-parser.js";
import { frameTable, HEADER_BYTES, QFrame, writeHeader, type Header } from "../src/queue/wire.js";
import { FdTcpListener } from "../src/net/fd-listener.js";

/** A DATA frame of `length` bytes whose payload bytes are `(seed + i) & 255`. */
function frame(length: number, seed: number, serial: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES + length);
  writeHeader(b, 0, length, QFrame.Data, 0, serial);
  for (let i = 0; i < length; i++) b[HEADER_BYTES + i] = (seed + i) & 255;
  return b;
}

/** A tiny deterministic random source. */
function rng(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

test("parser: reads placed by readTarget/read deliver every frame intact; large payloads are read in place", () => {
  const sizes = [0, 5, 100, 16 << 10, 70 << 10, 1 << 20, 33, 3 << 20, 64 << 10, 40 << 10, 1];
  const stream = Buffer.concat(sizes.map((n, i) => frame(n, i * 7, i + 1)));
  for (const seed of [1, 2, 3]) {
    const random = rng(seed);
    const got: { h: Header; p: Buffer }[] = [];
    const parser = new FrameParser(frameTable(8 << 20), (h, f) => got.push({ h, p: f.subarray(HEADER_BYTES) }));
    /** Bytes the reads wrote into each buffer offered as a target. */
    const readInto = new Map<ArrayBufferLike, number>();
    let at = 0;
    while (at < stream.length) {
      const target = parser.readTarget();
      // The kernel fills any amount up to what was offered (often less; a header offered alone
      // may come in parts too).
      const want = target.length <= HEADER_BYTES ? 1 + Math.floor(random() * target.length) : Math.floor(random() * 200_000);
      const n = Math.max(1, Math.min(target.length, stream.length - at, want));
      stream.copy(target, 0, at, at + n);
      readInto.set(target.buffer, (readInto.get(target.buffer) ?? 0) + n);
      parser.read(n, target);
      at += n;
    }
    assert.equal(got.length, sizes.length);
    got.forEach(({ h, p }, i) => {
      assert.equal(h.a, i + 1);
      assert.equal(p.length, sizes[i]);
      for (let k = 0; k < p.length; k += 997) assert.equal(p[k], (i * 7 + k) & 255, `frame ${i} byte ${k}`);
      if (p.length > 0) assert.equal(p[p.length - 1], (i * 7 + p.length - 1) & 255);
    });
    // Large payloads (>= 32 KiB) are written by the reads themselves: their memory was offered
    // as a read target — all of it when the frame before was large too (its header was read
    // alone), else all but what came with the read of the header.
    got.forEach(({ p }, i) => {
      if (p.length < 32 << 10) return;
      const direct = readInto.get(p.buffer) ?? 0;
      if (sizes[i - 1] >= 32 << 10) assert.equal(direct, p.length, `frame ${i} (${p.length} B, after a large one) read in place entirely`);
      else assert.ok(direct > 0, `frame ${i} (${p.length} B) read in place`);
    });
    assert.ok(parser.idle);
  }
});

test("parser: an oversized header read through readTarget is refused before its payload is allocated", () => {
  const parser = new FrameParser(frameTable(1 << 20), () => assert.fail("no frame"));
  const target = parser.readTarget();
  const h = Buffer.alloc(HEADER_BYTES);
  writeHeader(h, 0, 0x7fffffff, QFrame.Data, 0, 1);
  h.copy(target);
  assert.throws(() => parser.read(HEADER_BYTES, target), { code: "ERR_PLEXUS_FRAME_TOO_LARGE" });
  assert.ok(parser.readTarget().length <= 64 << 10, "no 2 GiB buffer was offered");
});

test("fd listener: accepts connections as fds, refuses a taken port with SystemError, stops on close", async () => {
  const fds: number[] = [];
  const listener = await FdTcpListener.listen("127.0.0.1", 0, (fd) => fds.push(fd));
  await assert.rejects(FdTcpListener.listen("127.0.0.1", listener.port, () => {}), (e: unknown) => e instanceof SystemError && e.errnoName === "EADDRINUSE");
  const s = connect(listener.port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  for (let i = 0; i < 400 && fds.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(fds.length, 1, "the connection was accepted");
  assert.ok(fds[0] > 2);
  s.destroy();
  listener.close();
  listener.close(); // idempotent
  const refused = connect(listener.port, "127.0.0.1");
  const err = await new Promise<NodeJS.ErrnoException>((r) => refused.once("error", r));
  assert.equal(err.code, "ECONNREFUSED");
  const { native } = await import("../src/native.js");
  for (const fd of fds) native().close(fd);
  // A name that does not resolve is a SystemError (as from net.Server); a throwing owner loses
  // only that connection (closed), the listener serves on.
  await assert.rejects(FdTcpListener.listen("no-such-host.invalid", 0, () => {}), (e: unknown) => e instanceof SystemError && e.syscall === "getaddrinfo");
  let calls = 0;
  const picky = await FdTcpListener.listen("127.0.0.1", 0, () => {
    calls++;
    throw new Error("cannot take it");
  });
  for (let round = 1; round <= 2; round++) {
    const c = connect(picky.port, "127.0.0.1");
    c.on("error", () => {});
    await new Promise((r) => c.once("close", r)); // the server closed it
    assert.equal(calls, round);
  }
  picky.close();
});

test("queue over plain TCP: large and small messages both ways, byte-exact, mixed in one stream", async () => {
  await using server = await queue.server({ url: "tcp://127.0.0.1:0", maxMessage: 8 << 20 });
  await using client = await queue.client({ url: server.url, maxMessage: 8 << 20 });
  const sizes = [3 << 20, 10, 1 << 20, 64 << 10, 70 << 10, 0, 5 << 20, 1];
  const make = (n: number, seed: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (seed * 31 + i) & 255;
    return b;
  };
  const puts = sizes.map((n, i) => client.put(make(n, i)));
  for (let i = 0; i < sizes.length; i++) {
    const m = await server.get({ timeout: 10_000 });
    assert.deepEqual(m.value, make(sizes[i], i), `client -> server message ${i}`);
    m.release();
  }
  await Promise.all(puts);
  const back = sizes.map((n, i) => server.put(make(n, i + 100)));
  for (let i = 0; i < sizes.length; i++) {
    const m = await client.get({ timeout: 10_000 });
    assert.deepEqual(m.value, make(sizes[i], i + 100), `server -> client message ${i}`);
    m.release();
  }
  await Promise.all(back);
});

test("queue server: a connection Node cannot wrap is closed and reported as PeerDeadError; the server serves on", async () => {
  const errors: PlexusError[] = [];
  await using server = await queue.server({ url: "tcp://127.0.0.1:0", onPeerError: (e) => errors.push(e) });
  // A regular file's fd where a socket's should be: `new net.Socket({ fd })` refuses it.
  const dir = mkdtempSync(join(tmpdir(), "plexus-q-"));
  const fd = openSync(join(dir, "not-a-socket"), "w");
  (server as unknown as { acceptFd(fd: number): void }).acceptFd(fd);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof PeerDeadError, String(errors[0]));
  assert.throws(() => fstatSync(fd), { code: "EBADF" }, "the fd was closed");
  rmSync(dir, { recursive: true });
  await using client = await queue.client({ url: server.url });
  await client.put("still serving");
  assert.equal((await server.get({ timeout: 5000 })).value, "still serving");
});
