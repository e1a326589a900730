import { test } from "node:test";
import assert from "node:assert/strict";
import { checkMessage, conformance, message } from "./conformance/suite.js";
import type { Sender } from "../src/index.js";
import { connectTcp, TcpSender } from "../src/transport/tcp.js";
import { isLoopback } from "../src/net/loopback.js";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { encodeHello } from "../src/net/handshake.js";
import { encodeHelloBody, TCP_SPEC } from "../src/transport/tcp-wire.js";
import { queue } from "../src/index.js";
import { raw } from "./helpers/raw.js";

conformance("tcp", {
  sender: async (opts) => TcpSender.create(opts),
  receiver: async (sender: Sender, opts) => connectTcp((sender as TcpSender).address, opts),
});

test("tcp: plain TCP is refused on non-loopback addresses unless allowInsecure (nothing is bound or sent)", async () => {
  for (const host of ["0.0.0.0", "::", "192.0.2.1", "example.com"]) {
    await assert.rejects(TcpSender.create({ host }), { code: "ERR_PLEXUS_ACCESS_DENIED" }, host);
  }
  for (const host of ["192.0.2.1", "2001:db8::1", "example.com"]) {
    await assert.rejects(connectTcp({ kind: "tcp", host, port: 9, tls: false }), { code: "ERR_PLEXUS_ACCESS_DENIED" }, host);
  }
  for (const host of ["127.0.0.1", "127.0.0.2", "::1", "localhost", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]) assert.equal(isLoopback(host), true, host);
  for (const host of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "fe80::1%lo", "localhost.example.com", ""]) assert.equal(isLoopback(host), false, host);
});

test("tcp: loopback over IPv6 and by name; allowInsecure on loopback changes nothing", async () => {
  for (const host of ["::1", "localhost"]) {
    await using sender = await TcpSender.create({ host, allowInsecure: true });
    assert.equal(sender.address.host, host);
    await using rx = await connectTcp(sender.address);
    await sender.send(message(1, 33));
    const f = await rx.receive({ timeout: 5000 });
    assert.ok(f);
    checkMessage(f.bytes, 1, 33);
  }
});

test("tcp: large messages cross arena boundaries intact, aligned, in order", async () => {
  await using sender = await TcpSender.create({ capacity: 8 << 20 });
  await using rx = await connectTcp(sender.address);
  const sizes = [1 << 20, 3, (1 << 20) + 5, 200_000, (4 << 20) - 16, 0, 70_000, 3 << 20];
  const rounds = 3;
  const producing = (async () => {
    for (let seq = 1; seq <= sizes.length * rounds; seq++) await sender.send(message(seq, sizes[(seq - 1) % sizes.length]));
  })();
  for (let seq = 1; seq <= sizes.length * rounds; seq++) {
    const f = await rx.receive({ timeout: 10_000 });
    assert.ok(f);
    assert.equal(f.sequence, seq);
    assert.equal(f.bytes.byteOffset % 16, 0);
    checkMessage(f.bytes, seq, sizes[(seq - 1) % sizes.length]);
    f.release();
  }
  await producing;
});

test("tcp: frames may be held and released out of order; credit follows releases", async () => {
  await using sender = await TcpSender.create({ capacity: 8192 });
  await using rx = await connectTcp(sender.address);
  let seq = 0;
  while (sender.trySend(message(seq + 1, 1000))) seq++;
  const held = [];
  for (let k = 1; k <= seq; k++) {
    const f = await rx.receive({ timeout: 5000 });
    assert.ok(f);
    held.push(f);
  }
  const pending = sender.send(message(seq + 1, 1000), { timeout: 10_000 });
  held.reverse();
  for (const f of held) f.release();
  await pending;
  for (const f of held) checkMessage(f.bytes, f.sequence, 1000); // still intact: nothing was overwritten while held
  const last = await rx.receive({ timeout: 5000 });
  assert.ok(last);
  checkMessage(last.bytes, seq + 1, 1000);
});

