import { test } from "node:test";
import assert from "node:assert/strict";
import { conformance, checkMessage, message } from "./conformance/suite.js";
import type { Sender } from "../src/index.js";
import { connectTcp, TcpSender } from "../src/transport/tcp.js";
import { testCerts } from "./helpers/tcp-certs.js";

const certs = testCerts();
const serverTls = { key: certs.serverKey, cert: certs.serverCert };

conformance("tcp+tls", {
  sender: async (opts) => TcpSender.create({ ...opts, tls: serverTls }),
  receiver: async (sender: Sender, opts) => connectTcp((sender as TcpSender).address, { ...opts, tls: { ca: certs.ca } }),
});

test("tcp+tls: the address says tls and a receiver that trusts the CA gets large messages intact", async () => {
  await using sender = await TcpSender.create({ tls: serverTls, capacity: 1 << 22 });
  assert.equal(sender.address.tls, true);
  await using rx = await connectTcp(sender.address, { tls: { ca: certs.ca } });
  const sizes = [1 << 20, 3, 200_000, 0, 65_536];
  const producing = (async () => {
    for (let seq = 1; seq <= sizes.length; seq++) await sender.send(message(seq, sizes[seq - 1]));
  })();
  for (let seq = 1; seq <= sizes.length; seq++) {
    const f = await rx.receive({ timeout: 10_000 });
    assert.ok(f);
    assert.equal(f.sequence, seq);
    assert.equal(f.bytes.byteOffset % 16, 0);
    checkMessage(f.bytes, seq, sizes[seq - 1]);
    f.release();
  }
  await producing;
});

test("tcp+tls: a receiver that does not trust the sender's CA is refused with AccessDeniedError", async () => {
  await using sender = await TcpSender.create({ tls: serverTls });
  await assert.rejects(connectTcp(sender.address, { tls: { ca: certs.otherCa } }), { code: "ERR_PLEXUS_ACCESS_DENIED" });
  await assert.rejects(connectTcp(sender.address), { code: "ERR_PLEXUS_ACCESS_DENIED" }, "Node's default trust store does not know the test CA");
  // ...and the certificate is checked against the name: "localhost" is in it, "plexus.invalid" is not.
  await using _byName = await connectTcp({ ...sender.address, host: "localhost" }, { tls: { ca: certs.ca } });
  assert.equal(sender.receivers, 1);
  await assert.rejects(connectTcp(sender.address, { tls: { ca: certs.ca, servername: "plexus.invalid" } }), { code: "ERR_PLEXUS_ACCESS_DENIED" });
  assert.equal(sender.receivers, 1);
});

test("tcp+tls: with requestCert the sender admits only receivers with a certificate from its CA", async () => {
  await using sender = await TcpSender.create({ tls: { ...serverTls, ca: certs.ca, requestCert: true } });
  await assert.rejects(connectTcp(sender.address, { tls: { ca: certs.ca }, connectTimeout: 5000 }), (e: { code?: string }) =>
    ["ERR_PLEXUS_ACCESS_DENIED", "ERR_PLEXUS_PEER_DEAD"].includes(e.code ?? ""),
  );
  assert.equal(sender.receivers, 0);
  await using rx = await connectTcp(sender.address, { tls: { ca: certs.ca, key: certs.clientKey, cert: certs.clientCert } });
  assert.equal(sender.receivers, 1);
  await sender.send(message(1, 100));
  const f = await rx.receive({ timeout: 5000 });
  assert.ok(f);
  checkMessage(f.bytes, 1, 100);
});

test("tcp+tls: bad certificate material is an InvalidArgumentError", async () => {
  await assert.rejects(TcpSender.create({ tls: { key: "not a key", cert: "not a cert" } }), { code: "ERR_PLEXUS_INVALID_ARGUMENT" });
});
