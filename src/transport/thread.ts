/**
 * The `thread` transport: a ring in a plain SharedArrayBuffer shared between worker threads
 * of one process; wake-ups with `Atomics.waitAsync`/`Atomics.notify`; a MessagePort per
 * receiver tells each side when the other's thread is gone.
 * @module
 */
import { MessageChannel, type MessagePort, type Transferable } from "node:worker_threads";
import { AtomicsBell, AtomicsDoorbell } from "../ring/bell.js";
import { H_WRITER_WAKE, initRing, ringGeometry } from "../ring/layout.js";
import { RingReader } from "../ring/reader.js";
import { RingWriter } from "../ring/writer.js";
import { InvalidArgumentError, PeerDeadError } from "../errors.js";
import { RingReceiver, RingSender } from "./ring-endpoints.js";
import type { Receiver, ReceiverOptions, RingSenderOptions } from "./transport.js";

/** What a receiver in another thread needs; post it with the `transfer` list. */
export interface ThreadEndpoint {
  /** Transport tag. */
  readonly kind: "thread";
  /** The ring. */
  readonly buffer: SharedArrayBuffer;
  /** This receiver's own liveness channel to the sender. */
  readonly port: MessagePort;
}

/** Join message a receiver posts on its port. */
interface JoinMessage {
  slot: number;
  stateWord: number;
}

/** The sending end of a `thread` transport. */
export class ThreadSender extends RingSender {
  private readonly ports = new Set<MessagePort>();
  private readonly buffer: SharedArrayBuffer;

  private constructor(buffer: SharedArrayBuffer, writer: RingWriter) {
    super("thread", writer, () => {
      for (const p of this.ports) p.close();
      this.ports.clear();
    });
    this.buffer = buffer;
  }

  /** Creates a sender with its ring. */
  static create(opts: RingSenderOptions = {}): ThreadSender {
    const geo = ringGeometry({ capacity: opts.capacity, maxReaders: opts.maxReceivers });
    const buffer = new SharedArrayBuffer(geo.byteLength);
    initRing(buffer, geo, 0);
    const writer = new RingWriter(buffer, new AtomicsBell(new Int32Array(buffer), H_WRITER_WAKE), { timeout: opts.timeout });
    return new ThreadSender(buffer, writer);
  }

  /**
   * A fresh endpoint for one receiver (in this or another thread). Post `endpoint` to the
   * receiving thread with `transfer` as the transfer list.
   */
  endpoint(): { endpoint: ThreadEndpoint; transfer: Transferable[] } {
    const { port1, port2 } = new MessageChannel();
    let joined: JoinMessage | undefined;
    port1.on("message", (m: JoinMessage) => {
      joined = m;
    });
    port1.on("close", () => {
      this.ports.delete(port1);
      if (joined) this.writer.evict(joined.slot, joined.stateWord);
    });
    port1.unref();
    this.ports.add(port1);
    return { endpoint: { kind: "thread", buffer: this.buffer, port: port2 }, transfer: [port2] };
  }
}

/** Attaches a receiver to a {@link ThreadEndpoint} received from the sender's thread. */
export function connectThread(endpoint: ThreadEndpoint, opts: ReceiverOptions = {}): Receiver {
  if (endpoint?.kind !== "thread" || !(endpoint.buffer instanceof SharedArrayBuffer)) {
    throw new InvalidArgumentError("not a thread endpoint (use ThreadSender.endpoint())");
  }
  const { buffer, port } = endpoint;
  const reader = new RingReader(buffer, (w, i) => new AtomicsBell(w, i), new AtomicsDoorbell(new Int32Array(buffer), H_WRITER_WAKE), {
    policy: opts.backpressure,
    spinMicros: opts.spinMicros,
    timeout: opts.timeout,
  });
  const join: JoinMessage = { slot: reader.slot, stateWord: reader.stateWord };
  port.postMessage(join);
  let leaving = false;
  port.on("close", () => {
    if (!leaving && !reader.writerClosed) reader.markWriterDead(new PeerDeadError("the sending thread is gone"));
  });
  port.unref();
  return new RingReceiver("thread", reader, () => {
    leaving = true;
    port.close();
  });
}
