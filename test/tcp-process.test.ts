import { test } from "node:test";
import assert from "node:assert/strict";
import { PeerDeadError } from "../src/index.js";
import { connectTcp, TcpSender, type TcpAddress } from "../src/transport/tcp.js";
import { checkMessage, message } from "./conformance/suite.js";
import { fixture } from "./helpers/child.js";
import { killedWriterNeverTears } from "./helpers/torn.js";
import { testCerts } from "./helpers/tcp-certs.js";

// Sizes that cross read and arena boundaries, exact multiples of 16, empty and tiny messages.
const SIZES = [1, 4000, 0, 16, 17, 30000, 777, 8192 - 16, 12345, 64];

async function fanOut(count: number, tls: boolean): Promise<void> {
  const certs = tls ? testCerts() : undefined;
  const writer = fixture("stream-writer", { transport: "tcp",
    readers: 3,
    count,
    sizes: SIZES,
    capacity: 65536,
    tls: certs && { key: certs.serverKey, cert: certs.serverCert },
  });
  const address = JSON.parse(await writer.line()) as TcpAddress;
  assert.equal(address.tls, tls);
  const readers = [0, 1, 2].map(() => fixture("stream-reader", { address, sizes: SIZES, tls: certs && { ca: certs.ca } }));
  for (const r of readers) assert.equal(await r.line(), "joined");
  for (const r of readers) {
    const result = JSON.parse(await r.line(60000)) as { count: number; errors: string[] };
    assert.deepEqual(result, { count, errors: [] });
    assert.equal(await r.exited, 0);
  }
  assert.equal(await writer.exited, 0, "the writer exits once every receiver has everything");
}

test("tcp: one writer process, three reader processes, thousands of messages", async () => {
  await fanOut(3000, false);
});

test("tcp+tls: one writer process, three reader processes", async () => {
  await fanOut(1000, true);
});

test("tcp: kill -9 of a reader that holds messages frees a blocked sender", async () => {
  await using sender = await TcpSender.create({ capacity: 16384, timeout: 20000 });
  const reader = fixture("stream-reader", { address: sender.address, sizes: [1000], hold: 3 });
  assert.equal(await reader.line(), "joined");
  let seq = 1;
  for (; seq <= 3; seq++) await sender.send(message(seq, 1000));
  assert.equal(await reader.line(), "holding");
  while (sender.trySend(message(seq, 1000))) seq++;
  const blocked = sender.send(message(seq, 1000));
  reader.proc.kill("SIGKILL");
  await blocked;
  assert.equal(sender.receivers, 0);
  assert.equal(await reader.exited, "SIGKILL");
});

test("tcp: kill -9 of the writer: the reader gets what arrived, then PeerDeadError", async () => {
  const sizes = [100, 5000];
  const writer = fixture("stream-writer", { transport: "tcp", readers: 1, count: 0, sizes, capacity: 65536, hang: true });
  const address = JSON.parse(await writer.line()) as TcpAddress;
  const rx = await connectTcp(address);
  const first = await rx.receive({ timeout: 10000 });
  assert.ok(first);
  first.release();
  writer.proc.kill("SIGKILL");
  await writer.exited;
  let seq = 1;
  let err: unknown;
  try {
    for (;;) {
      const g = await rx.receive({ timeout: 10000 });
      assert.ok(g, "the stream must not end quietly when the writer dies");
      seq++;
      assert.equal(g.sequence, seq);
      checkMessage(g.bytes, seq, sizes[(seq - 1) % 2]);
      g.release();
    }
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof PeerDeadError, `got ${String(err)}`);
  await rx.close();
});

test("tcp: a writer killed mid-stream never delivers a torn message (repeated)", () => killedWriterNeverTears("tcp", connectTcp));

test("tcp: a reader that stops answering (SIGSTOP) is dropped after the peer timeout; the sender goes on", async () => {
  const dropped: string[] = [];
  await using sender = await TcpSender.create({ capacity: 16384, timeout: 20000, heartbeat: 100, peerTimeout: 600, onPeerError: (e) => dropped.push(e.code) });
  const reader = fixture("stream-reader", { address: sender.address, sizes: [1000], hold: 1, heartbeat: 100 });
  assert.equal(await reader.line(), "joined");
  await sender.send(message(1, 1000));
  assert.equal(await reader.line(), "holding");
  reader.proc.kill("SIGSTOP");
  try {
    let seq = 2;
    while (sender.trySend(message(seq, 1000))) seq++;
    await sender.send(message(seq, 1000)); // blocked until the silent reader is dropped
    assert.equal(sender.receivers, 0);
    assert.deepEqual(dropped, ["ERR_PLEXUS_PEER_DEAD"]);
  } finally {
    reader.proc.kill("SIGKILL");
    await reader.exited;
  }
});

test("tcp: a writer that stops answering (SIGSTOP) is a PeerDeadError after the peer timeout", async () => {
  const writer = fixture("stream-writer", { transport: "tcp", readers: 1, count: 0, sizes: [64], capacity: 8192, hang: true, heartbeat: 100 });
  const address = JSON.parse(await writer.line()) as TcpAddress;
  const rx = await connectTcp(address, { peerTimeout: 600, heartbeat: 100 });
  try {
    const f = await rx.receive({ timeout: 10000 });
    assert.ok(f);
    f.release();
    writer.proc.kill("SIGSTOP");
    await assert.rejects(
      (async () => {
        for (;;) (await rx.receive({ timeout: 20000 }))?.release();
      })(),
      { code: "ERR_PLEXUS_PEER_DEAD" },
    );
  } finally {
    writer.proc.kill("SIGKILL");
    await writer.exited;
    await rx.close();
  }
});

test("tcp: connecting where nothing listens is a PeerDeadError", async () => {
  const sender = await TcpSender.create();
  const address = sender.address;
  await sender.close();
  await assert.rejects(connectTcp(address), { code: "ERR_PLEXUS_PEER_DEAD" });
});
