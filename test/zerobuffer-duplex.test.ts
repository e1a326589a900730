/**
 * Duplex channels: the v1 DuplexServer / DuplexClient (docs/zerobuffer-protocol.md §10) and
 * the protocol 2 in-place duplex (docs/zerobuffer.md), in one process (the CLI process tests run
 * them across processes).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { native } from "../src/native.js";
import {
  AbortError,
  BufferFullError,
  ClosedError,
  DuplexClient,
  DuplexServer,
  FrameTooLargeError,
  HandlerError,
  InPlaceClient,
  InPlaceServer,
  InvalidFrameSizeError,
  MetadataAlreadyWrittenError,
  Reader,
  ReaderDeadError,
  TimeoutError,
  Writer,
  WriterAlreadyConnectedError,
  WriterDeadError,
  type DuplexHandler,
  type Frame,
} from "../src/zerobuffer/index.js";
import { Header, OIEB_V2_SIZE, Q } from "../src/zerobuffer/oieb.js";
import { InvalidArgumentError } from "../src/errors.js";
import { eventually } from "./helpers/eventually.js";
import { leftovers, mismatch, pattern, uniqueName } from "./helpers/zb.js";

const SMALL = { responsePayloadSize: 1 << 16, responseMetadataSize: 64 };
const xorFrom = (src: Uint8Array): Uint8Array => src.map((b) => b ^ 0xff);

function noLeftovers(channel: string): void {
  assert.deepEqual(leftovers(`${channel}_request`, `${channel}_response`), []);
}

// ---- v1 duplex -------------------------------------------------------------------------------

test("v1 duplex: buffer ownership, many requests in flight, one response per request in order (positional correlation)", async () => {
  const channel = uniqueName("d1");
  const seen: number[] = [];
  await using server = await DuplexServer.create(channel, (req, respond) => {
    seen.push(req.sequence);
    return respond(xorFrom(req.data));
  }, { payloadSize: 1 << 16 });
  const client = await DuplexClient.connect(channel, SMALL);
  // §10: the server owns {channel}_request, the client owns {channel}_response.
  const owner = (name: string): number => new Header(native().segmentOpen(`/${name}`), 128).load(Q.readerPid);
  assert.equal(owner(`${channel}_request`), process.pid);
  assert.equal(existsSync(`/dev/shm/${channel}_response`), true);
  const replies = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      client.request(pattern(i + 1, 50 + (i % 7) * 100)).then((res) => {
        const want = xorFrom(pattern(i + 1, 50 + (i % 7) * 100));
        const ok = res.sequence === i + 1 && res.data.length === want.length && res.data.every((b, k) => b === want[k]);
        res.release();
        return ok;
      }),
    ),
  );
  assert.ok(replies.every(Boolean), "every response matched its request by position and content");
  assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i + 1), "the handler saw the requests in order");
  assert.equal(server.handled, 200);
  await client.close();
  await server.close();
  noLeftovers(channel);
});

test("v1 duplex: onInit gets the client's metadata after its first request; metadata is write-once per buffer", async () => {
  const channel = uniqueName("d2");
  const inits: (string | null)[] = [];
  const server = await DuplexServer.create(channel, (req, respond) => respond(req.data), {
    payloadSize: 4096,
    onInit: (m) => inits.push(m === null ? null : Buffer.from(m).toString()),
  });
  try {
    const c1 = await DuplexClient.connect(channel, { ...SMALL, metadata: Buffer.from("format=NV12") });
    assert.deepEqual(inits, [], "on_init runs after the first request, not on connect");
    (await c1.request(new Uint8Array([1]))).release();
    (await c1.request(new Uint8Array([2]))).release();
    assert.deepEqual(inits, ["format=NV12"]);
    await c1.close();
    await assert.rejects(DuplexClient.connect(channel, { ...SMALL, metadata: Buffer.from("again"), timeout: 1000 }), MetadataAlreadyWrittenError);
    assert.equal(existsSync(`/dev/shm/${channel}_response`), false, "a refused client leaves nothing behind");
    const c2 = await DuplexClient.connect(channel, SMALL);
    (await c2.request(new Uint8Array([3]))).release();
    assert.deepEqual(inits, ["format=NV12", "format=NV12"], "once per client");
    await c2.close();
  } finally {
    await server.close();
  }
  noLeftovers(channel);
});

test("v1 duplex: zero-copy on both sides (client frameBuffer, server respond.frameBuffer)", async () => {
  const channel = uniqueName("d3");
  const server = await DuplexServer.create(channel, async (req, respond) => {
    const fb = await respond.frameBuffer(req.data.length + 1);
    fb.data.set(req.data);
    fb.data[req.data.length] = 0xee;
    fb.commit();
  }, { payloadSize: 1 << 16 });
  const client = await DuplexClient.connect(channel, SMALL);
  try {
    for (let seq = 1; seq <= 50; seq++) {
      const rb = await client.frameBuffer(300);
      assert.equal(rb.sequence, seq);
      rb.data.set(pattern(seq, 300));
      const res = await rb.commit();
      assert.equal(res.sequence, seq);
      assert.equal(res.data.length, 301);
      assert.equal(mismatch(res.data.subarray(0, 300), seq), -1);
      assert.equal(res.data[300], 0xee);
      res.release();
    }
    const rb = await client.frameBuffer(10);
    rb.cancel();
    (await client.request(pattern(51, 5))).release();
  } finally {
    await client.close();
    await server.close();
  }
  noLeftovers(channel);
});

test("v1 duplex: a second respond() is refused; a handler that never responds ends the client's session loudly; the next client is served", async () => {
  const channel = uniqueName("d4");
  const errors: Error[] = [];
  let secondRespond: unknown;
  const handler: DuplexHandler = async (req, respond) => {
    if (req.data[0] === 1) {
      await respond(req.data);
      secondRespond = await respond(req.data).catch((e: unknown) => e);
    } else if (req.data[0] === 2) {
      throw new Error("boom");
    } else await respond(req.data);
  };
  const server = await DuplexServer.create(channel, handler, { payloadSize: 4096, onError: (e) => errors.push(e) });
  try {
    const c1 = await DuplexClient.connect(channel, SMALL);
    const r1 = await c1.request(new Uint8Array([1]));
    assert.equal(r1.sequence, 1);
    r1.release();
    assert.ok(secondRespond instanceof InvalidArgumentError);
    const lost = c1.request(new Uint8Array([2]));
    const after = c1.request(new Uint8Array([3]));
    const e1 = await lost.catch((e: unknown) => e);
    const e2 = await after.catch((e: unknown) => e);
    assert.ok(e1 instanceof WriterDeadError, String(e1));
    assert.ok(e2 instanceof WriterDeadError, String(e2));
    assert.ok(errors.some((e) => e.message === "boom"));
    await assert.rejects(c1.request(new Uint8Array([3])), WriterDeadError, "the client stays broken");
    await c1.close();
    const c2 = await DuplexClient.connect(channel, SMALL);
    const r2 = await c2.request(new Uint8Array([3, 4]));
    assert.deepEqual([r2.sequence, ...r2.data], [1, 3, 4]);
    r2.release();
    await c2.close();
  } finally {
    await server.close();
  }
  noLeftovers(channel);
});

test("v1 duplex: a request that times out leaves correlation intact (its late response is dropped)", async () => {
  const channel = uniqueName("d5");
  const server = await DuplexServer.create(channel, async (req, respond) => {
    if (req.data[0] === 9) await new Promise((r) => setTimeout(r, 150));
    await respond(req.data);
  }, { payloadSize: 4096 });
  const client = await DuplexClient.connect(channel, SMALL);
  try {
    await assert.rejects(client.request(new Uint8Array([9]), { timeout: 30 }), TimeoutError);
    const res = await client.request(new Uint8Array([7]));
    assert.deepEqual([res.sequence, res.data[0]], [2, 7]);
    res.release();
    const ac = new AbortController();
    ac.abort("no");
    await assert.rejects(client.request(new Uint8Array([1]), { signal: ac.signal }), (e: unknown) => e instanceof AbortError && e.cause === "no");
  } finally {
    await client.close();
    await server.close();
  }
  await assert.rejects(client.request(new Uint8Array([1])), ClosedError);
  noLeftovers(channel);
});

test("v1 duplex: the client waits for the server's request buffer; the server retries the response writer every 100 ms", async () => {
  const channel = uniqueName("d6");
  await assert.rejects(DuplexClient.connect(channel, { ...SMALL, timeout: 50 }), TimeoutError);
  assert.equal(existsSync(`/dev/shm/${channel}_response`), false, "C++/C# order: nothing is created before the request writer connects");
  const connecting = DuplexClient.connect(channel, { ...SMALL, timeout: 5000 });
  await new Promise((r) => setTimeout(r, 30));
  const server = await DuplexServer.create(channel, (req, respond) => respond(req.data), { payloadSize: 4096 });
  const client = await connecting;
  (await client.request(new Uint8Array([1]))).release();
  await client.close();
  // Python's order the other way round: a request arrives before the response buffer exists.
  const w = await Writer.connect(`${channel}_request`, { timeout: 1000 });
  await w.write(new Uint8Array([42]));
  await new Promise((r) => setTimeout(r, 250));
  const late = await Reader.create(`${channel}_response`, { payloadSize: 4096 });
  const res = await late.read({ timeout: 5000 });
  assert.deepEqual([res.sequence, res.data[0]], [1, 42]);
  res.release();
  await w.close();
  await late.close();
  await server.close();
  noLeftovers(channel);
});

test("v1 duplex: the server connects to each client's response buffer before its first request, also after a client that left without sending", async () => {
  const channel = uniqueName("d7");
  await using server = await DuplexServer.create(channel, (req, respond) => respond(req.data), { payloadSize: 4096 });
  for (let i = 0; i < 3; i++) {
    const client = await DuplexClient.connect(channel, SMALL);
    await eventually(`client ${i + 1} sees the server connected`, () => client.serverConnected, 5000);
    if (i === 2) {
      const res = await client.request(new Uint8Array([7]));
      assert.deepEqual([res.sequence, res.data[0]], [1, 7]);
      res.release();
    }
    await client.close();
    assert.equal(client.serverConnected, false);
  }
  assert.equal(server.handled, 1);
  await server.close();
  noLeftovers(channel);
});

// ---- protocol 2: in-place duplex --------------------------------------------------------------

test("in-place: the handler changes the request in place; the client reads the response from the same memory", async () => {
  const channel = uniqueName("p1");
  const server = await InPlaceServer.create(channel, (req) => {
    for (let i = 0; i < req.data.length; i++) req.data[i] = ((req.data[i] as number) + 1) & 0xff;
  }, { payloadSize: 1 << 16 });
  const client = await InPlaceClient.connect(channel);
  try {
    assert.equal(client.sharedBytes, 256 + 1024 + (1 << 16), "one segment: 256-byte header, metadata, payload");
    assert.equal(existsSync(`/dev/shm/${channel}_response`), false, "no response buffer");
    for (const k of ["w", "r", "p", "c"]) assert.equal(existsSync(`/dev/shm/sem.sem-${k}-${channel}_request`), true, `sem-${k}`);
    const rb = await client.frameBuffer(1000);
    assert.equal(rb.sequence, 1);
    rb.data.set(pattern(1, 1000));
    const res = await rb.commit();
    assert.equal(res.sequence, 1, "the sequence is preserved");
    assert.equal(res.data.buffer, rb.data.buffer);
    assert.equal(res.data.byteOffset, rb.data.byteOffset, "the response lies where the request was written");
    assert.ok(res.data.every((b, i) => b === ((pattern(1, 1000)[i] as number) + 1) % 256));
    assert.equal(res.data.byteOffset % 32, 0, "data is 32-byte aligned");
    res.release();
    const copy = await client.request(pattern(2, 17));
    assert.deepEqual([copy.sequence, copy.data.length, copy.data[0]], [2, 17, ((pattern(2, 1)[0] as number) + 1) & 0xff]);
    copy.release();
  } finally {
    await client.close();
    await server.close();
  }
  noLeftovers(channel);
});

test("in-place: layout — 256-byte header, version 2.0.0, 64-byte aligned frames, markers on wrap, FIFO release", async () => {
  const channel = uniqueName("p2");
  const server = await InPlaceServer.create(channel, () => {}, { payloadSize: 4096, metadataSize: 0 });
  const client = await InPlaceClient.connect(channel);
  const seg = native().segmentOpen(`/${channel}_request`);
  const h = new Header(seg, OIEB_V2_SIZE);
  try {
    assert.equal(h.oiebSize, 256);
    assert.equal(h.version, "2.0.0");
    assert.equal(h.load(Q.readerPid), process.pid, "server_pid where v1 keeps reader_pid");
    assert.equal(h.load(Q.writerPid), process.pid, "client_pid where v1 keeps writer_pid");
    assert.equal(statSync(`/dev/shm/${channel}_request`).size, 256 + 4096);
    const held: Frame[] = [];
    for (let seq = 1; seq <= 3; seq++) held.push(await client.request(new Uint8Array(100).fill(seq)));
    assert.equal(h.load(Q.requestWritePos), 3 * 192, "align64(32 + 100) = 192 bytes per frame");
    assert.equal(h.load(Q.payloadFree), 4096 - 576);
    (held[2] as Frame).release();
    (held[1] as Frame).release();
    assert.equal(h.load(Q.payloadFree), 4096 - 576, "out of order: nothing is credited yet");
    (held[0] as Frame).release();
    assert.equal(h.load(Q.payloadFree), 4096);
    // 2000 + 32 -> 2048 at 576; the next one does not fit the 1472-byte tail: marker + wrap.
    (await client.request(new Uint8Array(2000))).release();
    (await client.request(new Uint8Array(2000))).release();
    assert.equal(h.load(Q.requestWritePos), 2048);
    const ring = new DataView(seg, 256, 4096);
    assert.equal(ring.getUint32(2624, true), 0, "wrap marker at the old write position");
    assert.equal(h.load(Q.requestWrittenCount), 6, "5 requests + 1 marker");
    assert.equal(h.load(Q.requestReadCount), 6);
    assert.equal(h.load(Q.responseReadCount), 6);
    assert.equal(h.load(Q.responseWrittenCount), 5);
    assert.equal(h.load(Q.payloadFree), 4096);
    await assert.rejects(client.request(new Uint8Array(0)), InvalidFrameSizeError);
    await assert.rejects(client.request(new Uint8Array(4096 - 31)), FrameTooLargeError);
    await assert.rejects(client.request(new Uint8Array(2500)), (e: unknown) => e instanceof BufferFullError && /stall/.test(e.message));
  } finally {
    await client.close();
    await server.close();
  }
  noLeftovers(channel);
});

test("in-place: shorter responses, async handlers, handler errors reach the client as HandlerError and serving goes on", async () => {
  const channel = uniqueName("p3");
  const errors: Error[] = [];
  const server = await InPlaceServer.create(
    channel,
    async (req) => {
      const op = req.data[0];
      if (op === 1) return 3;
      if (op === 2) throw new RangeError("bad frame");
      if (op === 3) return 1_000_000;
      await new Promise((r) => setTimeout(r, 5));
      req.data.reverse();
      return undefined;
    },
    { payloadSize: 8192, onError: (e) => errors.push(e) },
  );
  const client = await InPlaceClient.connect(channel);
  try {
    const short = await client.request(new Uint8Array([1, 2, 3, 4, 5]));
    assert.deepEqual([...short.data], [1, 2, 3]);
    short.release();
    const failed = await client.request(new Uint8Array(100).fill(2)).catch((e: unknown) => e);
    assert.ok(failed instanceof HandlerError, String(failed));
    assert.equal(failed.code, "ERR_PLEXUS_ZB_HANDLER_FAILED");
    assert.equal(failed.sequence, 2);
    assert.match(failed.message, /RangeError: bad frame/);
    const tiny = await client.request(new Uint8Array([2, 0])).catch((e: unknown) => e);
    assert.ok(tiny instanceof HandlerError && /: Ra$/.test(tiny.message), "the message is cut to the request's size");
    const op3 = new Uint8Array(200);
    op3[0] = 3;
    const invalid = await client.request(op3).catch((e: unknown) => e);
    assert.ok(invalid instanceof HandlerError && /expected nothing or a length/.test(invalid.message), String(invalid));
    const many = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.request(new Uint8Array([9, i, 7])).then((r) => {
          const out = [r.sequence, ...r.data];
          r.release();
          return out;
        }),
      ),
    );
    assert.deepEqual(many, Array.from({ length: 30 }, (_, i) => [5 + i, 7, i, 9]));
    assert.equal(errors.length, 3, "the failures were reported on the server too");
  } finally {
    await client.close();
    await server.close();
  }
  noLeftovers(channel);
});

test("in-place: one client at a time; a client that closes is replaced by a new session starting at 1; metadata reaches onInit", async () => {
  const channel = uniqueName("p4");
  const inits: (string | null)[] = [];
  const server = await InPlaceServer.create(channel, (req) => req.data.length - 1, {
    payloadSize: 4096,
    onInit: (m) => inits.push(m === null ? null : Buffer.from(m).toString()),
  });
  try {
    const c1 = await InPlaceClient.connect(channel, { metadata: Buffer.from("hello") });
    await assert.rejects(InPlaceClient.connect(channel, { timeout: 300 }), WriterAlreadyConnectedError);
    for (let i = 1; i <= 30; i++) (await c1.request(new Uint8Array(300))).release();
    const held = await c1.request(new Uint8Array(10)); // left unreleased on purpose
    assert.equal(held.sequence, 31);
    await c1.close();
    await assert.rejects(c1.request(new Uint8Array(1)), ClosedError);
    const c2 = await InPlaceClient.connect(channel, { timeout: 2000 });
    const h = new Header(native().segmentOpen(`/${channel}_request`), OIEB_V2_SIZE);
    assert.equal(h.load(Q.payloadFree), 4096, "the server rewound the ring for the new session");
    const r = await c2.request(new Uint8Array(50));
    assert.deepEqual([r.sequence, r.data.length], [1, 49]);
    r.release();
    assert.deepEqual(inits, ["hello", "hello"], "once per session");
    await c2.close();
  } finally {
    await server.close();
  }
  noLeftovers(channel);
});

test("in-place: requests wait for space while responses are held; a closed server fails pending and new requests", async () => {
  const channel = uniqueName("p5");
  let release: (() => void) | undefined;
  const gate = new Promise<void>((r) => (release = r));
  const server = await InPlaceServer.create(channel, async (req) => {
    if (req.data[0] === 5) await gate;
  }, { payloadSize: 4096, drainTimeout: 0 });
  const client = await InPlaceClient.connect(channel, { timeout: 2000 });
  const a = await client.request(new Uint8Array(2000)); // 2048 bytes, held
  let done = false;
  const b = client.request(new Uint8Array(2000).fill(1), { timeout: 5000 }).then((r) => ((done = true), r));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, true, "the second request fits next to the first");
  const c = client.request(new Uint8Array(100), { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  a.release();
  (await b).release();
  (await c).release();
  const stuck = client.request(new Uint8Array([5]), { timeout: 10_000 }).catch((e: unknown) => e);
  await new Promise((r) => setTimeout(r, 20));
  await server.close(); // the handler is still waiting on the gate
  release?.();
  const err = await stuck;
  assert.ok(err instanceof ReaderDeadError, String(err));
  await assert.rejects(client.request(new Uint8Array(1)), ReaderDeadError);
  await client.close();
  await assert.rejects(InPlaceClient.connect(channel, { timeout: 60 }), TimeoutError);
  noLeftovers(channel);
});

test("in-place: a stray request-ready count with no request behind it is ignored, not served", async () => {
  const channel = uniqueName("p9");
  const server = await InPlaceServer.create(channel, (req) => {
    for (let i = 0; i < req.data.length; i++) req.data[i] = (req.data[i] as number) ^ 0xff;
  }, { payloadSize: 1 << 16 });
  const client = await InPlaceClient.connect(channel);
  // What a late session doorbell leaves behind: one count on sem-w and nothing in the ring.
  const semW = native().semOpen(`/sem-w-${channel}_request`, false, 0, 0);
  try {
    semW.post();
    await new Promise((r) => setTimeout(r, 50)); // the server wakes on it
    for (let seq = 1; seq <= 20; seq++) {
      const res = await client.request(pattern(seq, 500), { timeout: 5000 });
      assert.equal(res.sequence, seq);
      assert.ok(res.data.every((b, i) => b === ((pattern(seq, 500)[i] as number) ^ 0xff)));
      res.release();
    }
  } finally {
    semW.close();
    await client.close();
    await server.close();
  }
  noLeftovers(channel);
});
