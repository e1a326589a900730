// Two processes, one shared-memory ring each way: the parent streams 64 KiB messages to a
// child it forks, then measures round trips of 64-byte messages. Run: npm start
import { fork } from "node:child_process";
import { once } from "node:events";
import { connectShm, ShmSender, type ShmAddress } from "plexus";

const quick = process.argv.includes("--quick");

if (process.argv[2] === "child") {
  // The child: receive the stream, then echo each ping back on its own ring.
  const [to] = (await once(process, "message")) as [ShmAddress];
  const rx = await connectShm(to);
  await using back = ShmSender.create();
  process.send!(back.address);
  for await (const frame of rx) {
    if (frame.bytes.length <= 64) await back.send(frame.bytes); // a ping: echo it
  }
} else {
  await using tx = ShmSender.create({ capacity: 4 << 20 });
  const child = fork(new URL(import.meta.url).pathname, ["child"]);
  child.send(tx.address);
  const [back] = (await once(child, "message")) as [ShmAddress];
  await using rx = await connectShm(back);
  while (tx.receivers === 0) await new Promise((r) => setTimeout(r, 1));

  // Stream: one copy into shared memory per message, none on the way out.
  const block = new Uint8Array(64 * 1024).fill(42);
  const count = quick ? 2_000 : 50_000;
  let t0 = performance.now();
  for (let i = 0; i < count; i++) if (!tx.trySend(block)) await tx.send(block);
  const ms = performance.now() - t0;
  console.log(`stream: ${count} x 64 KiB in ${ms.toFixed(0)} ms = ${((count * block.length) / ms / 1e6).toFixed(2)} GB/s`);

  // Ping-pong: 64-byte round trips through both rings.
  const ping = new Uint8Array(64);
  const rounds = quick ? 500 : 20_000;
  const rtt: number[] = [];
  for (let i = 0; i < rounds; i++) {
    t0 = performance.now();
    await tx.send(ping);
    const pong = await rx.receive({ timeout: 5000 });
    rtt.push(performance.now() - t0);
    pong?.release();
  }
  rtt.sort((a, b) => a - b);
  const us = (q: number): string => (rtt[Math.floor(q * (rtt.length - 1))] * 1000).toFixed(1);
  console.log(`round trip (64 B): p50 ${us(0.5)} us, p99 ${us(0.99)} us over ${rounds} rounds`);
  await tx.close();
  await once(child, "exit");
}
