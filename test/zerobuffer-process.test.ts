/**
 * ZeroBuffer across processes: the CLI roles (`plexus zerobuffer reader|writer|duplex-server|
 * duplex-client`) run against each other as real processes, and the liveness and cleanup rules
 * (docs/zerobuffer-protocol.md §3, §8, §9) are checked with processes killed by SIGKILL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuplexClient, InPlaceClient, InPlaceServer, Reader, ReaderDeadError, SequenceError, Writer, WriterDeadError } from "../src/zerobuffer/index.js";
import { fixture } from "./helpers/child.js";
import { eventually } from "./helpers/eventually.js";
import { leftovers, mismatch, pattern, role, uniqueName, waitFile } from "./helpers/zb.js";

const dir = mkdtempSync(join(tmpdir(), "plexus-zbt-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const readyFile = (): string => join(dir, `ready-${++files}`);

// Sizes that force wraps, exact fits and tiny frames in a 64 KiB ring.
const SIZES = "1,4000,17,30000,777,8176,12345,64,15,20000";

test("CLI: reader <-> writer, 3000 frames of varied sizes with wraps, mixed copy/zero-copy, metadata, header accounting", async () => {
  const name = uniqueName("cli");
  const ready = readyFile();
  const reader = role(["reader", name, "--frames", "3000", "--payload-size", "65536", "--metadata-size", "256", "--sizes", SIZES, "--expect-pattern", "--expect-metadata-bytes", "100", "--ready-file", ready, "--unknown-option", "x"]);
  await waitFile(ready);
  const writer = role(["writer", name, "--frames", "3000", "--sizes", SIZES, "--metadata-bytes", "100", "--api", "mixed", "--whatever"]);
  const w = await writer.done;
  const r = await reader.done;
  assert.deepEqual(w.json.errors, [], w.stderr);
  assert.equal(w.code, 0);
  assert.deepEqual(r.json.errors, [], r.stderr);
  assert.equal(r.code, 0);
  assert.equal(r.json.frames, 3000);
  assert.equal(w.json.bytes, r.json.bytes);
  const h = r.json.header as { payloadFreeBytes: number; payloadSize: number; readPos: number; writePos: number; writtenCount: number; readCount: number };
  assert.equal(h.payloadFreeBytes, h.payloadSize);
  assert.equal(h.readPos, h.writePos % h.payloadSize);
  assert.ok(h.writtenCount > 3000, "wrap markers were written");
  assert.equal(h.readCount, h.writtenCount);
  assert.deepEqual(leftovers(name), []);
});

test("CLI: zero-copy writer with text metadata; the reader's checks can fail (wrong sizes, wrong metadata)", async () => {
  const name = uniqueName("cli2");
  const ready = readyFile();
  const reader = role(["reader", name, "--frames", "400", "--payload-size", "20000", "--metadata-size", "64", "--frame-size", "999", "--expect-pattern", "--expect-metadata-text", "caps=video/x-raw", "--ready-file", ready]);
  await waitFile(ready);
  const w = await role(["writer", name, "--frames", "400", "--frame-size", "999", "--metadata-text", "caps=video/x-raw", "--api", "zerocopy"]).done;
  const r = await reader.done;
  assert.deepEqual([w.code, w.json.errors, r.code, r.json.errors], [0, [], 0, []], r.stderr + w.stderr);

  const bad = uniqueName("cli3");
  const ready2 = readyFile();
  const reader2 = role(["reader", bad, "--frames", "3", "--payload-size", "4096", "--metadata-size", "64", "--frame-size", "100", "--expect-pattern", "--expect-metadata-text", "expected", "--ready-file", ready2]);
  await waitFile(ready2);
  await role(["writer", bad, "--frames", "3", "--frame-size", "101", "--metadata-text", "other"]).done;
  const r2 = await reader2.done;
  assert.equal(r2.code, 1);
  assert.equal(r2.json.ok, false);
  assert.ok(r2.json.errors.some((e) => /metadata: expected text/.test(e)), r2.json.errors.join("\n"));
  assert.ok(r2.json.errors.some((e) => /101 bytes, expected 100/.test(e)), r2.json.errors.join("\n"));
  assert.deepEqual(leftovers(name, bad), []);
});

test("CLI: a usage error is still one JSON line with errors, and exit code 2 (as every plexus command's)", async () => {
  const r = await role(["reader", uniqueName("usage"), "--payload-size", "4096"]).done;
  assert.equal(r.code, 2);
  assert.ok(r.json.errors.some((e) => /--frames is required/.test(e)), r.stdout);
  const w = await role(["writer", uniqueName("usage"), "--frames", "1", "--api", "teleport", "--frame-size", "1"]).done;
  assert.equal(w.code, 2);
  assert.ok(w.json.errors.some((e) => /--api must be one of/.test(e)), w.stdout);
});

for (const protocol of ["1", "2"]) {
  test(`CLI: duplex-server <-> duplex-client, protocol ${protocol}: 500 requests, window 8, metadata, copy and zero-copy`, async () => {
    for (const [transform, api] of [
      ["xor", "copy"],
      ["add1", "zerocopy"],
    ] as const) {
      const name = uniqueName(`dx${protocol}`);
      const ready = readyFile();
      const server = role([
        "duplex-server", name, "--transform", transform, "--payload-size", "262144", "--metadata-size", "256", "--requests", "500",
        "--expect-pattern", "--expect-metadata-bytes", "64", "--ready-file", ready, "--protocol", protocol,
      ]);
      await waitFile(ready);
      const c = await role([
        "duplex-client", name, "--requests", "500", "--sizes", "100,5000,64,1,33333", "--transform", transform, "--window", "8",
        "--metadata-bytes", "64", "--api", api, "--protocol", protocol, "--response-payload-size", "262144",
      ]).done;
      const s = await server.done;
      assert.deepEqual([c.code, c.json.errors], [0, []], c.stderr);
      assert.deepEqual([s.code, s.json.errors], [0, []], s.stderr);
      assert.equal(c.json.requests, 500);
      assert.equal(s.json.requests, 500);
      const rtt = c.json.rtt_us as { count: number; p50: number; p90: number; p99: number };
      assert.equal(rtt.count, 500);
      assert.ok(rtt.p50 > 0 && rtt.p50 <= rtt.p90 && rtt.p90 <= rtt.p99);
      if (protocol === "2") assert.equal(s.json.consumed, 500, "the server counted every response consumed");
      assert.deepEqual(leftovers(`${name}_request`, `${name}_response`), []);
    }
  });
}

test("CLI: the reader role takes the reference's metadata size (1024) when --metadata-size is left out", async () => {
  const name = uniqueName("rdef");
  const ready = readyFile();
  const reader = role(["reader", name, "--frames", "1", "--payload-size", "4096", "--frame-size", "10", "--expect-pattern", "--ready-file", ready]);
  await waitFile(ready);
  const w = await Writer.connect(name, { timeout: 5000 });
  assert.equal(w.metadataSize, 1024);
  await w.write(pattern(1, 10));
  await w.close();
  const r = await reader.done;
  assert.deepEqual([r.code, r.json.errors, r.json.frames], [0, [], 1], r.stderr);
  assert.deepEqual(leftovers(name), []);
});

test("v1 duplex, the reference's connection order: the server (CLI role, default sizes) connects to each client's response buffer before any request; clients that wait for it are served", async () => {
  const name = uniqueName("order");
  const ready = readyFile();
  const server = role(["duplex-server", name, "--transform", "add1", "--requests", "2", "--ready-file", ready]);
  await waitFile(ready);
  const answer = (data: Uint8Array): number[] => Array.from(pattern(1, data.length), (b) => (b + 1) & 0xff);

  // Client 1 as the reference Python client: request writer, response buffer, then it waits for a
  // writer on the response buffer (is_server_connected) before it sends anything.
  const w = await Writer.connect(`${name}_request`, { timeout: 5000 });
  assert.deepEqual([w.payloadSize, w.metadataSize], [1 << 20, 4096], "the duplex-server role's default sizes");
  const r = await Reader.create(`${name}_response`, { payloadSize: 4096, metadataSize: 0 });
  assert.equal(await eventually("the server's writer on the response buffer", () => r.writerPid || undefined, 5000), server.pid);
  await w.write(pattern(1, 10));
  const first = await r.read({ timeout: 5000 });
  assert.deepEqual([first.sequence, Array.from(first.data)], [1, answer(first.data)]);
  first.release();
  await w.close();
  await r.close();

  // Client 2, a new session: the server drops its writer on client 1's buffer and connects to this one.
  const client = await DuplexClient.connect(name, { responsePayloadSize: 4096, responseMetadataSize: 0 });
  await eventually("serverConnected", () => client.serverConnected, 5000);
  const second = await client.request(pattern(1, 20));
  assert.deepEqual([second.sequence, Array.from(second.data)], [1, answer(second.data)]);
  second.release();
  await client.close();
  assert.equal(client.serverConnected, false);

  const s = await server.done;
  assert.deepEqual([s.code, s.json.errors, s.json.requests], [0, [], 2], s.stderr);
  assert.deepEqual(leftovers(`${name}_request`, `${name}_response`), []);
});

test("CLI: a v1 client refuses a protocol 2 server, and a v2 client a v1 server", async () => {
  for (const [serverProtocol, clientProtocol] of [
    ["2", "1"],
    ["1", "2"],
  ]) {
    const name = uniqueName("mix");
    const ready = readyFile();
    const server = role(["duplex-server", name, "--transform", "echo", "--payload-size", "4096", "--metadata-size", "0", "--requests", "1", "--timeout", "0.5", "--ready-file", ready, "--protocol", serverProtocol as string]);
    await waitFile(ready);
    const c = await role(["duplex-client", name, "--requests", "1", "--sizes", "10", "--transform", "echo", "--protocol", clientProtocol as string, "--timeout", "2", "--response-payload-size", "4096"]).done;
    assert.equal(c.code, 1);
    assert.ok(c.json.errors.some((e) => /ProtocolVersionError \[ERR_PLEXUS_ZB_PROTOCOL_VERSION\]/.test(e)), c.json.errors.join("\n"));
    const s = await server.done;
    assert.equal(s.code, 1, "the server saw no request");
    assert.deepEqual(leftovers(`${name}_request`, `${name}_response`), []);
  }
});

test("kill -9 of a reader holding frames: the blocked writer gets ReaderDeadError; the next reader sweeps the buffer once unused", async () => {
  const name = uniqueName("kr");
  const child = fixture("zb-reader", { name, payloadSize: 4096 });
  assert.equal(await child.line(), "ready");
  const writer = await Writer.connect(name, { timeout: 5000, writeTimeout: 20_000 });
  let seq = 1;
  while (writer.tryWrite(pattern(seq, 500)) !== 0) seq++;
  for (let i = 1; i < seq; i++) assert.equal(await child.line(), `held ${i}`);
  const blocked = writer.write(pattern(seq, 500)).catch((e: unknown) => e);
  child.proc.kill("SIGKILL");
  await child.exited;
  const err = await blocked;
  assert.ok(err instanceof ReaderDeadError, String(err));
  assert.equal(leftovers(name).length, 4, "shm, two semaphores and the lock file are left by the killed reader");
  // The writer still maps it and is alive: a stale scan must not remove it, nor orphan it.
  const other = await Reader.create(uniqueName("sweep"), { payloadSize: 64 });
  await other.close();
  assert.equal(existsSync(`/dev/shm/${name}`), true);
  assert.equal(existsSync(`/tmp/zerobuffer/${name}.lock`), true);
  await writer.close();
  const third = await Reader.create(uniqueName("sweep"), { payloadSize: 64 });
  await third.close();
  assert.deepEqual(leftovers(name), [], "swept by the next reader of any name");
});

test("kill -9 of a writer: the reader gets every committed frame, then WriterDeadError (not graceful)", async () => {
  const name = uniqueName("kw");
  const reader = await Reader.create(name, { payloadSize: 1 << 20, metadataSize: 0 });
  try {
    const child = fixture("zb-writer", { name, count: 40, sizes: [1000, 77, 30000], hang: true });
    assert.equal(await child.line(), "wrote 40");
    child.proc.kill("SIGKILL");
    await child.exited;
    for (let seq = 1; seq <= 40; seq++) {
      const f = await reader.read({ timeout: 5000 });
      assert.equal(f.sequence, seq);
      assert.equal(mismatch(f.data, seq), -1);
      f.release();
    }
    const err = await reader.read({ timeout: 5000 }).catch((e: unknown) => e);
    assert.ok(err instanceof WriterDeadError, String(err));
    assert.equal(err.graceful, false);
  } finally {
    await reader.close();
  }
  assert.deepEqual(leftovers(name), []);
});

test("§3: a new writer after a killed one is accepted; its sequence restarts at 1 and the reader says SequenceError", async () => {
  const name = uniqueName("nw");
  const reader = await Reader.create(name, { payloadSize: 65536, metadataSize: 0 });
  try {
    const child = fixture("zb-writer", { name, count: 3, sizes: [200], hang: true });
    assert.equal(await child.line(), "wrote 3");
    await assert.rejects(Writer.connect(name, { timeout: 300 }), /live writer/);
    child.proc.kill("SIGKILL");
    await child.exited;
    const writer = await Writer.connect(name, { timeout: 1000 });
    await writer.write(pattern(1, 10));
    for (let seq = 1; seq <= 3; seq++) (await reader.read()).release();
    const err = await reader.read().catch((e: unknown) => e);
    assert.ok(err instanceof SequenceError && err.expected === 4 && err.got === 1, String(err));
    const f = await reader.read();
    assert.deepEqual([f.sequence, f.data.length], [1, 10]);
    f.release();
    await writer.close();
  } finally {
    await reader.close();
  }
});

test("in-place (protocol 2): a client killed mid-session is replaced; the server rewinds the ring and serves the new one", async () => {
  const channel = uniqueName("ipk");
  const server = await InPlaceServer.create(
    channel,
    (req) => {
      for (let i = 0; i < req.data.length; i++) req.data[i] = (req.data[i] as number) ^ 0xff;
    },
    { payloadSize: 65536, drainTimeout: 0 },
  );
  try {
    const child = fixture("zb-inplace-client", { channel, requests: 20, size: 1000 });
    assert.equal(await child.line(), "sent");
    child.proc.kill("SIGKILL");
    await child.exited;
    const client = await InPlaceClient.connect(channel, { timeout: 5000 });
    for (let seq = 1; seq <= 200; seq++) {
      const sent = pattern(seq, 3000);
      const res = await client.request(sent);
      assert.equal(res.sequence, seq, "a new session starts at 1");
      assert.equal(res.data.length, 3000);
      assert.ok(res.data.every((b, i) => b === ((sent[i] as number) ^ 0xff)));
      res.release();
    }
    await client.close();
  } finally {
    await server.close();
  }
  assert.deepEqual(leftovers(`${channel}_request`), []);
});
