/**
 * Hostile bytes at the queue port: random and truncated frames, unknown types, wrong versions,
 * oversized lengths, serials out of order, slot overruns, undecodable payloads. Each ends in a
 * typed error (reported through `onPeerError`) and a dropped connection — or, for a payload
 * that is not a codec frame, a NACK — never a crash, a hang or a large allocation; the server
 * keeps serving an honest client throughout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import fc from "fast-check";
import { queue, type PlexusError, type QueueServer } from "../src/index.js";

const MAGIC = 0x51584c50;

/** A frame (16-byte header, docs/protocol.md §0.1); `serial` is the header's word `a`. */
function frame(type: number, serial: number, payload: Uint8Array = new Uint8Array(0), flags = 0, length = payload.length): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(length, 0);
  h[4] = type;
  h[5] = flags;
  h.writeUInt32LE(serial, 8);
  return Buffer.concat([h, payload]);
}

/** A handshake payload: the preamble (§0.2) and the queue's 32-byte body (§7.2). */
function handshake(o: { magic?: number; version?: number; heartbeat?: number; slots?: number; fill?: number; token?: Buffer }): Buffer {
  const version = o.version ?? 3;
  const p = Buffer.alloc(16 + 32);
  p.writeUInt32LE(o.magic ?? MAGIC, 0);
  p.writeUInt16LE(version, 4);
  p.writeUInt16LE(version, 6);
  p.writeUInt32LE(o.heartbeat ?? 1000, 12);
  p.writeUInt16LE(o.slots ?? 1, 16 + 2);
  p.writeUInt32LE(1 << 20, 16 + 4);
  p.fill(o.fill ?? 0xab, 16 + 8, 16 + 32);
  o.token?.copy(p, 16 + 24);
  return p;
}

/** A HELLO of protocol version 3 (identity and session token filled with `id`), or of another `version`. */
function hello(o: { version?: number; slots?: number; id?: number } = {}): Buffer {
  return frame(0x80, 0, handshake({ version: o.version, slots: o.slots, fill: o.id }));
}

/** Writes `bytes`, then waits until the server hangs up (or `ms`); returns what came back. */
async function throwAt(server: QueueServer, bytes: Uint8Array, ms = 2000): Promise<Buffer> {
  const s = connect({ host: "127.0.0.1", port: server.port });
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.on("error", () => {});
  s.write(bytes);
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      s.destroy();
      resolve();
    }, ms);
    s.on("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
  return Buffer.concat(got);
}

async function honest(server: QueueServer, n: number): Promise<void> {
  const c = await queue.client({ url: server.url });
  await c.put({ n });
  const m = await server.get({ timeout: 5000 });
  assert.deepEqual(m.value, { n });
  await c.close();
}

test("fuzz: random bytes, random frames after a valid HELLO, and truncated frames never stop the server", async () => {
  const errors: PlexusError[] = [];
  const server = await queue.server({ url: "tcp://127.0.0.1:0", handshakeTimeout: 200, onPeerError: (e) => errors.push(e) });
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.nat(), async (bytes, withHello, cut) => {
      const input = withHello ? Buffer.concat([hello({ id: n & 0xff }), bytes]) : Buffer.from(bytes);
      await throwAt(server, input.subarray(0, input.length - (cut % (input.length + 1))), 400);
      n++;
    }),
    { numRuns: 40 },
  );
  for (const e of errors) assert.match(e.code, /^ERR_PLEXUS_/);
  await honest(server, n);
  await server.close();
});

