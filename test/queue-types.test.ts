/**
 * Typed queues: `queue.server<ToServer, ToClient>` and `queue.client<ToServer, ToClient>` take
 * the same type arguments (as rpc's `server<Req, Res>` / `client<Req, Res>` do): a client puts
 * `ToServer` values and gets `ToClient` messages, a server the other way round. The build
 * compiles this file, so every misuse marked `@ts-expect-error` below must be a type error
 * (and every other line must type-check); the test then runs the typed endpoints for real.
 * Without type arguments everything is `unknown`, as before.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { queue, type QueueClient, type QueueEndpoint, type QueueMessage, type QueueServer } from "../src/index.js";

interface Job {
  n: number;
  data: Float64Array;
}
interface Result {
  n: number;
  sum: number;
}

/** Type checks only (never called): what the compiler must accept and refuse. */
async function typeChecks(server: QueueServer<Job, Result>, client: QueueClient<Job, Result>, untyped: QueueClient, either: QueueEndpoint<Job, Result>): Promise<void> {
  await client.put({ n: 1, data: new Float64Array(1) });
  // @ts-expect-error a client puts ToServer values (a Job), not ToClient ones
  await client.put({ n: 1, sum: 2 });
  // @ts-expect-error not a Job at all
  await client.put("job");
  const r: QueueMessage<Result> = await client.get();
  const sum: number = r.value.sum;
  // @ts-expect-error a client gets ToClient values: a Result has no data
  void r.value.data;
  for await (const m of client) {
    const s: number = m.value.sum;
    void s;
  }

  await server.put({ n: 1, sum: 2 }, client.id);
  await server.put({ n: 1, sum: 2 }, { peers: [client.id], timeout: 100 });
  // @ts-expect-error a server puts ToClient values (a Result)
  await server.put({ n: 1, data: new Float64Array(1) }, client.id);
  const j = await server.get();
  const data: Float64Array = j.value.data;
  // @ts-expect-error a server gets ToServer values: a Job has no sum
  void j.value.sum;
  for await (const m of server) {
    const d: Float64Array = m.value.data;
    void d;
  }

  // no type arguments: unknown both ways, as before; get<T>() still casts for existing code
  await untyped.put(Symbol.for("anything") as unknown);
  const u = await untyped.get();
  // @ts-expect-error an untyped message's value is unknown
  const n: number = u.value;
  const cast: number = (await untyped.get<number>()).value;

  // either end of the same queue
  const m = await either.get();
  // @ts-expect-error on a QueueEndpoint<Job, Result>, get gives Job | Result
  const onlyJob: Job = m.value;
  void [sum, data, n, cast, onlyJob];
}

test("typed queues: a client puts ToServer and gets ToClient values, a server the other way round", async () => {
  assert.equal(typeof typeChecks, "function");
  await using server = await queue.server<Job, Result>({ url: "tcp://127.0.0.1:0" });
  await using client = await queue.client<Job, Result>({ url: server.url, mode: "reliable" });
  const put = client.put({ n: 3, data: new Float64Array([1, 2, 3]) });
  const job = await server.get({ timeout: 5000 });
  assert.equal(job.value.n, 3);
  assert.ok(job.value.data instanceof Float64Array);
  await server.put({ n: job.value.n, sum: job.value.data.reduce((a, b) => a + b, 0) }, job.peer);
  job.release();
  await put;
  const result = await client.get({ timeout: 5000 });
  assert.deepEqual(result.value, { n: 3, sum: 6 });
  result.release();
});
