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
import { LEGACY_MAGIC, LEGACY_REFUSAL, ringAddress, RPC_SPEC, RPC_VERSION } from "../src/rpc/handshake.js";
import { readHeader, RPC_HEADER, RpcType, writeHeader } from "../src/rpc/wire.js";
import { frame as netFrame, frameHeader, NetType, PING_FRAME } from "../src/net/frame.js";
import { encodeHello, Status } from "../src/net/handshake.js";
import { QUEUE_SPEC } from "../src/queue/wire.js";
import { fixture } from "./helpers/child.js";
import { graph, readWelcomeFrame, rpcFrame, tcpHello as helloTcp, until } from "./helpers/rpc.js";

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

/** An shm HELLO whose body is `name`. */
function shmHello(name: string | Uint8Array): Buffer {
  return encodeHello(RPC_SPEC, 0, typeof name === "string" ? Buffer.from(name, "utf8") : name);
}

/** A version 1–3 hello ("PXRH", version, kind, u16 length, JSON body). */
function legacyHello(version: number, kind: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  const b = Buffer.alloc(8 + json.length);
  b.writeUInt32LE(LEGACY_MAGIC, 0);
  b[4] = version;
  b[5] = kind;
  b.writeUInt16LE(json.length, 6);
  json.copy(b, 8);
  return b;
}

/** The status and reason of a refusing WELCOME the server wrote (`back`: all it wrote). */
function refusalOf(back: Buffer): { status: number; reason: string } {
  assert.ok(back.length >= 32, `a WELCOME (got ${back.length} bytes)`);
  assert.equal(back[4], NetType.Welcome);
  assert.equal(back.length, 16 + back.readUInt32LE(0), "the WELCOME, then nothing");
  assert.equal(back.readUInt32LE(16), RPC_SPEC.magic);
  return { status: back.readUInt32LE(8), reason: back.subarray(32).toString() };
}

function message(type: number, id: number, body: Uint8Array = new Uint8Array(0), flags = 0): Uint8Array {
  const m = new Uint8Array(RPC_HEADER + body.length);
  writeHeader(m, 0, type as RpcType, flags, id);
  m.set(body, RPC_HEADER);
  return m;
}