test("fuzz: an oversized DATA length is refused from its header alone; unknown types, bad flags, gaps and slot overruns drop the connection", async () => {
  const errors: PlexusError[] = [];
  const server = await queue.server({ url: "tcp://127.0.0.1:0", maxMessage: 1 << 20, onPeerError: (e) => errors.push(e) });
  const before = process.memoryUsage().arrayBuffers;
  // 4 GiB - 1 announced, 12 bytes sent: the server must not wait for (or allocate) the payload
  const t0 = Date.now();
  await throwAt(server, Buffer.concat([hello({ id: 1 }), frame(3, 1, new Uint8Array(0), 0, 0xffffffff)]), 5000);
  assert.ok(Date.now() - t0 < 4000, "the server hung up at once instead of waiting for the payload");
  assert.equal(errors.at(-1)?.code, "ERR_PLEXUS_FRAME_TOO_LARGE");
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, "no allocation of the announced size");
  const bad: [Buffer, string][] = [
    [frame(99, 0), "ERR_PLEXUS_PROTOCOL"], // unknown type
    [frame(3, 1, Buffer.alloc(4), 0x80), "ERR_PLEXUS_PROTOCOL"], // unknown DATA flag
    [frame(0x82, 0, Buffer.alloc(4)), "ERR_PLEXUS_PROTOCOL"], // PING with a payload
    [frame(3, 5, Buffer.alloc(4)), "ERR_PLEXUS_PROTOCOL"], // serial gap
    [frame(0x80, 0, Buffer.alloc(48)), "ERR_PLEXUS_PROTOCOL"], // second HELLO
    [frame(1, 0), "ERR_PLEXUS_PROTOCOL"], // type 1 (version 2's HELLO) is not a queue type
    [frame(4, 1, new Uint8Array(0), 0, 0).fill(1, 12, 16), "ERR_PLEXUS_PROTOCOL"], // word b set
  ];
  for (const [f, c] of bad) {
    errors.length = 0;
    await throwAt(server, Buffer.concat([hello({ id: 2 }), f]));
    assert.equal(errors.at(-1)?.code, c);
  }
  // two DATA frames with one announced slot, neither acknowledged (reliable): a slot overrun
  errors.length = 0;
  const { encode } = await import("../src/codec/index.js");
  const v = encode("x");
  await throwAt(server, Buffer.concat([hello({ id: 3, slots: 1 }), frame(3, 1, v, 1), frame(3, 2, v, 1)]));
  assert.equal(errors.at(-1)?.code, "ERR_PLEXUS_PROTOCOL");
  assert.match(errors.at(-1)!.message, /slot/);
  assert.equal((await server.get()).value, "x", "the first message, within its slot, was taken");
  assert.equal(server.queued, 0);
  await honest(server, 1);
  await server.close();
});

test("fuzz: a payload that is not a codec frame gets a NACK (the sender learns), the connection stays up", async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0" });
  const s = connect({ host: "127.0.0.1", port: server.port });
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.write(Buffer.concat([hello({ id: 4 }), frame(3, 1, Buffer.from("definitely not a frame"))]));
  const t = Date.now();
  while (Buffer.concat(got).length < 16 + 48 + 16 + 4 && Date.now() - t < 3000) await new Promise((r) => setTimeout(r, 10));
  const all = Buffer.concat(got);
  const nack = all.subarray(16 + 48);
  assert.equal(nack[4], 5, "NACK");
  assert.equal(nack.readUInt32LE(8), 1, "for serial 1");
  assert.equal(nack.readUInt32LE(16), 1, "reason: malformed");
  assert.equal(server.queued, 0);
  assert.equal(s.destroyed, false);
  s.destroy();
  await honest(server, 2);
  await server.close();
});

test("handshake: a wrong version gets a WELCOME with status 1 and the server's version; other refusals; no HELLO within the timeout is dropped", async () => {
  const errors: PlexusError[] = [];
  const server = await queue.server({ url: "tcp://127.0.0.1:0", handshakeTimeout: 100, onPeerError: (e) => errors.push(e) });
  for (const version of [2, 7]) {
    const reply = await throwAt(server, hello({ version }));
    assert.equal(reply[4], 0x81, "WELCOME");
    assert.equal(reply.readUInt32LE(8), 1, "status: version");
    assert.equal(reply.readUInt16LE(16 + 4), 3, "server version");
  }
  // another protocol's magic: status 4; a zero heartbeat or 0 slots: status 2 (malformed)
  for (const [p, status] of [
    [handshake({ magic: 0x52584c50 }), 4],
    [handshake({ heartbeat: 0 }), 2],
    [handshake({ slots: 0 }), 2],
    [handshake({}).subarray(0, 40), 2],
  ] as const) {
    const reply = await throwAt(server, frame(0x80, 0, p));
    assert.equal(reply[4], 0x81, "WELCOME");
    assert.equal(reply.readUInt32LE(8), status);
  }
  const silent = await throwAt(server, Buffer.alloc(0), 3000);
  assert.equal(silent.length, 0);
  assert.equal(errors.at(-1)?.code, "ERR_PLEXUS_PROTOCOL");
  // a client of another version sees a typed error
  await honest(server, 3);
  await server.close();
});

