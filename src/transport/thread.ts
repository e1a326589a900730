/**
 * The `thread` transport: a ring in a plain SharedArrayBuffer shared between worker threads
 * of one process. Wake-ups use eventfds watched by each thread's event loop (a kernel wake-up
 * as cheap as the floor, cheaper than `Atomics.waitAsync` or `postMessage`); a MessagePort per
 * receiver tells each side when the other's thread is gone.
 * @module
 */
import { MessageChannel, type MessagePort, type Transferable } from "node:worker_threads";
import { EventfdBell, EventfdDoorbell } from "../ring/bell.js";
import { initRing, ringGeometry, WakeKind } from "../ring/layout.js";
import { RingReader } from "../ring/reader.js";
import { RingWriter } from "../ring/writer.js";
import { native } from "../native.js";
import { InvalidArgumentError, PeerDeadError } from "../errors.js";
import { RingReceiver, RingSender } from "./ring-endpoints.js";
import { receiverSettings, ringSenderSettings, type Receiver, type ReceiverOptions, type RingSenderOptions } from "./transport.js";

/** What a receiver in another thread needs; post it with the `transfer` list. */
export interface ThreadEndpoint {
  /** Transport tag. */
  readonly kind: "thread";
  /** The ring. */
  readonly buffer: SharedArrayBuffer;
  /** This receiver's own liveness channel to the sender. */
  readonly port: MessagePort;
  /** The id under which the sender knows this receiver's eventfd. */
  readonly wakeId: number;
  /** The receiver's eventfd (owned by the sender; the receiver watches a duplicate). */
  readonly wakeFd: number;
  /** The sender's eventfd (the receiver rings a duplicate after releasing). */
  readonly writerFd: number;
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
  private nextWakeId = 1;

  private constructor(
    buffer: SharedArrayBuffer,
    writer: RingWriter,
    private readonly bell: EventfdBell,
  ) {
    super("thread", writer, () => {
      for (const p of this.ports) p.close();
      this.ports.clear();
      this.bell.close();
    });
    this.buffer = buffer;
  }

  /** Creates a sender with its ring. */
  static create(opts: RingSenderOptions = {}): ThreadSender {
    const set = ringSenderSettings("ThreadSender.create", opts);
    const geo = ringGeometry({ capacity: set.capacity, maxReaders: set.maxReceivers });
    const buffer = new SharedArrayBuffer(geo.byteLength);
    initRing(buffer, geo, 0);
    const bell = new EventfdBell();
    const writer = new RingWriter(buffer, bell, { timeout: set.timeout });
    return new ThreadSender(buffer, writer, bell);
  }

  /**
   * A fresh endpoint for one receiver (in this or another thread of this process). Post
   * `endpoint` to the receiving thread with `transfer` as the transfer list.
   */
  endpoint(): { endpoint: ThreadEndpoint; transfer: Transferable[] } {
    if (this.writer.closed) throw new InvalidArgumentError("the sender is closed");
    const { port1, port2 } = new MessageChannel();
    const wakeId = this.nextWakeId++;
    const doorbell = new EventfdDoorbell(native().eventfdCreate());
    this.writer.registerLocalDoorbell(wakeId, doorbell);
    let joined: JoinMessage | undefined;
    port1.on("message", (m: JoinMessage) => {
      joined = m;
    });
    port1.on("close", () => {
      this.ports.delete(port1);
      if (joined) this.writer.evict(joined.slot, joined.stateWord);
      this.writer.registerLocalDoorbell(wakeId, undefined);
      doorbell.close();
    });
    port1.unref();
    this.ports.add(port1);
    const endpoint: ThreadEndpoint = { kind: "thread", buffer: this.buffer, port: port2, wakeId, wakeFd: doorbell.fd, writerFd: this.bell.fd };
    return { endpoint, transfer: [port2] };
  }
}

/** Attaches a receiver to a {@link ThreadEndpoint} received from the sender's thread. */
export function connectThread(endpoint: ThreadEndpoint, opts: ReceiverOptions = {}): Receiver {
  if (endpoint?.kind !== "thread" || !(endpoint.buffer instanceof SharedArrayBuffer)) {
    throw new InvalidArgumentError("not a thread endpoint (use ThreadSender.endpoint())");
  }
  const set = receiverSettings("connectThread", opts);
  const { buffer, port } = endpoint;
  const n = native();
  // Duplicates, so each side closes only its own descriptors. The sender marks the ring closed
  // before it closes its fds: if it is not closed after the dup, the dup is of the right file.
  const bell = new EventfdBell(n.dup(endpoint.wakeFd));
  const writerDoorbell = new EventfdDoorbell(n.dup(endpoint.writerFd));
  let reader: RingReader;
  try {
    reader = new RingReader(buffer, bell, writerDoorbell, {
      policy: set.backpressure,
      spinMicros: set.spinMicros,
      adaptiveSpin: set.adaptiveSpin,
      anticipate: set.anticipate,
      timeout: set.timeout,
      wakeKind: WakeKind.LocalEventfd,
      wakeId: endpoint.wakeId,
    });
  } catch (err) {
    bell.close();
    writerDoorbell.close();
    throw err;
  }
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
    bell.close();
    writerDoorbell.close();
  });
}