test("tcp port: random, truncated, oversized and out-of-protocol bytes; honest clients are served throughout", async () => {
  await stillServes();
  const tcpHello = helloTcp(1000);
  const cases: [string, Buffer][] = [
    ["truncated hello", tcpHello.subarray(0, 5)],
    ["wrong magic", Buffer.alloc(16, 0x41)],
    ["shm hello on the tcp port", shmHello("/plexus-1-ab")],
    ["oversized frame length", Buffer.concat([tcpHello, frameHeader(0xffffffff, RpcType.Request)])],
    ["a header cut short", Buffer.concat([tcpHello, frameHeader(8, RpcType.Request).subarray(0, 9)])],
    ["junk frame", Buffer.concat([tcpHello, Buffer.alloc(40, 9)])],
    ["a response sent to the server", Buffer.concat([tcpHello, rpcFrame(RpcType.Response, 1)])],
    ["unknown type", Buffer.concat([tcpHello, rpcFrame(77, 1)])],
    ["an in-place answer on tcp", Buffer.concat([tcpHello, rpcFrame(RpcType.InPlace, 1, new Uint8Array(4))])],
    ["unknown flags", Buffer.concat([tcpHello, rpcFrame(RpcType.Request, 1, new Uint8Array(4), 2)])],
    ["non-zero reserved bytes", Buffer.concat([tcpHello, Buffer.from(rpcFrame(RpcType.Request, 1).fill(1, 6, 7))])],
    ["a PING with a body", Buffer.concat([tcpHello, netFrame(NetType.Ping, 0, 0, 0, new Uint8Array(4))])],
    ["a PING with flags", Buffer.concat([tcpHello, netFrame(NetType.Ping, 1, 0, 0, new Uint8Array(0))])],
    ["a second HELLO", Buffer.concat([tcpHello, tcpHello])],
    ["truncated frame", Buffer.concat([tcpHello, rpcFrame(RpcType.Request, 1, new Uint8Array(100)).subarray(0, 50)])],
  ];
  for (const [name, bytes] of cases) {
    await throwAt(tcp, bytes);
    await stillServes().catch((e: unknown) => assert.fail(`${name}: ${String(e)}`));
  }
  assert.equal(RPC_VERSION, 4);
  // A client of versions 1–3 (their own "PXRH" hello) gets their own refusal naming version 4:
  // it reports a version mismatch, it does not hang.
  for (const version of [1, 2, 3]) {
    const refused = await throwAt(tcp, legacyHello(version, 2, { heartbeat: 1000 }), false);
    assert.deepEqual([...refused], [...LEGACY_REFUSAL], `version ${version}`);
  }
  // A HELLO of this format for versions the server does not speak: refused with status Version.
  for (const [version, minVersion] of [
    [3, 1],
    [RPC_VERSION + 3, RPC_VERSION + 1],
  ]) {
    const other = Buffer.from(tcpHello);
    other.writeUInt16LE(version, 20);
    other.writeUInt16LE(minVersion, 22);
    const { status, reason } = refusalOf(await throwAt(tcp, other, false));
    assert.equal(status, Status.Version);
    assert.match(reason, new RegExp(`versions ${RPC_VERSION}..${RPC_VERSION}.*${minVersion}..${version}`));
  }
  // Another Plexus protocol's HELLO: WrongProtocol.
  {
    const { status, reason } = refusalOf(await throwAt(tcp, encodeHello(QUEUE_SPEC, 1000, new Uint8Array(32)), false));
    assert.equal(status, Status.WrongProtocol);
    assert.match(reason, /request\/response, not the queue protocol/);
  }
  // A tcp HELLO must announce a heartbeat, and has no body.
  for (const bad of [helloTcp(0), encodeHello(RPC_SPEC, 1000, Buffer.from("x"))]) {
    const { status, reason } = refusalOf(await throwAt(tcp, bad, false));
    assert.equal(status, Status.Malformed);
    assert.match(reason, /heartbeat|no body/);
  }
  // A connection that never says hello is dropped after the handshake timeout.
  await throwAt(tcp, new Uint8Array(0), false);
  // A HELLO for versions 4..6 is welcomed with version 4; a well-formed request whose body is
  // not a value: an error answer for that request, and the connection serves on.
  const s = netConnect(tcp);
  s.on("error", () => {});
  await once(s, "connect");
  const wider = Buffer.from(tcpHello);
  wider.writeUInt16LE(RPC_VERSION + 2, 20);
  s.write(wider);
  const welcome = await readWelcomeFrame(s);
  assert.equal(welcome.header.a, Status.Ok);
  assert.equal(welcome.payload.readUInt16LE(4), RPC_VERSION, "the version chosen");
  assert.equal(welcome.payload.readUInt32LE(12), 1000, "the server's heartbeat (the fixture's default)");
  // PINGs count only as signs of life: no answer, the connection serves on.
  s.write(Buffer.concat([PING_FRAME, PING_FRAME]));
  s.write(rpcFrame(RpcType.Request, 42, new Uint8Array(32).fill(1)));
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  s.resume();
  await until(() => Buffer.concat(got).length >= RPC_HEADER);
  const reply = Buffer.concat(got);
  const h = readHeader(reply);
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
    ["truncated hello", shmHello("/plexus-1-ab").subarray(0, 10)],
    ["tcp hello on the shm socket", helloTcp(1000)],
    ["not a plexus ring", shmHello("/etc-passwd")],
    ["a ring name with more after it", shmHello("/plexus-1-ab\0x")],
    ["a ring that does not exist", shmHello("/plexus-999999-abcdef")],
    ["body that is not UTF-8", shmHello(Uint8Array.of(0xff, 0xfe, 0x2f))],
    ["a version 3 hello", legacyHello(3, 1, { name: "/plexus-1-ab", socket: "\0plexus-1-ab" })],
    ["another protocol's hello", encodeHello(QUEUE_SPEC, 0, new Uint8Array(32))],
  ];
  for (const [name, bytes] of cases) {
    const back = await throwAt({ path: shmSocket }, bytes, false);
    if (name === "a version 3 hello") assert.deepEqual([...back], [...LEGACY_REFUSAL], name);
    else if (back.length > 0) assert.notEqual(refusalOf(back).status, Status.Ok, name);
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
  control.write(shmHello(tx.address.name));
  const answer = await readWelcomeFrame(control);
  assert.equal(answer.header.a, Status.Ok);
  const address = ringAddress(answer.payload.subarray(16));
  assert.ok(address !== undefined);
  const rx = await connectShm({ kind: "shm", ...address });
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
