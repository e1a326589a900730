// The README's example: a process streams Float64Arrays to a child over shared memory.
import { fork } from "node:child_process";
import { ShmSender, connectShm } from "plexus";

if (process.argv[2] !== "child") {
  await using tx = ShmSender.create({ capacity: 4 << 20 }); // a 4 MiB ring in /dev/shm
  fork(process.argv[1], ["child", JSON.stringify(tx.address)]);
  while (tx.receivers === 0) await new Promise((r) => setTimeout(r, 1));
  for (let i = 0; i < 1000; i++) await tx.send(new Float64Array(1024).fill(i)); // one copy in
} else {
  const rx = await connectShm(JSON.parse(process.argv[3]));
  for await (const frame of rx) console.log(frame.sequence, frame.bytes.length); // views, no copy
}
