/**
 * path: where a pub/sub message's time goes. Each stage of the path a small object takes,
 * measured alone in one thread (no peer, no wake-up), as CPU time per message: the raw ring,
 * the encoding, the decoding, then the whole public API with each way of consuming (receive(),
 * for await; forEach is in the lat row, across processes). The lat row's pub/sub round trip is two of the last plus the ring's.
 * @module
 */
import { connect, GraphServer, type Node, type Publisher, type Subscriber } from "../../src/index.js";
import { ShmSender, connectShm } from "../../src/transport/shm.js";
import type { Receiver } from "../../src/transport/transport.js";
import { decodeFrame, prepare } from "../../src/pubsub/wire.js";
import { registerCase, type CaseContext, type CaseScope, type LatencySample, type Resource } from "../harness.js";
import { registerRow } from "../rows.js";
import { now, asError } from "../measure.js";

/** Operations timed together: one clock read per batch (a clock read costs about as much as a ring write). */
const BATCH = 64;
/** The one variant: what the lat row's pub/sub cases send. */
const VARIANT = "small object";
/** The baseline of the row. */
export const PATH_RING = "ring write + read (64 B)";

registerRow({
  id: "path",
  title: "path: CPU time per message of each stage of the pub/sub path, one thread",
  method:
    `Each case runs one stage in a loop in the suite's process, ${BATCH} operations per clock read; 'p50' is the median time per operation. ` +
    `The message is {seq, t, tag: "a small object"} (MessagePack, ~40 B). ring: trySend of 64 B into a shared-memory ring, tryReceive, release ` +
    "(the transport under pub/sub, without a wake-up). encode: the publisher's one encode per message and its write into ring memory. " +
    "decode: the subscriber's check and decode of that frame. publish + …: the public API end to end, publisher and subscriber in one thread " +
    "linked by a shared-memory ring (transport: 'shm'): publish(), then the sample taken by receive() or by a for-await loop, and released. " +
    "A cross-process round trip costs two of these plus two ring hand-overs. (A forEach callback is measured across processes, in the lat row: " +
    "in one thread its loop asks for the next sample before the publisher, in the same thread, can send it.)",
});

/** Times `op` in batches of {@link BATCH}: µs per operation, one value per batch. */
async function perOp(ctx: CaseContext, op: (i: number) => unknown): Promise<LatencySample> {
  const us = new Float64Array(ctx.count);
  let n = 0;
  let i = 0;
  const deadline = Math.max(ctx.deadline, now() + 2 * ctx.targetMs);
  while (n < ctx.count) {
    if (ctx.signal.aborted) throw asError(ctx.signal.reason);
    const t0 = now();
    for (let k = 0; k < BATCH; k++) {
      const r = op(i++);
      if (r instanceof Promise) await r;
    }
    const t1 = now();
    us[n++] = ((t1 - t0) * 1000) / BATCH;
    if (t1 > deadline) break;
  }
  return { kind: "latency", rttUs: us.subarray(0, n) };
}

/** The small object of the lat row. */
function message(seq: number): { seq: number; t: number; tag: string } {
  return { seq, t: 0, tag: "a small object" };
}

/** A shm ring with its sender and a receiver in this thread. */
interface RingPair extends Resource {
  sender: ShmSender;
  receiver: Receiver;
}

async function ringPair(scope: CaseScope): Promise<RingPair> {
  const sender = await ShmSender.create({ capacity: 1 << 20 });
  scope.defer(() => sender.close());
  const receiver = await connectShm(sender.address);
  scope.defer(() => receiver.close());
  return { sender, receiver, close: () => {} };
}

registerCase({
  row: "path",
  name: PATH_RING,
  variant: VARIANT,
  kind: "latency",
  method: "trySend(64 B) + tryReceive() + release(), one thread",
  async run(ctx) {
    const { sender, receiver } = await ctx.keep("ring", ringPair);
    const bytes = new Uint8Array(64);
    return perOp(ctx, () => {
      if (!sender.trySend(bytes)) throw new Error("ring full");
      const f = receiver.tryReceive();
      if (f === null) throw new Error("nothing received");
      f.release();
    });
  },
});

/** Ring memory to encode into and a frame to decode. */
const SCRATCH = new Uint8Array(new SharedArrayBuffer(4096), 64, 1024);

registerCase({
  row: "path",
  name: "encode",
  variant: VARIANT,
  kind: "latency",
  ratioTo: PATH_RING,
  method: "prepare(value, seq) + writeTo(shared memory): the publisher's encode",
  run: (ctx) => perOp(ctx, (i) => prepare(message(i), i).writeTo(SCRATCH)),
});

registerCase({
  row: "path",
  name: "decode",
  variant: VARIANT,
  kind: "latency",
  ratioTo: PATH_RING,
  method: "decodeFrame(frame in shared memory): the subscriber's check and decode",
  run(ctx) {
    const p = prepare(message(1), 1);
    p.writeTo(SCRATCH);
    const frame = SCRATCH.subarray(0, p.size);
    return perOp(ctx, () => decodeFrame(frame));
  },
});

/** A publisher and a subscriber in this thread, linked by a shm ring. */
interface Linked extends Resource {
  pub: Publisher<{ seq: number; t: number; tag: string }>;
  sub: Subscriber<{ seq: number; t: number; tag: string }>;
}

async function linked(scope: CaseScope): Promise<Linked> {
  const server = await GraphServer.start({ port: 0 });
  scope.defer(() => server.close());
  const node: Node = await connect({ address: `127.0.0.1:${server.address.port}`, embedded: false });
  scope.defer(() => node.close({ linger: 0 }));
  const pub = await node.publisher<{ seq: number; t: number; tag: string }>("bench/path");
  const sub = await node.subscriber<{ seq: number; t: number; tag: string }>("bench/path", { transport: "shm", queue: 4 });
  await pub.waitForSubscribers(1, { signal: scope.signal });
  while (sub.publishers.length === 0) await new Promise((r) => setTimeout(r, 2));
  return { pub, sub, close: () => {} };
}

registerCase({
  row: "path",
  name: "publish + receive()",
  variant: VARIANT,
  kind: "latency",
  ratioTo: PATH_RING,
  method: "await publish(value); (await sub.receive()).release()",
  async run(ctx) {
    const { pub, sub } = await ctx.keep("linked", linked);
    return perOp(ctx, async (i) => {
      await pub.publish(message(i));
      const s = await sub.receive();
      if (s === null) throw new Error("subscriber closed");
      s.release();
    });
  },
});

registerCase({
  row: "path",
  name: "publish + for await",
  variant: VARIANT,
  kind: "latency",
  ratioTo: PATH_RING,
  method: "await publish(value); the next turn of a for-await loop over the subscriber (releases the previous sample)",
  async run(ctx) {
    const { pub, sub } = await ctx.keep("linked", linked);
    const it = await ctx.keep("iterator", () => {
      const iterator = sub[Symbol.asyncIterator]();
      return Promise.resolve({ iterator, close: () => void iterator.return?.() });
    });
    return perOp(ctx, async (i) => {
      await pub.publish(message(i));
      const r = await it.iterator.next();
      if (r.done === true) throw new Error("subscriber closed");
    });
  },
});
