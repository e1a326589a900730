/**
 * Hostile bytes on both ends of the tcp transport: random, truncated, oversized and
 * out-of-protocol input must end in a typed error and a dropped connection, never a crash, a
 * hang or a large allocation; the sender keeps serving honest receivers throughout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import fc from "fast-check";
import { PlexusError, type Receiver } from "../src/index.js";
import { connectTcp, TcpSender, type TcpAddress } from "../src/transport/tcp.js";
import { checkMessage, message } from "./conformance/suite.js";

const MAGIC = 0x54584c50;

/** A HELLO frame (a version-1 HELLO block for version 1): preamble, then policy and pid. */
function hello(version = 2, policy = 0, heartbeat = 1000, magic = MAGIC): Buffer {
  if (version === 1) {
    const b = Buffer.alloc(32);
    b.writeUInt32LE(MAGIC, 0);
    b.writeUInt16LE(version, 4);
    b[6] = policy;
    b.writeUInt32LE(process.pid, 8);
    b.writeUInt32LE(heartbeat, 12);
    return b;
  }
  const b = Buffer.alloc(40);
  b.writeUInt32LE(24, 0);
  b[4] = 0x80;
  b.writeUInt32LE(magic, 16);
  b.writeUInt16LE(version, 20);
  b.writeUInt16LE(version, 22);
  b.writeUInt32LE(heartbeat, 28);
  b[32] = policy;
  b.writeUInt32LE(process.pid, 36);
  return b;
}

function header(length: number, type: number, value: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(length, 0);
  b.writeUInt32LE(type, 4);
  b.writeUInt32LE(value % 2 ** 32, 8);
  b.writeUInt32LE(Math.floor(value / 2 ** 32), 12);
  return b;
}

/** A WELCOME frame (48 bytes): header with the status, preamble, window, maxMessage, first sequence. */
function welcome(o: { version?: number; status?: number; capacity?: number; maxMessage?: number; startSeq?: number; heartbeat?: number; magic?: number } = {}): Buffer {
  const b = Buffer.alloc(48);
  b.writeUInt32LE(32, 0);
  b[4] = 0x81;
  b.writeUInt32LE(o.status ?? 0, 8);
  b.writeUInt32LE(o.magic ?? MAGIC, 16);
  b.writeUInt16LE(o.version ?? 2, 20);
  b.writeUInt16LE(o.version ?? 2, 22);
  b.writeUInt32LE(o.heartbeat ?? 1000, 28);
  b.writeUInt32LE(o.capacity ?? 65536, 32);
  b.writeUInt32LE(o.maxMessage ?? 32752, 36);
  b.writeUInt32LE(o.startSeq ?? 1, 40);
  return b;
}

/** Version 1's 32-byte WELCOME block (a sender of version 1 would answer this way). */
function welcomeV1(): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt16LE(1, 4);
  b.writeUInt32LE(65536, 8);
  b.writeUInt32LE(32752, 12);
  b.writeUInt32LE(1, 16);
  b.writeUInt32LE(1000, 24);
  return b;
}

/** A data frame (header, payload, zero padding to 16). */
function dataFrame(seq: number, payload: Uint8Array): Buffer {
  const padded = Buffer.alloc((payload.length + 15) & ~15);
  padded.set(payload);
  return Buffer.concat([header(payload.length, 1, seq), padded]);
}

/** Writes `bytes` to the sender's port, ends, and waits until the connection is gone; returns what came back. */
async function throwAt(address: TcpAddress, bytes: Uint8Array, end = true): Promise<Buffer> {
  const s = connect({ host: address.host, port: address.port });
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.on("error", () => {});
  await once(s, "connect");
  if (bytes.length > 0) s.write(bytes);
  if (end) s.end();
  await once(s, "close");
  return Buffer.concat(got);
}

