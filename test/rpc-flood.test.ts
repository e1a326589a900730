// Bounds of a request/response server. A client that floods requests and never reads its
// answers cannot make the server hold unbounded memory: past `maxConcurrent` (requests being
// handled + answers waiting to be written) the server stops reading that connection and keeps
// serving the others. Past `maxClients`, connections are refused with a typed error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as netConnect } from "node:net";
import type { ServerInfo } from "../src/index.js";
import { Status } from "../src/net/handshake.js";
import { RPC_HEADER, RpcType, valueBody } from "../src/rpc/wire.js";
import { graph, readWelcomeFrame, rpcFrame, tcpHello, until } from "./helpers/rpc.js";

/** `count` request frames (header + an encoded number), back to back. */
function requests(count: number): Buffer {
  const parts: Buffer[] = [];
  for (let id = 1; id <= count; id++) {
    const body = valueBody(id);
    const b = new Uint8Array(body.size);
    body.writeTo(b, 0);
    parts.push(rpcFrame(RpcType.Request, id, b, body.flags));
  }
  return Buffer.concat(parts);
}

test("rpc flood: a tcp client that never reads its 64 KiB answers stalls only itself", async () => {
  const { node } = await graph();
  let calls = 0;
  await using server = await node.server<number, Uint8Array>("flooded", () => {
    calls++;
    return new Uint8Array(64 * 1024);
  }, { transport: "tcp", maxConcurrent: 8 });
  await using honest = await node.client<number, Uint8Array>("flooded", { transport: "tcp" });
  await until(() => honest.servers.length === 1);
  const info = (await node.snapshot()).servers.find((s) => s.service === "flooded") as ServerInfo;
  const tcp = info.endpoints.tcp as { host: string; port: number };

  const flooder = netConnect(tcp);
  flooder.on("error", () => {});
  await once(flooder, "connect");
  flooder.write(tcpHello(1000)); // then never a PING: it still writes (requests) or the server is not reading it
  assert.equal((await readWelcomeFrame(flooder)).header.a, Status.Ok);
  flooder.pause(); // never reads an answer
  const count = 3000; // 3000 x 64 KiB = 192 MiB of answers if the server answered them all
  flooder.write(requests(count));
  // Let the server go as far as it will: the count stops moving once its reading is paused.
  let seen = -1;
  while (seen !== calls) {
    seen = calls;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(calls < count / 2, `the server stopped reading the flooder (handled ${calls} of ${count})`);
  assert.ok(calls > 0);
  // Everyone else is served meanwhile.
  for (let i = 0; i < 5; i++) assert.equal((await honest.request(i, { timeout: 5000 })).length, 64 * 1024);
  // Once the flooder reads, everything it asked for is answered.
  let received = 0;
  flooder.on("data", (d: Buffer) => (received += d.length));
  flooder.resume();
  await until(() => calls === count + 5, 20000);
  await until(() => received >= count * (RPC_HEADER + 64 * 1024), 20000);
  flooder.destroy();
  assert.equal((await honest.request(9, { timeout: 5000 })).length, 64 * 1024);
  assert.equal(server.inFlight, 0);
});

test("rpc maxClients: a connection past the limit is refused with a typed error; the others are served", async () => {
  const { node } = await graph();
  await using server = await node.server<number, number>("crowded", (n) => n + 1, { transport: "tcp", maxClients: 1 });
  await using first = await node.client<number, number>("crowded", { transport: "tcp" });
  await until(() => first.servers.length === 1);
  assert.equal(await first.request(1), 2);
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on("warning", onWarning);
  try {
    await using second = await node.client<number, number>("crowded", { transport: "tcp" });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(second.servers.length, 0, "the refused link is not used");
    await assert.rejects(second.request(1), { code: "ERR_PLEXUS_NO_SERVER" });
    assert.ok(warnings.some((m) => /ResourceExhaustedError: .*maxClients/.test(m)), `the refusal is reported as the server being full: ${warnings.join(" | ")}`);
  } finally {
    process.off("warning", onWarning);
  }
  assert.equal(await first.request(2), 3, "the first client is served on");
  assert.equal(server.connections, 1);
});
