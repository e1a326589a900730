/**
 * Hostile bytes at a request/response server in another process: random, truncated, oversized
 * and out-of-protocol input on its TCP port, on its shm handshake socket, and as frames inside a
 * request ring. Each bad connection ends (or gets an error answer); the server never crashes
 * and keeps serving honest clients over both transports.
 */
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import fc from "fast-check";
import { connectShm, ShmSender, type Receiver, type ServerInfo } from "../src/index.js";
import { hello, HelloKind, readHello, RPC_VERSION } from "../src/rpc/handshake.js";
import { readHeader, RPC_HEADER, RpcType, writeHeader } from "../src/rpc/wire.js";
import { fixture } from "./helpers/child.js";
import { graph, until } from "./helpers/rpc.js";

const { node, address } = await graph();
const service = "fuzzed";
const child = fixture("rpc-server", { address, service, timeout: 300 });
assert.equal(await child.line(), "ready");
const info = (await node.snapshot()).servers.find((s) => s.service === service) as ServerInfo;
const tcp = info.endpoints.tcp as { host: string; port: number };
const shmSocket = (info.endpoints.shm as { socket: string }).socket;
const honest = {
  shm: await node.client<{ op: string; seq: number }, { seq: number; pid: number }>(service, { transport: "shm" }),
  tcp: await node.client<{ op: string; seq: number }, { seq: number; pid: number }>(service, { transport: "tcp" }),
};
await until(() => honest.shm.servers.length === 1 && honest.tcp.servers.length === 1);
let seq = 0;

/** Both honest clients are still answered by the same server process. */
async function stillServes(): Promise<void> {
  for (const c of [honest.shm, honest.tcp]) {
    const s = ++seq;
    const a = await c.request({ op: "echo", seq: s }, { timeout: 5000 });
    assert.equal(a.seq, s);
    assert.equal(a.pid, child.proc.pid);
  }
}

/** Connects to `target`, writes `bytes`, optionally ends, and waits until the server hangs up; returns what came back. */
async function throwAt(target: { path: string } | { host: string; port: number }, bytes: Uint8Array, end = true): Promise<Buffer> {
  const s: Socket = netConnect(target);
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.on("error", () => {});
  await once(s, "connect");
  if (bytes.length > 0) s.write(bytes);
  if (end) s.end();
  await once(s, "close");
  return Buffer.concat(got);
}

/** A length-prefixed tcp frame. */
function frame(message: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + message.length);
  b.writeUInt32LE(message.length, 0);
  b.set(message, 4);
  return b;
}

function message(type: number, id: number, body: Uint8Array = new Uint8Array(0), flags = 0): Uint8Array {
  const m = new Uint8Array(RPC_HEADER + body.length);
  writeHeader(m, 0, type as RpcType, flags, id);
  m.set(body, RPC_HEADER);
  return m;
}

test("tcp port: random, truncated, oversized and out-of-protocol bytes; honest clients are served throughout", async () => {
  await stillServes();
  const tcpHello = hello(HelloKind.Tcp, { heartbeat: 1000 });
  const cases: [string, Buffer][] = [
    ["truncated hello", tcpHello.subarray(0, 5)],
    ["wrong magic", Buffer.alloc(16, 0x41)],
    ["shm hello on the tcp port", hello(HelloKind.Shm, { name: "/plexus-1-ab", socket: "\0plexus-1-ab" })],
    ["oversized frame length", Buffer.concat([tcpHello, Buffer.from([0xff, 0xff, 0xff, 0xff])])],
    ["frame shorter than a header", Buffer.concat([tcpHello, frame(new Uint8Array(3))])],
    ["bad magic in a frame", Buffer.concat([tcpHello, frame(new Uint8Array(40).fill(9))])],
    ["a response sent to the server", Buffer.concat([tcpHello, frame(message(RpcType.Response, 1))])],
    ["unknown type", Buffer.concat([tcpHello, frame(message(77, 1))])],
    ["a PING with a body", Buffer.concat([tcpHello, frame(message(RpcType.Ping, 0, new Uint8Array(4)))])],
    ["a PING with flags", Buffer.concat([tcpHello, frame(message(RpcType.Ping, 0, undefined, 1))])],
    ["truncated frame", Buffer.concat([tcpHello, frame(message(RpcType.Request, 1, new Uint8Array(100))).subarray(0, 50)])],
  ];
  for (const [name, bytes] of cases) {
    await throwAt(tcp, bytes);
    await stillServes().catch((e: unknown) => assert.fail(`${name}: ${String(e)}`));
  }
  // A version the server does not speak is refused with a typed answer: 1 (before in-place
  // answers were pinned by the client: releases went to the server), 2 (tcp without heartbeats).
  assert.equal(RPC_VERSION, 3);
  for (const version of [1, 2, RPC_VERSION + 1]) {
    const other = Buffer.from(tcpHello);
    other[4] = version;
    const refused = await throwAt(tcp, other, false);
    assert.equal(refused.readUInt32LE(0), tcpHello.readUInt32LE(0));
    assert.equal(refused[5], HelloKind.Refused);
    assert.match(refused.subarray(8).toString(), new RegExp(`ERR_PLEXUS_PROTOCOL.*version ${version}`));
  }
  // A tcp hello of this version must announce a heartbeat (a whole, positive number of ms).
  for (const body of [undefined, {}, { heartbeat: 0 }, { heartbeat: -5 }, { heartbeat: 1.5 }, { heartbeat: "1000" }, { heartbeat: 2 ** 31 }]) {
    const refused = await throwAt(tcp, hello(HelloKind.Tcp, body), false);
    assert.equal(refused[5], HelloKind.Refused, JSON.stringify(body));
    assert.match(refused.subarray(8).toString(), /ERR_PLEXUS_PROTOCOL.*heartbeat/);
  }
  // A connection that never says hello is dropped after the handshake timeout.
  await throwAt(tcp, new Uint8Array(0), false);
  // A well-formed request whose body is not a value: an error answer for that request, and the connection serves on.
  const s = netConnect(tcp);
  s.on("error", () => {});
  await once(s, "connect");
  s.write(tcpHello);
  const answer = await readHello(s, 5000);
  assert.equal(answer.kind, HelloKind.Tcp);
  // PINGs (type 6, empty) count only as signs of life: no answer, the connection serves on.
  s.write(Buffer.concat([frame(message(RpcType.Ping, 0)), frame(message(RpcType.Ping, 0))]));
  s.write(frame(message(RpcType.Request, 42, new Uint8Array(32).fill(1))));
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.resume();
  await until(() => Buffer.concat(got).length >= 4 + RPC_HEADER);
  const reply = Buffer.concat(got);
  const h = readHeader(reply.subarray(4));
  assert.equal(h.type, RpcType.Error);
  assert.equal(h.id, 42);
  s.destroy();
  // Random bytes, with or without a valid hello in front.
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 300 }), async (withHello, junk) => {
      await throwAt(tcp, withHello ? Buffer.concat([tcpHello, junk]) : junk);
    }),
    { numRuns: 60 },
  );
  await stillServes();
});

