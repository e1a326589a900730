// A job queue between two processes: the parent serves, a child puts jobs (reliable: each put
// resolves once the server's application released the job) and takes the results. Both ends
// name the same types: clients put `Job`s to the server, the server puts `Result`s to clients.
import { fork } from "node:child_process";
import { once } from "node:events";
import { queue } from "plexus";

interface Job {
  n: number;
  data: Float64Array; // arrives as a view of the received frame
}
interface Result {
  n: number;
  sum: number;
}

if (process.argv[2] !== "child") {
  await using server = await queue.server<Job, Result>({ url: "tcp://127.0.0.1:0" }); // port 0: any free port
  const child = fork(process.argv[1], ["child", server.url]);
  let done = 0;
  for await (const job of server) {
    const { n, data } = job.value; // a Job
    await server.put({ n, sum: data.reduce((a, b) => a + b, 0) }, job.peer); // a Result, to the client that asked
    if (++done === 10) break; // leaving the loop releases the job and closes the server
  }
  await once(child, "exit");
} else {
  await using client = await queue.client<Job, Result>({ url: process.argv[3], mode: "reliable" });
  for (let n = 0; n < 10; n++) await client.put({ n, data: new Float64Array(1000).fill(n) });
  for (let n = 0; n < 10; n++) {
    using result = await client.get(); // a QueueMessage<Result>
    console.log(`job ${result.value.n}: sum ${result.value.sum}`);
  }
}
