/**
 * Pub/sub across the bridge: local topics exported to NATS subjects, and subjects imported as
 * local publishers that stand for the remote graphs (docs/scale-out.md, *Topics*).
 * (Internal: not part of the public API.)
 * @module
 */
import { ClosedError, PlexusError, ProtocolError, SequenceError } from "../errors.js";
import { decode } from "../codec/index.js";
import type { Node } from "../node/index.js";
import type { Publisher } from "../pubsub/publisher.js";
import type { Subscriber } from "../pubsub/subscriber.js";
import type { Sample } from "../pubsub/sample.js";
import type { BackpressurePolicy } from "../transport/transport.js";
import type { BridgeContext } from "./context.js";
import { envelopes, Kind, label, readEnvelope, Reassembler, type Sender } from "./envelope.js";
import type { NatsMsg, NatsSubscription } from "./nats.js";
import { nameOfSubject, subjectOf, type NameFilter } from "./subjects.js";
import { natsError } from "./nats.js";
import type { TopicCounters } from "./types.js";

/** How topics are bridged (checked by the `Bridge`). */
export interface TopicSettings {
  /** Local topics sent to NATS. */
  readonly exports: NameFilter;
  /** Remote topics received from NATS. */
  readonly imports: NameFilter;
  /** The ring capacity of the publishers held for other graphs. */
  readonly capacity: number;
  /** The largest message (a whole frame, before chunking). */
  readonly maxMessage: number;
  /** Bytes held at most for incomplete chunked messages. */
  readonly maxPending: number;
  /** The policy of the bridge's own subscribers to exported topics. */
  readonly backpressure: BackpressurePolicy;
  /** Their queue depth. */
  readonly queue: number;
  /** Messages waiting in an import subscription at which NATS's client calls it slow. */
  readonly slow: number;
}


/** An exported topic: the bridge's subscriber on it. */
interface Exported {
  readonly sub: Subscriber<unknown>;
  readonly done: Promise<void>;
}

