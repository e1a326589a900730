// Request/response with no shared memory to be had: a client process whose /dev/shm is a full
// 64 KiB tmpfs (its own mount namespace) falls back to TCP, as pub/sub does, and gets every answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { fixture } from "./helpers/child.js";
import { graph } from "./helpers/rpc.js";

test("rpc: a client whose /dev/shm is full falls back to TCP with a PLEXUS_NO_SHM warning and gets every answer", async () => {
  const { node, address } = await graph();
  await using srv = await node.server<number, number>("noshm", (n) => n * 2);
  const script = fileURLToPath(new URL("./fixtures/rpc-noshm-client.js", import.meta.url));
  const args = JSON.stringify({ address, service: "noshm", count: 20 });
  const child = fixture("rpc-noshm-client", {}, {
    command: "unshare",
    args: ["-m", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs /dev/shm && exec "$0" "$1" "$2"', process.execPath, script, args],
  });
  const out = JSON.parse(await child.line(30_000)) as { answers: number[]; transports: string[]; warnings: string[] };
  assert.deepEqual(out.answers, Array.from({ length: 20 }, (_, i) => i * 2), `answers; stderr: ${child.stderr()}`);
  assert.deepEqual(out.transports, ["tcp"]);
  assert.ok(out.warnings.some((w) => w.startsWith("PLEXUS_NO_SHM")), out.warnings.join(" | "));
  assert.equal(srv.counters.requests, 20);
});