/** A fake server that answers every connection with `reply(hello)`; returns its port. */
async function fakeServer(reply: (hello: Buffer) => Buffer | null): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import("node:net");
  const socks = new Set<import("node:net").Socket>();
  const srv = createServer((s) => {
    socks.add(s);
    s.on("error", () => {});
    s.once("data", (d: Buffer) => {
      const r = reply(d);
      if (r === null) s.destroy();
      else s.write(r);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: (srv.address() as import("node:net").AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** A WELCOME answering `hello` (its session token echoed, unless `token` is given). */
function welcome(hello: Buffer, o: { magic?: number; version?: number; status?: number; slots?: number; token?: Buffer } = {}): Buffer {
  const p = handshake({ magic: o.magic, version: o.version, slots: o.slots ?? 16, fill: 0xcd, token: o.token ?? hello.subarray(16 + 16 + 24, 16 + 16 + 32) });
  return frame(0x81, o.status ?? 0, p);
}

test("client side: a hostile or foreign server is a typed error at connect; an oversized frame after the handshake ends the client with PeerDeadError", async () => {
  const cases: [((hello: Buffer) => Buffer) | null, string][] = [
    [(h) => welcome(h, { magic: 0x12345678 }), "ERR_PLEXUS_PROTOCOL"],
    [(h) => welcome(h, { version: 9 }), "ERR_PLEXUS_PROTOCOL"],
    [(h) => welcome(h, { status: 3 }), "ERR_PLEXUS_RESOURCE_EXHAUSTED"],
    [(h) => welcome(h, { status: 16 }), "ERR_PLEXUS_PEER_DEAD"], // superseded: another client took the identity
    [(h) => welcome(h, { status: 4 }), "ERR_PLEXUS_PROTOCOL"], // another protocol's port
    [(h) => welcome(h, { slots: 0 }), "ERR_PLEXUS_PROTOCOL"],
    [(h) => welcome(h, { token: Buffer.alloc(8, 1) }), "ERR_PLEXUS_PROTOCOL"], // answers another HELLO
    [() => frame(3, 1, Buffer.alloc(8)), "ERR_PLEXUS_PROTOCOL"], // DATA before WELCOME
    [() => Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"), "ERR_PLEXUS_PROTOCOL"],
    [null, "ERR_PLEXUS_PEER_DEAD"], // hangs up
  ];
  for (const [reply, c] of cases) {
    const fake = await fakeServer((h) => (reply === null ? null : reply(h)));
    await assert.rejects(queue.client({ url: `tcp://127.0.0.1:${fake.port}`, connectTimeout: 2000 }), (e: PlexusError) => e.code === c);
    await fake.close();
  }
  // a WELCOME, then a DATA header announcing 4 GiB: the client refuses it from the header, cannot get back in, and ends
  let first = true;
  const fake = await fakeServer((h) => {
    if (!first) return null;
    first = false;
    return Buffer.concat([welcome(h), frame(3, 1, new Uint8Array(0), 0, 0xffffffff)]);
  });
  const client = await queue.client({ url: `tcp://127.0.0.1:${fake.port}`, reconnectWindow: 200 });
  await assert.rejects(client.get({ timeout: 5000 }), (e: PlexusError) => e.code === "ERR_PLEXUS_PEER_DEAD");
  await assert.rejects(client.put(1), (e: PlexusError) => e.code === "ERR_PLEXUS_PEER_DEAD");
  await client.close();
  await fake.close();
});
