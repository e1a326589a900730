// Request/response on the net layer (version 4): a refusing WELCOME reaches the caller as the
// documented error class, an older server is a version mismatch (not a hang), the handshake
// frame reader's bounds, and a paused tcp channel's frames wait, in order, for its resume.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { AccessDeniedError, PeerDeadError, ProtocolError, ResourceExhaustedError, SystemError, TimeoutError } from "../src/errors.js";
import { testCerts } from "./helpers/tcp-certs.js";
import { readHandshakeFrame } from "../src/net/exchange.js";
import { frameHeader, NetType, PING_FRAME } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, Status } from "../src/net/handshake.js";
import { LEGACY_REFUSAL, openTcp, RpcStatus, RPC_SPEC, type OpenOptions } from "../src/rpc/handshake.js";
import { Heartbeats, TcpChannel } from "../src/rpc/tcp-channel.js";
import { get32, RpcType } from "../src/rpc/wire.js";
import { graph, rpcFrame } from "./helpers/rpc.js";

function openOptions(): OpenOptions {
  return { timeout: 2000, capacity: 1 << 16, maxMessage: 1 << 20, heartbeats: new Heartbeats(1000, 10000) };
}

/** A fake server on loopback that reads the client's first bytes, then writes `answer` and hangs up. */
async function fakeServer(answer: Buffer): Promise<{ port: number; server: NetServer }> {
  const server = createServer((s) => {
    s.on("error", () => {});
    s.once("data", () => {
      s.end(answer);
    });
  });
  server.listen({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, server };
}

test("a refusing WELCOME reaches the client as the documented error class, per status", async () => {
  const cases: [number, new (...args: never[]) => Error, RegExp][] = [
    [Status.Version, ProtocolError, /version mismatch/],
    [Status.Malformed, ProtocolError, /malformed.*bad ring/],
    [Status.Full, ResourceExhaustedError, /as many peers.*maxClients/],
    [Status.WrongProtocol, ProtocolError, /does not serve request\/response/],
    [RpcStatus.NoSharedMemory, SystemError, /no shared memory/],
    [99, ProtocolError, /status 99/],
  ];
  const reasons: Record<number, string> = { [Status.Malformed]: "bad ring", [Status.Full]: "maxClients", [RpcStatus.NoSharedMemory]: "ENOSPC" };
  for (const [status, cls, message] of cases) {
    const { port, server } = await fakeServer(encodeRefusal(RPC_SPEC, status, reasons[status] ?? ""));
    try {
      const err = await openTcp({ host: "127.0.0.1", port, tls: false }, openOptions()).then(
        () => assert.fail("opened"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof cls, `status ${status}: expected ${cls.name}, got ${String(err)}`);
      assert.match((err as Error).message, message);
    } finally {
      server.close();
    }
  }
});

test("a server of version 1..3 (its own refusal, 'PXRH') is a version mismatch at once, not a hang", async () => {
  // What a version 3 server answers a hello it cannot read: PXRH, version 3, kind 0xff, JSON.
  const json = Buffer.from(JSON.stringify({ code: "ERR_PLEXUS_PROTOCOL", message: "not a Plexus request/response handshake (bad magic)" }));
  const old = Buffer.concat([Buffer.from([0x50, 0x58, 0x52, 0x48, 3, 0xff, json.length & 0xff, json.length >> 8]), json]);
  const { port, server } = await fakeServer(old);
  try {
    const started = Date.now();
    await assert.rejects(openTcp({ host: "127.0.0.1", port, tls: false }, openOptions()), (e: unknown) => e instanceof ProtocolError && /version mismatch/.test(e.message));
    assert.ok(Date.now() - started < 1500, "before the handshake timeout");
  } finally {
    server.close();
  }
  // And what this version answers such a client: the old refusal, naming version 4.
  assert.deepEqual([...LEGACY_REFUSAL.subarray(0, 6)], [0x50, 0x58, 0x52, 0x48, 4, 0xff]);
});

test("a WELCOME without a heartbeat, or with a body, is a ProtocolError at the tcp client", async () => {
  for (const [heartbeat, body] of [
    [0, new Uint8Array(0)],
    [1000, Uint8Array.of(1)],
  ] as const) {
    const welcome = encodeRefusal(RPC_SPEC, Status.Ok, body);
    welcome.writeUInt32LE(heartbeat, 28);
    const { port, server } = await fakeServer(welcome);
    try {
      await assert.rejects(openTcp({ host: "127.0.0.1", port, tls: false }, openOptions()), (e: unknown) => e instanceof ProtocolError && /heartbeat|no body/.test(e.message));
    } finally {
      server.close();
    }
  }
});

/** Reads a HELLO with readHandshakeFrame from a stand-in socket fed `bytes`. */
function readFrom(bytes: Uint8Array[], opts: { timeout?: number; end?: boolean } = {}): Promise<unknown> {
  const socket = new PassThrough();
  for (const b of bytes) socket.write(b);
  if (opts.end === true) queueMicrotask(() => socket.destroy());
  return readHandshakeFrame(socket as unknown as Socket, { type: NetType.Hello, what: "the peer", timeout: opts.timeout ?? 2000 }).finally(() => socket.destroy());
}

test("readHandshakeFrame: one frame in pieces, with what followed it; bounded by type, size, time and the socket's end", async () => {
  const hello = encodeHello(RPC_SPEC, 1000);
  const after = rpcFrame(RpcType.Request, 1, Uint8Array.of(9));
  const got = (await readFrom([hello.subarray(0, 3), hello.subarray(3, 20), Buffer.concat([hello.subarray(20), after])])) as { header: { type: number; length: number }; payload: Buffer; rest: Buffer };
  assert.equal(got.header.type, NetType.Hello);
  assert.equal(got.payload.length, 16);
  assert.equal(get32(got.payload, 0), RPC_SPEC.magic);
  assert.deepEqual([...got.rest], [...after]);
  await assert.rejects(readFrom([PING_FRAME]), (e: unknown) => e instanceof ProtocolError && /not a HELLO/.test(e.message));
  await assert.rejects(readFrom([frameHeader(100_000, NetType.Hello)]), ProtocolError);
  await assert.rejects(readFrom([hello.subarray(0, 20)], { timeout: 50 }), TimeoutError);
  await assert.rejects(readFrom([hello.subarray(0, 20)], { end: true }), PeerDeadError);
});

test("a paused tcp channel delivers nothing; the frames it parsed wait, in order, for its resume", async () => {
  const socket = new Duplex({ read() {}, write(_c: Buffer, _e, done) { done(); } });
  const channel = new TcpChannel(socket as unknown as Socket, 1 << 20, Buffer.concat([rpcFrame(RpcType.Response, 1), PING_FRAME]), new Heartbeats(1000, 10000), 1000);
  try {
    const ids: number[] = [];
    channel.onMessage = (b, at, _end, frame) => {
      ids.push(get32(b, at + 8));
      frame.release();
      if (ids.length === 2) channel.pause();
    };
    channel.start(); // the bytes that came with the handshake
    assert.deepEqual(ids, [1]);
    socket.push(Buffer.concat([2, 3, 4].map((id) => rpcFrame(RpcType.Response, id, Uint8Array.of(id)))));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(ids, [1, 2], "paused after 2: 3 and 4 wait");
    assert.ok(socket.isPaused(), "the socket is paused meanwhile");
    socket.push(rpcFrame(RpcType.Response, 5));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(ids, [1, 2]);
    channel.resume();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(ids, [1, 2, 3, 4, 5], "in order");
    assert.ok(!channel.closed);
    socket.push(rpcFrame(RpcType.InPlace, 6, new Uint8Array(4)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(channel.closed, "an in-place answer on tcp ends the channel");
  } finally {
    socket.destroy();
  }
});

test("tcp: a client without the certificate a TLS server requires gets AccessDeniedError (the alert on its first read), not an unhandled 'error'", async () => {
  const certs = testCerts();
  const { node } = await graph();
  await using server = await node.server<number, number>("tls/needs-cert", (n) => n, {
    transport: "tcp",
    tcp: { host: "127.0.0.1", tls: { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, requestCert: true, rejectUnauthorized: true } },
  });
  const port = (await node.snapshot()).servers.find((s) => s.id === server.id)?.endpoints.tcp?.port;
  assert.ok(port);
  await assert.rejects(openTcp({ host: "127.0.0.1", port, tls: true }, { ...openOptions(), tls: { ca: certs.ca } }), AccessDeniedError);
  // With its certificate, the same server accepts it.
  const ch = await openTcp({ host: "127.0.0.1", port, tls: true }, { ...openOptions(), tls: { ca: certs.ca, key: certs.clientKey, cert: certs.clientCert } });
  await ch.close();
});