/** The honest receiver still gets the next message. */
async function stillServes(sender: TcpSender, rx: Receiver, seq: number): Promise<void> {
  await sender.send(message(seq, 300));
  const f = await rx.receive({ timeout: 5000 });
  assert.ok(f);
  checkMessage(f.bytes, seq, 300);
  f.release();
}

test("tcp fuzz: random, truncated and oversized input at the sender's port; honest receivers are still served", async () => {
  const reported: unknown[] = [];
  await using sender = await TcpSender.create({ capacity: 65536, handshakeTimeout: 300, onPeerError: (e) => reported.push(e) });
  await using rx = await connectTcp(sender.address);
  let seq = 1;
  await stillServes(sender, rx, seq++);

  // Scripted cases.
  const cases: [string, Buffer][] = [
    ["truncated hello", hello().subarray(0, 20)],
    ["wrong magic", Buffer.alloc(32, 0x41)],
    ["frame longer than any control frame", Buffer.concat([hello(), header(0xfffffff0, 16, 0)])],
    ["ack for bytes never sent", Buffer.concat([hello(), header(0, 16, 1 << 30)])],
    ["ack value above 2^53", Buffer.concat([hello(), header(0, 16, 0), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])])],
    ["unknown frame type", Buffer.concat([hello(), header(0, 99, 0)])],
    ["non-zero flags", Buffer.concat([hello(), header(0, 16 | (1 << 8), 0)])],
    ["data frame from a receiver", Buffer.concat([hello(), header(8, 1, 1), Buffer.alloc(16)])],
    ["truncated frame", Buffer.concat([hello(), header(0, 16, 0).subarray(0, 9)])],
    ["a HELLO larger than any", header(5000, 0x80, 0)],
    ["a PING before the HELLO", Buffer.concat([header(0, 0x82, 0), hello()])],
    ["a second HELLO", Buffer.concat([hello(), hello()])],
    ["a PING with a value", Buffer.concat([hello(), header(0, 0x82, 0), header(0, 0x82, 1)])],
    ["version 1's PING type", Buffer.concat([hello(), header(0, 3, 0)])],
  ];
  for (const [name, bytes] of cases) {
    await throwAt(sender.address, bytes);
    await stillServes(sender, rx, seq++);
    assert.equal(sender.receivers, 1, name);
  }

  // A version the sender does not speak gets a WELCOME saying so (status 1 in its header, the sender's versions in its preamble).
  const status = (answer: Buffer): number => {
    assert.equal(answer[4], 0x81, "a WELCOME");
    assert.equal(answer.readUInt32LE(16), MAGIC);
    assert.equal(answer.readUInt16LE(20), 2, "the sender's version");
    return answer.readUInt32LE(8);
  };
  assert.equal(status(await throwAt(sender.address, hello(3), false)), 1);
  // A version-1 receiver gets version 1's 32-byte WELCOME with status 1 and the sender's version (it reports the mismatch).
  const v1 = await throwAt(sender.address, hello(1), false);
  assert.equal(v1.length, 32);
  assert.equal(v1.readUInt32LE(0), MAGIC);
  assert.equal(v1.readUInt16LE(4), 2);
  assert.equal(v1[6], 1);
  // A malformed hello (unknown policy, heartbeat 0) gets status 2; another protocol's HELLO status 4.
  assert.equal(status(await throwAt(sender.address, hello(2, 7), false)), 2);
  assert.equal(status(await throwAt(sender.address, hello(2, 0, 0), false)), 2);
  assert.equal(status(await throwAt(sender.address, hello(2, 0, 1000, 0x51584c50), false)), 4);
  const reserved = hello();
  reserved[33] = 1;
  assert.equal(status(await throwAt(sender.address, reserved, false)), 2);

  // A connection that never says hello is dropped after the handshake timeout.
  await throwAt(sender.address, new Uint8Array(0), false);

  // Random bytes, with or without a valid hello in front.
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 200 }), async (withHello, junk) => {
      await throwAt(sender.address, withHello ? Buffer.concat([hello(2, junk.length % 3), junk]) : junk);
    }),
    { numRuns: 60 },
  );
  await stillServes(sender, rx, seq++);
  assert.equal(sender.receivers, 1);
  assert.ok(reported.length > 0);
  for (const e of reported) assert.ok(e instanceof PlexusError, `reported ${String(e)}`);
});