test("shm handshake socket: junk, bad ring names and rings that do not exist; honest clients are served throughout", async () => {
  const cases: [string, Buffer][] = [
    ["junk", Buffer.alloc(64, 0x5a)],
    ["truncated hello", hello(HelloKind.Shm, { name: "/plexus-1-ab", socket: "\0plexus-1-ab" }).subarray(0, 10)],
    ["tcp hello on the shm socket", hello(HelloKind.Tcp)],
    ["not a plexus ring", hello(HelloKind.Shm, { name: "/etc-passwd", socket: "\0etc-passwd" })],
    ["socket not matching the ring", hello(HelloKind.Shm, { name: "/plexus-1-ab", socket: "\0elsewhere" })],
    ["a ring that does not exist", hello(HelloKind.Shm, { name: "/plexus-999999-abcdef", socket: "\0plexus-999999-abcdef" })],
    ["body that is not JSON", Buffer.concat([hello(HelloKind.Shm).subarray(0, 6), Buffer.from([3, 0]), Buffer.from("{{{")])],
  ];
  for (const [name, bytes] of cases) {
    const back = await throwAt({ path: shmSocket }, bytes, false);
    if (back.length > 0) assert.equal(back[5], HelloKind.Refused, name);
    await stillServes().catch((e: unknown) => assert.fail(`${name}: ${String(e)}`));
  }
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200 }), async (junk) => {
      await throwAt({ path: shmSocket }, junk);
    }),
    { numRuns: 40 },
  );
  await stillServes();
});

/** A hand-made shm connection: our request ring, the server's response ring. */
async function rawShm(): Promise<{ tx: ShmSender; rx: Receiver; control: Socket }> {
  const tx = ShmSender.create({ capacity: 65536, maxReceivers: 1 });
  const control = netConnect({ path: shmSocket });
  control.on("error", () => {});
  await once(control, "connect");
  control.write(hello(HelloKind.Shm, { name: tx.address.name, socket: tx.address.socket }));
  const answer = await readHello(control, 5000);
  assert.equal(answer.kind, HelloKind.Shm);
  const rx = await connectShm({ kind: "shm", ...(answer.body as { name: string; socket: string }) });
  await until(() => tx.receivers === 1);
  return { tx, rx, control };
}

/** A hand-made shm connection that `abuse` breaks: the server hangs up on it. */
async function hangsUp(abuse: (control: Socket, tx: ShmSender) => unknown): Promise<void> {
  const { tx, rx, control } = await rawShm();
  await abuse(control, tx);
  const end = await rx.receive({ timeout: 5000 }).then(
    (f) => f,
    (e: unknown) => e,
  );
  assert.ok(end === null || end instanceof Error, "the server closed this connection");
  control.destroy();
  await rx.close();
  await tx.close();
}

test("frames inside the request ring: random and truncated frames end that connection only; bad bodies get an error answer", async () => {
  // A request with a body that is not a value: answered with an error, the connection serves on.
  {
    const { tx, rx, control } = await rawShm();
    await tx.send(message(RpcType.Request, 7, new Uint8Array(24).fill(3)));
    const f = await rx.receive({ timeout: 5000 });
    assert.ok(f);
    const h = readHeader(f.bytes);
    assert.equal(h.type, RpcType.Error);
    assert.equal(h.id, 7);
    f.release();
    control.destroy();
    await rx.close();
    await tx.close();
  }
  // Bytes on the handshake socket after the handshake, or a message of the type version 1 used
  // for releases (5): a broken client, that connection ends.
  await hangsUp((control) => void control.write(randomBytes(4 * 1024 + 3)));
  await hangsUp((_control, tx) => tx.send(message(5, 1)));
  // Random and truncated frames: the server hangs up on that connection.
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 64 }), async (junk) => {
      if (junk.length >= 4 && new DataView(junk.buffer, junk.byteOffset).getUint32(0, true) === 0x31525850) return; // a real header by chance
      await hangsUp((_control, tx) => tx.send(junk));
    }),
    { numRuns: 25 },
  );
  await stillServes();
  child.proc.kill("SIGKILL");
  await child.exited;
  await honest.shm.close();
  await honest.tcp.close();
});
