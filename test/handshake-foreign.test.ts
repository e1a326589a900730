/**
 * A client pointed at a port where no Plexus server listens: an HTTP server, or a program that
 * writes something else. Every kind of client — `connect()` (the GraphServer), a queue client, a
 * tcp receiver, a request/response client — says so in the user's terms, as a `ProtocolError`
 * ("127.0.0.1:80 is not a Plexus GraphServer (it answered HTTP)"), not as a complaint about a
 * frame it thought it read.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo, type Server } from "node:net";
import { connect, connectTcp, GraphServer, ProtocolError, queue } from "../src/index.js";
import { GraphClient } from "../src/graph/client.js";
import { CONTROL_SPEC } from "../src/graph/protocol.js";
import { FRAME_HEADER } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, encodeWelcome, foreignAnswer, readHello, Status } from "../src/net/handshake.js";
import { QUEUE_SPEC } from "../src/queue/wire.js";
import { RPC_SPEC } from "../src/rpc/handshake.js";
import { TCP_SPEC } from "../src/transport/tcp-wire.js";

async function listening(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** Answers every request (here: the client's HELLO, which it cannot parse) as HTTP servers do. */
const http = createHttpServer((_req, res) => res.end("hello"));
/** Writes 16 bytes that are no Plexus frame as soon as a client connects, and keeps the connection open. */
const garbage = createServer((socket) => {
  socket.on("error", () => {});
  socket.write("garbage-garbage!");
});
const peers = { http: await listening(http), garbage: await listening(garbage) };
/** What each peer's answer is called in the message. */
const answered = { http: "it answered HTTP", garbage: "it answered 16 bytes that are not a Plexus handshake" };

/** The error `attempt` rejects with (it must reject). */
async function failure(attempt: () => Promise<unknown>): Promise<Error> {
  try {
    const handle = (await attempt()) as { close?: () => Promise<void> };
    await handle.close?.();
  } catch (err) {
    return err as Error;
  }
  assert.fail("the attempt succeeded");
}

for (const [peer, port] of Object.entries(peers) as [keyof typeof peers, number][]) {
  const where = `127.0.0.1:${port}`;
  const says = (server: string): RegExp => new RegExp(`^${where.replaceAll(".", "\\.")} is not a Plexus ${server.replaceAll("/", "\\/")} \\(${answered[peer]}\\)$`);

  test(`connect() to a port of ${peer === "http" ? "an HTTP server" : "another program"}: a ProtocolError saying it is not a GraphServer`, async () => {
    const err = await failure(() => connect({ address: where, embedded: false, reconnect: 0, timeout: 5000 }));
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(err.message, says("GraphServer"));
  });

  test(`a queue client to a port of ${peer === "http" ? "an HTTP server" : "another program"}: a ProtocolError saying it is not a queue server`, async () => {
    const err = await failure(() => queue.client({ url: `tcp://${where}`, connectTimeout: 5000 }));
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(err.message, says("queue server"));
  });

  test(`a tcp receiver to a port of ${peer === "http" ? "an HTTP server" : "another program"}: a ProtocolError saying it is not a tcp sender`, async () => {
    const err = await failure(() => connectTcp({ kind: "tcp", host: "127.0.0.1", port, tls: false }, { connectTimeout: 5000 }));
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(err.message, says("tcp sender"));
  });

  test(`a request/response client whose server's address is a port of ${peer === "http" ? "an HTTP server" : "another program"}: its warning says it is not a request/response server`, async () => {
    const graph = await GraphServer.start({ port: 0 });
    const address = `127.0.0.1:${graph.address.port}`;
    // A server registered with that port as its tcp endpoint, on another host (no shm link is tried).
    const liar = await GraphClient.connect({ address, embedded: false });
    const service = `foreign-${peer}`;
    await liar.request("server.add", { service, endpoints: { host: "elsewhere/0", pid: 1, threadId: 0, tcp: { host: "127.0.0.1", port, tls: false } } });
    const node = await connect({ address, embedded: false });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      await using client = await node.client(service, { transport: "tcp", connectTimeout: 5000 });
      assert.deepEqual(client.servers, []);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      const link = warnings.find((w) => (w as { code?: string }).code === "PLEXUS_LINK");
      assert.ok(link, `a PLEXUS_LINK warning; got ${warnings.map(String).join("; ")}`);
      assert.match(link.message, new RegExp(`ProtocolError: ${says("request/response server").source.slice(1, -1)}$`));
    } finally {
      process.off("warning", onWarning);
      await node.close();
      await liar.close();
      await graph.close();
    }
  });
}

test("foreignAnswer: every prefix of a real WELCOME of each protocol passes; HTTP and other bytes do not, judged from 4 bytes on", () => {
  for (const spec of [CONTROL_SPEC, QUEUE_SPEC, RPC_SPEC, TCP_SPEC]) {
    const hello = readHello(spec, encodeHello(spec, 1000).subarray(FRAME_HEADER));
    assert.ok(hello.ok);
    for (const welcome of [encodeWelcome(spec, hello.hello, 1000), encodeRefusal(spec, Status.Full, "full")]) {
      for (let n = 0; n <= welcome.length; n++) assert.equal(foreignAnswer(spec, "h:1", welcome.subarray(0, n)), undefined, `${spec.name}: the first ${n} bytes`);
    }
  }
  // Fewer than 4 bytes are not judged (an older handshake's first word is recognised first).
  assert.equal(foreignAnswer(RPC_SPEC, "h:1", Buffer.from("PXR")), undefined);
  assert.equal(foreignAnswer(RPC_SPEC, "h:1", Buffer.from("HTTP")), undefined, "an HTTP answer is told once its slash came");
  assert.match(String(foreignAnswer(RPC_SPEC, "h:1", Buffer.from("HTTP/1.1 400 Bad Request\r\n"))), /h:1 is not a Plexus request\/response server \(it answered HTTP\)/);
  assert.match(String(foreignAnswer(QUEUE_SPEC, "h:1", Buffer.from("SSH-2.0-OpenSSH_9.6\r\n"))), /h:1 is not a Plexus queue server \(it answered 21 bytes that are not a Plexus handshake\)/);
  // A WELCOME's header with another magic than a Plexus one.
  const header = encodeRefusal(TCP_SPEC, Status.Full, "");
  header.write("XYZ", FRAME_HEADER, "latin1");
  assert.ok(foreignAnswer(TCP_SPEC, "h:1", header) instanceof ProtocolError);
});
