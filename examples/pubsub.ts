// Publish/subscribe between two processes: the parent publishes "camera frames", a child
// subscribes and checks them. No server to start: the first connect() embeds the GraphServer.
import { fork } from "node:child_process";
import { once } from "node:events";
import { connect } from "plexus";

interface Frame {
  ts: number;
  pixels: Uint8Array;
}

if (process.argv[2] !== "child") {
  await using node = await connect(); // finds the GraphServer, or starts one in this process
  await using pub = await node.publisher<Frame>("camera/frames");
  const child = fork(process.argv[1], ["child"]);
  await pub.waitForSubscribers(1, { timeout: 10_000 }); // the child subscribed
  for (let i = 0; i < 100; i++) await pub.publish({ ts: i, pixels: new Uint8Array(1 << 20).fill(i) });
  await once(child, "exit");
} else {
  await using node = await connect();
  await using sub = await node.subscriber<Frame>("camera/frames");
  let frames = 0;
  let views = 0;
  for await (const sample of sub) {
    const { ts, pixels } = sample.value; // pixels: a view into shared memory, no copy
    if (pixels[0] !== ts || pixels.length !== 1 << 20) throw new Error(`frame ${ts} is corrupt`);
    if (pixels.buffer instanceof SharedArrayBuffer) views++;
    if (++frames === 100) break;
  }
  console.log(`received ${frames} frames of 1 MiB, ${views} of them as views into shared memory`);
}
