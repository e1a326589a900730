// Two hosts on one machine: this process is host A (the GraphServer and a publisher, bound to a
// veth address), a child in its own network and UTS namespaces is host B. Only the two veth
// addresses (made by this test, removed after it) are ever used.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { connect, GraphServer } from "../src/index.js";
import { hostId } from "../src/graph/identity.js";
import { testCerts } from "./helpers/tcp-certs.js";
import { fixture } from "./helpers/child.js";

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

test("pubsub between two hosts: GraphServer and publisher over TLS with a token, subscriber on another host", async () => {
  const n = process.pid % 200;
  const ns = `plexus-b-${process.pid}`;
  const [dev, peer] = [`plxa${n}`, `plxb${n}`];
  const [a, b] = [`10.231.${n}.1`, `10.231.${n}.2`];
  ip("netns", "add", ns);
  try {
    ip("link", "add", dev, "type", "veth", "peer", "name", peer);
    ip("link", "set", peer, "netns", ns);
    ip("addr", "add", `${a}/30`, "dev", dev);
    ip("link", "set", dev, "up");
    ip("netns", "exec", ns, "ip", "addr", "add", `${b}/30`, "dev", peer);
    ip("netns", "exec", ns, "ip", "link", "set", peer, "up");

    const certs = testCerts();
    const token = "two-hosts-token";
    await using server = await GraphServer.start({ host: a, port: 0, tls: { key: certs.serverKey, cert: certs.serverCert }, token });
    const address = `${a}:${server.address.port}`;
    const tls = { ca: certs.ca, servername: "localhost" };
    await using node = await connect({ address, token, tls, embedded: false });
    await using pub = await node.publisher<{ seq: number; data: Float64Array }>("hosts/t", {
      tcp: { host: a, tls: { key: certs.serverKey, cert: certs.serverCert } },
    });

    const count = 200;
    const args = JSON.stringify({ address, token, ca: certs.ca, topic: "hosts/t", count });
    const script = new URL("./fixtures/remote-subscriber.js", import.meta.url).pathname;
    const child = fixture("remote-subscriber", null, {
      command: "ip",
      args: ["netns", "exec", ns, "unshare", "-u", "sh", "-c", 'hostname plexus-host-b && exec "$0" "$1" "$2"', process.execPath, script, args],
    });
    assert.equal(await child.line(30000), "ready");
    await pub.waitForSubscribers(1, { timeout: 10_000 });
    for (let seq = 1; seq <= count; seq++) await pub.publish({ seq, data: new Float64Array(16).fill(seq) });
    const result = JSON.parse(await child.line(30000)) as { count: number; errors: string[]; host: string };
    assert.deepEqual({ count: result.count, errors: result.errors }, { count, errors: [] });
    assert.notEqual(result.host, hostId(), "the subscriber really was another host");
    assert.equal(await child.exited, 0);
  } finally {
    try {
      ip("link", "del", dev);
    } catch {
      // gone with the namespace
    }
    ip("netns", "del", ns);
  }
});