test("tcp: a drop-oldest receiver reading while the sender streams counts exactly what it missed", async () => {
  await using sender = await TcpSender.create({ capacity: 4096 });
  await using leaky = await connectTcp(sender.address, { backpressure: "drop-oldest" });
  await using steady = await connectTcp(sender.address);
  const n = 3000;
  const producing = (async () => {
    for (let seq = 1; seq <= n; seq++) await sender.send(message(seq, 100));
    await sender.close();
  })();
  const seen = new Set<number>();
  let missed = 0;
  let slow = 0;
  const reading = (async () => {
    for await (const f of leaky) {
      checkMessage(f.bytes, f.sequence, 100);
      seen.add(f.sequence);
      missed += leaky.takeMissed();
      if (++slow % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    missed += leaky.takeMissed();
  })();
  let count = 0;
  for await (const f of steady) {
    count++;
    assert.equal(f.sequence, count);
  }
  await Promise.all([producing, reading]);
  assert.equal(count, n);
  assert.ok(seen.has(n), "the newest message is never dropped");
  assert.equal(seen.size + missed, n);
});

test("tcp: maxReceivers, a receiver's maxMessage, and destroy()", async () => {
  const sender = await TcpSender.create({ capacity: 65536, maxReceivers: 2 });
  const a = await connectTcp(sender.address);
  const b = await connectTcp(sender.address);
  await assert.rejects(connectTcp(sender.address), { code: "ERR_PLEXUS_RESOURCE_EXHAUSTED" });
  await b.close();
  await assert.rejects(connectTcp(sender.address, { maxMessage: 1000 }), { code: "ERR_PLEXUS_FRAME_TOO_LARGE" });
  await sender.send(message(1, 10));
  const f = await a.receive({ timeout: 5000 });
  assert.ok(f);
  checkMessage(f.bytes, 1, 10);
  sender.destroy();
  assert.equal(sender.receivers, 0);
  await assert.rejects(a.receive({ timeout: 5000 }), { code: "ERR_PLEXUS_PEER_DEAD" });
  await a.close();
  await assert.rejects(sender.send(message(3, 1)), { code: "ERR_PLEXUS_CLOSED" });
});

test("tcp: bad options are InvalidArgumentError", async () => {
  await assert.rejects(TcpSender.create({ capacity: 10 }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await assert.rejects(TcpSender.create({ capacity: 4096, maxMessage: 4096 }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await assert.rejects(TcpSender.create({ port: 70000 }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await assert.rejects(TcpSender.create({ heartbeat: 0 }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await assert.rejects(connectTcp({ kind: "shm" } as never), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  await using sender = await TcpSender.create();
  assert.throws(() => sender.trySend("text" as never), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  for (const size of [10, 100_000]) {
    const l = await sender.loan(size);
    assert.equal(l.bytes.byteOffset % 16, 0, "loans are 16-byte aligned, like ring loans");
    l.abort();
  }
  const loan = await sender.loan(10);
  assert.throws(() => sender.trySend(new Uint8Array(1)), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  assert.throws(() => loan.commit(11), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
  loan.abort();
  assert.ok(sender.trySend(new Uint8Array(1)));
});

test("tcp: the port in use is a SystemError (EADDRINUSE)", async () => {
  await using a = await TcpSender.create();
  await assert.rejects(TcpSender.create({ port: a.address.port }), (e: { code?: string; errnoName?: string }) => e.code === "ERR_PLEXUS_SYSTEM" && e.errnoName === "EADDRINUSE");
});

test("tcp: reused large frames are never overwritten while a receiver may still get them (fan-out, mixed policies)", async () => {
  await using sender = await TcpSender.create({ capacity: 1 << 20 });
  const prompt = await connectTcp(sender.address);
  const leaky = await connectTcp(sender.address, { backpressure: "drop-oldest" });
  const holder = await connectTcp(sender.address);
  const n = 120;
  const size = (seq: number): number => 65_536 + ((seq * 7919) % 150_000);
  const producing = (async () => {
    for (let seq = 1; seq <= n; seq++) await sender.send(message(seq, size(seq)), { timeout: 20_000 });
    await sender.close();
  })();
  const consume = async (rx: typeof prompt, mode: "prompt" | "slow" | "hold"): Promise<number> => {
    let got = 0;
    const held = [];
    for (;;) {
      const f = await rx.receive({ timeout: 20_000 });
      if (f === null) break;
      checkMessage(f.bytes, f.sequence, size(f.sequence));
      got++;
      if (mode === "hold") {
        held.push(f);
        if (held.length === 3) {
          for (const h of held.splice(0)) {
            checkMessage(h.bytes, h.sequence, size(h.sequence)); // still intact after later frames arrived
            h.release();
          }
        }
      } else {
        if (mode === "slow") await new Promise((r) => setTimeout(r, 2));
        f.release();
      }
    }
    for (const h of held) h.release();
    await rx.close();
    return got;
  };
  const [a, b, c] = await Promise.all([consume(prompt, "prompt"), consume(leaky, "slow"), consume(holder, "hold")]);
  await producing;
  assert.equal(a, n);
  assert.equal(c, n);
  assert.ok(b >= 1 && b <= n);
});

/** The frame types in `b` after its first `skip` bytes (16-byte frames without payload). */
function typesAfter(b: Buffer, skip: number): number[] {
  const out: number[] = [];
  for (let at = skip; at + 16 <= b.length; at += 16 + b.readUInt32LE(at)) out.push(b[at + 4]);
  return out;
}

test("tcp: an idle connection stays up for several peer timeouts on heartbeats (PINGs both ways), then delivers", async () => {
  await using sender = await TcpSender.create({ heartbeat: 30, peerTimeout: 150 });
  await using rx = await connectTcp(sender.address, { heartbeat: 30, peerTimeout: 150 });
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(sender.receivers, 1, "the sender kept the idle receiver");
  await sender.send(message(1, 40));
  const f = await rx.receive({ timeout: 5000 });
  assert.ok(f);
  checkMessage(f.bytes, 1, 40);
  f.release();
});

test("tcp: the sender's heartbeat is the net PING (0x82); a receiver silent after its HELLO is cut off after peerTimeout", async () => {
  await using sender = await TcpSender.create({ heartbeat: 20, peerTimeout: 200 });
  const c = raw(sender.address.port);
  c.sock.write(encodeHello(TCP_SPEC, 20, encodeHelloBody({ policy: 0, pid: 1 })));
  await c.closed;
  const types = typesAfter(c.bytes(), 48);
  assert.ok(types.length >= 2, `heartbeats before the cut: ${types.join(",")}`);
  assert.ok(
    types.every((t) => t === 0x82),
    `only PINGs: ${types.join(",")}`,
  );
  assert.equal(sender.receivers, 0);
});

test("tcp: an idle receiver's heartbeat is the net PING (0x82)", async () => {
  const got: Buffer[] = [];
  const server = createServer((s) => {
    s.on("error", () => {});
    s.once("data", () => {
      const w = Buffer.alloc(48);
      w.writeUInt32LE(32, 0);
      w[4] = 0x81;
      w.writeUInt32LE(0x54584c50, 16);
      w.writeUInt16LE(2, 20);
      w.writeUInt16LE(2, 22);
      w.writeUInt32LE(10_000, 28);
      w.writeUInt32LE(65536, 32);
      w.writeUInt32LE(1024, 36);
      w.writeUInt32LE(1, 40);
      s.write(w);
      s.on("data", (d: Buffer) => got.push(d));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const rx = await connectTcp({ kind: "tcp", host: "127.0.0.1", port: (server.address() as AddressInfo).port, tls: false }, { heartbeat: 20 });
  await new Promise((r) => setTimeout(r, 200));
  await rx.close();
  server.close();
  const types = typesAfter(Buffer.concat(got), 0);
  assert.ok(types.filter((t) => t === 0x82).length >= 2, `heartbeats: ${types.join(",")}`);
  assert.deepEqual(
    types.filter((t) => t !== 0x82),
    [17],
    "then its BYE",
  );
});

test("tcp: a receiver that knocks on another protocol's port gets a ProtocolError naming it", async () => {
  await using server = await queue.server({ url: "tcp://127.0.0.1:0" });
  await assert.rejects(connectTcp({ kind: "tcp", host: "127.0.0.1", port: server.port, tls: false }, { connectTimeout: 5000 }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "ERR_PLEXUS_PROTOCOL");
    assert.match(e.message, /queue/);
    return true;
  });
});