/** A fake sender: answers each HELLO with `script(socket)`; `close()` ends it and its connections. */
async function fakeSender(script: (s: Socket) => void): Promise<{ address: TcpAddress; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    let got = 0;
    s.on("data", (d: Buffer) => {
      const before = got;
      got += d.length;
      if (before < 32 && got >= 32) script(s);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: { kind: "tcp", host: "127.0.0.1", port: (server.address() as AddressInfo).port, tls: false },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Receives until the stream ends; returns the sequences received and how it ended. */
async function drain(rx: Receiver): Promise<{ seqs: number[]; end: unknown }> {
  const seqs: number[] = [];
  try {
    for (;;) {
      const f = await rx.receive({ timeout: 10000 });
      if (f === null) return { seqs, end: null };
      seqs.push(f.sequence);
      f.release();
    }
  } catch (e) {
    return { seqs, end: e };
  }
}

test("tcp fuzz: a receiver refuses bad handshakes with typed errors", async () => {
  const answers: [string, Buffer, string][] = [
    ["garbage", Buffer.alloc(32, 0x5a), "ERR_PLEXUS_PROTOCOL"],
    ["other version", welcome({ version: 3 }), "ERR_PLEXUS_PROTOCOL"],
    ["a version-1 WELCOME", welcomeV1(), "ERR_PLEXUS_PROTOCOL"],
    ["another protocol", welcome({ magic: 0x51584c50 }), "ERR_PLEXUS_PROTOCOL"],
    ["refused: version", welcome({ status: 1 }), "ERR_PLEXUS_PROTOCOL"],
    ["refused: malformed", welcome({ status: 2 }), "ERR_PLEXUS_PROTOCOL"],
    ["refused: full", welcome({ status: 3 }), "ERR_PLEXUS_RESOURCE_EXHAUSTED"],
    ["refused: wrong protocol", welcome({ status: 4 }), "ERR_PLEXUS_PROTOCOL"],
    ["not a WELCOME", Buffer.concat([header(0, 0x82, 0), welcome()]), "ERR_PLEXUS_PROTOCOL"],
    ["heartbeat 0", welcome({ heartbeat: 0 }), "ERR_PLEXUS_PROTOCOL"],
    ["start sequence 0", welcome({ startSeq: 0 }), "ERR_PLEXUS_PROTOCOL"],
    ["window too small", welcome({ capacity: 8 }), "ERR_PLEXUS_PROTOCOL"],
    ["message larger than the window", welcome({ capacity: 4096, maxMessage: 4096 }), "ERR_PLEXUS_PROTOCOL"],
    ["messages larger than the receiver accepts", welcome({ capacity: 1 << 30, maxMessage: (1 << 29) - 16 }), "ERR_PLEXUS_FRAME_TOO_LARGE"],
    ["truncated", welcome().subarray(0, 20), "ERR_PLEXUS_PEER_DEAD"],
  ];
  for (const [name, bytes, code] of answers) {
    const fake = await fakeSender((s) => s.end(bytes));
    await assert.rejects(connectTcp(fake.address), { code }, name);
    fake.close();
  }
  // A sender that accepts the connection and never answers: TimeoutError.
  const silent = await fakeSender(() => {});
  await assert.rejects(connectTcp(silent.address, { connectTimeout: 200 }), { code: "ERR_PLEXUS_TIMEOUT" });
  const ac = new AbortController();
  const connecting = connectTcp(silent.address, { signal: ac.signal });
  setTimeout(() => ac.abort("enough"), 20);
  await assert.rejects(connecting, (e: { code?: string; cause?: unknown }) => e.code === "ERR_PLEXUS_ABORTED" && e.cause === "enough");
  silent.close();
});

test("tcp fuzz: an oversized length from a sender is refused before any allocation", async () => {
  const fake = await fakeSender((s) => s.write(Buffer.concat([welcome(), dataFrame(1, message(1, 10)), header(0xfffffff0, 1, 2)])));
  const before = process.memoryUsage().arrayBuffers;
  const rx = await connectTcp(fake.address);
  const { seqs, end } = await drain(rx);
  assert.deepEqual(seqs, [1]);
  assert.equal((end as PlexusError).code, "ERR_PLEXUS_FRAME_TOO_LARGE");
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, "no buffer was allocated for the announced length");
  await rx.close();
  fake.close();
});

test("tcp fuzz: window overruns, sequence gaps and truncated frames from a sender are typed errors", async () => {
  const scripts: [string, Buffer, number[], string][] = [
    // 4 KiB window: the third 2000-byte message (2016 frame bytes each) overruns it.
    ["window overrun", Buffer.concat([welcome({ capacity: 4096, maxMessage: 2032 }), ...[1, 2, 3].map((q) => dataFrame(q, message(q, 2000)))]), [1, 2], "ERR_PLEXUS_PROTOCOL"],
    ["sequence gap", Buffer.concat([welcome(), dataFrame(1, message(1, 5)), dataFrame(3, message(3, 5))]), [1], "ERR_PLEXUS_SEQUENCE"],
    ["truncated frame, then EOF", Buffer.concat([welcome(), dataFrame(1, message(1, 40)), dataFrame(2, message(2, 40)).subarray(0, 30)]), [1], "ERR_PLEXUS_PEER_DEAD"],
    ["control frame with a payload", Buffer.concat([welcome(), header(16, 4, 0), Buffer.alloc(16)]), [], "ERR_PLEXUS_PROTOCOL"],
    ["version 1's PING type", Buffer.concat([welcome(), dataFrame(1, message(1, 5)), header(0, 3, 0)]), [1], "ERR_PLEXUS_PROTOCOL"],
    ["PING with a value", Buffer.concat([welcome(), header(0, 0x82, 0), dataFrame(1, message(1, 5)), header(0, 0x82, 7)]), [1], "ERR_PLEXUS_PROTOCOL"],
    ["a second WELCOME", Buffer.concat([welcome(), dataFrame(1, message(1, 5)), welcome()]), [1], "ERR_PLEXUS_PROTOCOL"],
    ["END before the last message", Buffer.concat([welcome(), dataFrame(1, message(1, 5)), header(0, 2, 5)]), [1], "ERR_PLEXUS_SEQUENCE"],
  ];
  for (const [name, bytes, expected, code] of scripts) {
    const fake = await fakeSender((s) => s.end(bytes));
    const rx = await connectTcp(fake.address);
    const { seqs, end } = await drain(rx);
    assert.deepEqual(seqs, expected, name);
    assert.equal((end as PlexusError).code, code, `${name}: ${String(end)}`);
    await rx.close();
    fake.close();
  }
});

test("tcp fuzz: random bytes after a valid start: valid frames, then a typed error (never a hang or a crash)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.nat(3), async (junk, valid) => {
      const frames = Array.from({ length: valid }, (_, i) => dataFrame(i + 1, message(i + 1, 24 * i)));
      const fake = await fakeSender((s) => s.end(Buffer.concat([welcome(), ...frames, junk])));
      try {
        const rx = await connectTcp(fake.address, { backpressure: junk[0] % 2 ? "drop-oldest" : "block" });
        const { seqs, end } = await drain(rx);
        assert.deepEqual(seqs.slice(0, valid), frames.map((_, i) => i + 1));
        if (end !== null) {
          assert.ok(end instanceof PlexusError, `not typed: ${String(end)}`);
          assert.notEqual(end.code, "ERR_PLEXUS_TIMEOUT", "the receiver hung");
        }
        await rx.close();
      } finally {
        fake.close();
      }
    }),
    { numRuns: 60 },
  );
});