/** The pub/sub half of a bridge. */
export class TopicBridge {
  /** Counters since the bridge started. */
  readonly counters: TopicCounters = { sent: 0, sentBytes: 0, sentChunks: 0, received: 0, receivedBytes: 0, gaps: 0, duplicates: 0, looped: 0, malformed: 0, dropped: 0, standby: 0 };
  private readonly exported = new Map<string, Exported>();
  private readonly imported = new Map<string, Promise<Publisher<unknown>>>();
  private readonly lastSeq = new Map<string, number>();
  private readonly senders = new Map<string, Sender>();
  /** The topic of each subject received (null: not one to import), so a subject is parsed once. */
  private readonly subjects = new Map<string, string | null>();
  private readonly subscriptions: NatsSubscription[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly reassembler: Reassembler;
  private readonly origin: Uint8Array;
  private closed = false;

  /**
   * @param ctx - the bridge's NATS connection and names
   * @param node - the bridge's node in the local graph
   * @param settings - what is bridged and how
   * @param leads - true if this bridge is the one of its graph that sends `topic` (several bridges of one graph do not send a message twice)
   * @param receives - true if this bridge is the one of its graph that publishes what comes from NATS; the others follow the sequence numbers, ready to take over
   */
  constructor(
    private readonly ctx: BridgeContext,
    private readonly node: Node,
    private readonly settings: TopicSettings,
    private readonly leads: (topic: string) => boolean,
    private readonly receives: () => boolean,
  ) {
    this.reassembler = new Reassembler(settings.maxMessage, settings.maxPending);
    this.origin = label(ctx.origin, "a graph name");
  }

  /**
   * Subscribes to the imported subjects: one NATS subscription per import pattern. Every bridge
   * of a graph receives every message and follows each sender's sequence; one of them publishes
   * (so that order, gaps and duplicates are seen whole), the others are ready to take over.
   */
  start(): void {
    for (const pattern of this.settings.imports.allow) {
      const sub = this.ctx.nc.subscribe(pattern.subject(this.ctx.prefix, "t"), { slow: this.settings.slow });
      this.subscriptions.push(sub);
      this.loops.push(this.consume(sub));
    }
  }

  /** The topics exported now. */
  get exports(): string[] {
    return [...this.exported.keys()];
  }

  /** The remote publishers held now, as `{ origin, topic }`. */
  get imports(): { origin: string; topic: string }[] {
    return [...this.imported.keys()].map((k) => {
      const [origin, topic] = k.split("\u0000");
      return { origin, topic };
    });
  }

  /**
   * Exports exactly `topics` (local topics with publishers of this graph, that the export list
   * allows): a subscriber for each new one, gone ones closed.
   */
  async setExports(topics: ReadonlySet<string>): Promise<void> {
    for (const [topic, e] of this.exported) {
      if (!topics.has(topic)) {
        this.exported.delete(topic);
        await e.sub.close();
        await e.done;
      }
    }
    for (const topic of topics) {
      if (this.closed || this.exported.has(topic) || !this.settings.exports.passes(topic)) continue;
      const sub = await this.node.subscriber(topic, { localOnly: true, backpressure: this.settings.backpressure, queue: this.settings.queue });
      if (this.closed) {
        await sub.close();
        return;
      }
      this.exported.set(topic, { sub, done: this.send(topic, sub) });
    }
  }

  /** Sends what the bridge's subscriber on `topic` receives to NATS, until it closes. */
  private async send(topic: string, sub: Subscriber<unknown>): Promise<void> {
    const subject = subjectOf(this.ctx.prefix, "t", topic);
    const c = this.counters;
    const nc = this.ctx.nc;
    const one = (s: Sample<unknown>): void => {
      const missed = sub.takeMissed();
      if (missed > 0) c.dropped += missed;
      // Only the topic's own publishers: those upstream through edges are exported on their own topic.
      if (s.topic !== topic || !this.leads(topic)) return;
      let payloads: Uint8Array[];
      try {
        payloads = envelopes(Kind.Message, this.sender(s.publisher), s.sequence, s.value, nc.info?.max_payload ?? 1 << 20, this.settings.maxMessage);
      } catch (err) {
        c.dropped++;
        this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`cannot send a message of ${JSON.stringify(topic)}`, { cause: err }));
        return;
      }
      try {
        for (const p of payloads) {
          nc.publish(subject, p);
          c.sentBytes += p.length;
        }
      } catch (err) {
        c.dropped++;
        this.ctx.report(natsError(err, `sending a message of ${JSON.stringify(topic)} to NATS`));
        return;
      }
      c.sent++;
      c.sentChunks += payloads.length;
    };
    try {
      // Whatever is queued is sent in one go: NATS's client writes what was published within a
      // microtask as one socket write, so a batch costs one system call, not one per message.
      // While messages keep coming, the loop lets the event loop turn once between batches, so
      // that the link fills the queue meanwhile (a few µs added to the first message of a burst).
      let busy = false;
      for (;;) {
        let s: Sample<unknown> | null = busy ? sub.tryReceive() : null;
        if (s === null) {
          s = await sub.receive();
          if (s === null) return;
        }
        let n = 0;
        for (; s !== null; s = sub.tryReceive(), n++) {
          try {
            one(s);
          } finally {
            s.release();
          }
        }
        busy = n > 0;
        if (busy) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      if (err instanceof ClosedError) return;
      this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`the export of ${JSON.stringify(topic)} stopped`, { cause: err }));
    }
  }

  private sender(publisher: string): Sender {
    let s = this.senders.get(publisher);
    if (s === undefined) {
      s = { origin: this.origin, port: label(publisher, "a port id", true) };
      this.senders.set(publisher, s);
    }
    return s;
  }

  /**
   * The local publisher that stands for `topic` of the graph `origin` (made on first use):
   * local subscribers link to it as to any publisher, each with its own backpressure policy.
   */
  importPublisher(origin: string, topic: string): Promise<Publisher<unknown>> {
    const key = `${origin}\u0000${topic}`;
    let p = this.imported.get(key);
    if (p === undefined) {
      p = this.node.remotePublisher(topic, origin, { capacity: this.settings.capacity });
      this.imported.set(key, p);
      p.catch((err: unknown) => {
        if (this.imported.get(key) === p) this.imported.delete(key);
        this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`cannot publish ${JSON.stringify(topic)} of ${origin} here`, { cause: err }));
      });
    }
    return p;
  }

  /** Closes the publishers of `origin` whose topic is not in `keep` (all of them without `keep`). */
  async dropImports(origin: string, keep?: ReadonlySet<string>): Promise<void> {
    for (const [key, p] of [...this.imported]) {
      const [o, topic] = key.split("\u0000");
      if (o !== origin || keep?.has(topic)) continue;
      this.imported.delete(key);
      await p.then((pub) => pub.close({ linger: 0 })).catch(() => {});
    }
    if (keep === undefined) {
      for (const k of [...this.lastSeq.keys()]) if (k.startsWith(`${origin}\u0000`)) this.lastSeq.delete(k);
    }
  }

  /** Receives one import subscription's messages, one at a time, in order. */
  private async consume(sub: NatsSubscription): Promise<void> {
    for await (const m of sub) {
      if (this.closed) break;
      try {
        await this.receive(m);
      } catch (err) {
        this.ctx.report(err instanceof PlexusError ? err : new ProtocolError("a bridged message could not be delivered", { cause: err }));
      }
    }
  }

  /** One message from NATS: checked, reassembled, de-duplicated, then published here. */
  private async receive(m: NatsMsg): Promise<void> {
    const c = this.counters;
    c.receivedBytes += m.data.length;
    let topic = this.subjects.get(m.subject);
    if (topic === undefined) {
      const name = nameOfSubject(this.ctx.prefix, "t", m.subject);
      topic = name !== undefined && this.settings.imports.passes(name) ? name : null;
      if (this.subjects.size >= 4096) this.subjects.clear(); // names seen once (garbage) do not pile up
      this.subjects.set(m.subject, topic);
    }
    if (topic === null) {
      c.malformed++;
      throw new ProtocolError(`a message on ${JSON.stringify(m.subject)}, which names no importable topic; dropped`);
    }
    let frame: Uint8Array;
    let sequence: number;
    let origin: string;
    let key: string;
    try {
      const e = readEnvelope(m.data);
      if (e.kind !== Kind.Message) throw new ProtocolError(`a bridge message of kind ${e.kind} on the topic subject ${JSON.stringify(m.subject)}`);
      if (e.origin === this.ctx.origin) {
        c.looped++;
        return;
      }
      origin = e.origin;
      key = `${e.origin}\u0000${e.port}`;
      const whole = this.reassembler.add(e);
      if (whole === undefined) return;
      frame = whole.frame;
      sequence = whole.sequence;
    } catch (err) {
      c.malformed++;
      throw err;
    }
    const last = this.lastSeq.get(key);
    if (last !== undefined && sequence <= last) {
      c.duplicates++;
      return;
    }
    this.lastSeq.set(key, sequence);
    if (!this.receives()) {
      c.standby++;
      return;
    }
    let value: unknown;
    try {
      value = decode(frame);
    } catch (err) {
      c.malformed++;
      throw new ProtocolError(`a message of ${JSON.stringify(topic)} from ${origin} is not a Plexus frame; dropped`, { cause: err });
    }
    const pub = await this.importPublisher(origin, topic);
    try {
      await pub.publish(value);
    } catch (err) {
      c.dropped++;
      throw err;
    }
    c.received++;
    if (last !== undefined && sequence > last + 1) {
      const lost = sequence - last - 1;
      c.gaps += lost;
      // The expected sequence number and the one that came: what was lost in between is counted.
      throw new SequenceError(last + 1, sequence, { cause: `${lost} message(s) of ${JSON.stringify(topic)} from ${origin} never arrived` });
    }
  }

  /** Stops receiving and sending; closes the bridge's ports (the node closes with the bridge). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subscriptions) s.unsubscribe();
    await Promise.all([...this.exported.values()].map((e) => e.sub.close()));
    await Promise.all([...this.exported.values()].map((e) => e.done));
    this.exported.clear();
    await Promise.allSettled(this.loops);
    this.reassembler.clear();
  }
}
