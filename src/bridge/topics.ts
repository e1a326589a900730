/**
 * Pub/sub across the bridge: local topics exported to NATS subjects, and subjects imported as
 * local publishers that stand for the remote graphs (docs/scale-out.md, *Topics*).
 * (Internal: not part of the public API.)
 * @module
 */
import { BackpressureError, ClosedError, FrameTooLargeError, PeerDeadError, PlexusError, ProtocolError, ResourceExhaustedError, SequenceError } from "../errors.js";
import { decode, decodeAt, encodedSize, type FramePlan } from "../codec/index.js";
import { checkTopic } from "../graph/registry.js";
import type { Node } from "../node/index.js";
import type { Publisher } from "../pubsub/publisher.js";
import type { Subscriber } from "../pubsub/subscriber.js";
import type { Sample } from "../pubsub/sample.js";
import type { BackpressurePolicy } from "../transport/transport.js";
import type { BridgeContext } from "./context.js";
import { batchHeadBytes, batchItemBytes, EnvelopeArena, Kind, loneFrameAt, loneRawEnvelope, sendBatch, sendEnvelopes, label, readBatch, readEnvelope, Reassembler, senderNames, type BatchItem, type Sender } from "./envelope.js";
import type { NatsMsg, NatsSubscription } from "./nats.js";
import { nameOfSubject, subjectOf, type NameFilter } from "./subjects.js";
import { natsError } from "./nats.js";
import type { TopicCounters } from "./types.js";

/** Bytes an export sends to NATS before it waits for the server to have them all (a flush): what bounds the bridge's buffers. */
const FLUSH_BYTES = 8 << 20;
/**
 * Bytes of a batch at most (below the server's `max_payload`): larger batches save little more,
 * and hold their first message back longer.
 */
const MAX_BATCH_BYTES = 1 << 20;
/** Publishers held at most for one remote graph. */
const MAX_IMPORTS_PER_ORIGIN = 4096;
/** A remote publisher's sequence is forgotten after this long without a message (ms). */
const SEQUENCE_IDLE_MS = 10 * 60_000;

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
  /** Their queue depth, and the messages waiting at most per received topic. */
  readonly queue: number;
  /** Messages of one publisher that wait together are sent as one NATS message (a batch). */
  readonly batch: boolean;
}

/** What the bridge decides for its topics (several bridges of one graph do not send or publish a message twice). */
export interface TopicRoles {
  /** True if this bridge is the one of its graph that sends `topic` to NATS. */
  sends(topic: string): boolean;
  /** True if this bridge is the one of its graph that publishes `topic` of `origin` here; the others follow its sequence, ready to take over. */
  receives(origin: string, topic: string): boolean;
  /** False for a graph that said it left (its late messages are dropped, not given a publisher again). */
  accepts(origin: string): boolean;
  /**
   * Changes whenever an answer of {@link receives} may have changed, or {@link accepts} turned
   * false (it turns true again with time alone).
   */
  readonly version: number;
}

/** An exported topic: the bridge's subscriber on it. */
interface Exported {
  readonly sub: Subscriber<unknown>;
  readonly done: Promise<void>;
}

/** The sequence number last received from one publisher of another graph, and when (ms since the epoch). */
interface SequenceState {
  seq: number;
  at: number;
}

/**
 * What the last message on a subject went through, for the next one to skip it (see
 * `TopicBridge.fast`): its sender, the publisher that stands for it here, and the sender's
 * sequence, valid while the roles' `version` is.
 */
interface Route {
  readonly origin: string;
  readonly port: string;
  /** `origin` NUL `topic`: the key of the publisher and of its backlog. */
  readonly where: string;
  readonly publisher: Publisher<unknown>;
  /** The sender's entry of `lastSeq` (the same object). */
  readonly seq: SequenceState;
  readonly version: number;
  /** The sender's names as its envelopes carry them: the graph's name, then the port id. */
  readonly names: Uint8Array;
  /** The bytes of the graph's name in `names`. */
  readonly o: number;
}

/** The messages of one received topic waiting to be published here, in order. */
interface Backlog {
  chain: Promise<void>;
  /** Messages queued and not yet published. */
  waiting: number;
  /** The burst (see `TopicBridge.burst`) of the last messages queued. */
  burst: number;
  /** How many messages that burst queued. */
  inBurst: number;
  /** Messages dropped since the last report. */
  dropped: number;
}

/** The pub/sub half of a bridge. */
export class TopicBridge {
  private readonly c: TopicCounters = { sent: 0, sentBytes: 0, sentChunks: 0, received: 0, receivedBytes: 0, gaps: 0, duplicates: 0, looped: 0, malformed: 0, dropped: 0, standby: 0 };
  /** Drops of the exports' subscribers that closed. */
  private closedDrops = 0;
  private readonly exported = new Map<string, Exported>();
  private readonly imported = new Map<string, Promise<Publisher<unknown>>>();
  private readonly lastSeq = new Map<string, SequenceState>();
  /** By subject: see {@link fast}. Cleared whenever a sequence or a publisher it refers to goes. */
  private readonly routes = new Map<string, Route>();
  /**
   * Messages followed on standby per (graph, topic) since the election before last: counted as
   * possibly lost if this bridge takes over. Two elections' worth, because the bridge that
   * published may have stopped one election before it was seen to leave the graph.
   */
  private followed = new Map<string, number>();
  private followedBefore = new Map<string, number>();
  private readonly lastHeard = new Map<string, number>();
  private readonly backlogs = new Map<string, Backlog>();
  /**
   * The NATS messages the client hands over in one go form a burst: this counts them, advanced by
   * a microtask after the first of each. The NATS client (`@nats-io/transport-node`) calls the
   * subscriptions' callbacks synchronously for everything one socket read brought, and the
   * publishing here runs in microtasks, which all run before the next read: so messages of an
   * earlier burst still waiting are held back by their subscribers, and only they count against
   * `queue`. (A client that spread one read over several macrotasks would make bursts smaller,
   * never the bound looser.)
   */
  private burst = 0;
  private burstEnding = false;
  private readonly senders = new Map<string, Sender>();
  /** The topic of each subject received (null: not one to import), so a subject is parsed once. */
  private readonly subjects = new Map<string, string | null>();
  private readonly subscriptions: NatsSubscription[] = [];
  private readonly reassembler: Reassembler;
  /** The memory of the envelopes sent (every export's: they publish one at a time, on one connection). */
  private readonly arena: EnvelopeArena;
  private readonly origin: Uint8Array;
  private closed = false;

  /**
   * @param ctx - the bridge's NATS connection and names
   * @param node - the bridge's node in the local graph
   * @param settings - what is bridged and how
   * @param roles - who sends and who receives what
   */
  constructor(
    private readonly ctx: BridgeContext,
    private readonly node: Node,
    private readonly settings: TopicSettings,
    private readonly roles: TopicRoles,
  ) {
    this.reassembler = new Reassembler(settings.maxMessage, settings.maxPending);
    this.arena = new EnvelopeArena(() => ctx.nc.flush());
    this.origin = label(ctx.origin, "a graph name");
  }

  /**
   * Subscribes to the imported subjects (no message is delivered twice however the import
   * patterns overlap). Every bridge of a graph receives every message and follows each sender's
   * sequence; one of them publishes it, the others are ready to take over.
   */
  start(): void {
    for (const subject of this.settings.imports.subjects(this.ctx.prefix, "t")) {
      this.subscriptions.push(
        this.ctx.nc.subscribe(subject, {
          callback: (err, m) => {
            if (err === null) this.receive(m);
          },
        }),
      );
    }
  }

  /** Counters since the bridge started (`dropped` includes what the exports' subscribers dropped by their policy). */
  get counters(): TopicCounters {
    let drops = this.closedDrops;
    for (const e of this.exported.values()) drops += e.sub.counters.drops;
    return { ...this.c, dropped: this.c.dropped + drops };
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
        this.closedDrops += e.sub.counters.drops;
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

  /**
   * Sends what the bridge's subscriber on `topic` receives to NATS, until it closes. It takes
   * from the subscriber only while NATS takes it: not while the connection is down, and not more
   * than two {@link FLUSH_BYTES} ahead of what the server confirmed, so that the subscriber's own policy
   * (`drop-oldest`, `block`, `fail`) applies when NATS is slow, and nothing piles up here.
   */
  private async send(topic: string, sub: Subscriber<unknown>): Promise<void> {
    const subject = subjectOf(this.ctx.prefix, "t", topic);
    const c = this.c;
    const nc = this.ctx.nc;
    let unflushed = 0;
    /** The flush of the previous FLUSH_BYTES: at most two are in flight, so the pipe never runs dry while one completes. */
    let flushing: Promise<void> | undefined;
    const publish = (p: Uint8Array): void => {
      nc.publish(subject, p);
      c.sentBytes += p.length;
      unflushed += p.length;
    };
    /** Starts the next window: waits for the older of the two flushes in flight, then flushes what was sent. */
    const nextWindow = async (): Promise<void> => {
      unflushed = 0;
      if (flushing !== undefined) await flushing; // two windows ahead of the server: wait for the older
      flushing = nc.flush().catch(() => {}); // a lost connection: the loop's next turn waits for it
    };
    /** True while the taker (below) runs, in the call that delivered the sample: reports wait for a microtask, out of that call. */
    let taking = false;
    const report = (err: PlexusError): void => {
      if (taking) queueMicrotask(() => this.ctx.report(err));
      else this.ctx.report(err);
    };
    // Messages of one publisher that wait together go as one NATS message (a batch): what costs
    // most per message, in both NATS clients and the server, is then paid once for all of them.
    // A batch holds its samples (their frames stay in the ring) until it is sent, in this same
    // synchronous stretch.
    const held: Sample<unknown>[] = [];
    const plans: FramePlan[] = [];
    const sequences: number[] = [];
    let heldBytes = 0;
    const flushHeld = (): void => {
      if (held.length === 0) return;
      const from = this.sender((held[0] as Sample<unknown>).publisher);
      try {
        if (held.length === 1) {
          c.sentChunks += sendEnvelopes(Kind.Message, from, sequences[0] as number, plans[0] as FramePlan, maxPayload(), this.settings.maxMessage, publish, this.arena.take);
        } else {
          sendBatch(from, sequences, plans, publish, this.arena.take);
          c.sentChunks++;
        }
        c.sent += held.length;
      } catch (err) {
        c.dropped += held.length;
        report(natsError(err, `sending ${held.length === 1 ? "a message" : `${held.length} messages`} of ${JSON.stringify(topic)} to NATS`));
      } finally {
        for (const s of held) s.release();
        held.length = 0;
        plans.length = 0;
        sequences.length = 0;
        heldBytes = 0;
      }
    };
    const maxPayload = (): number => nc.info?.max_payload ?? 1 << 20;
    const one = (s: Sample<unknown>): void => {
      // Only the topic's own publishers: those upstream through edges are exported on their own topic.
      if (s.topic !== topic || !this.roles.sends(topic)) {
        s.release();
        return;
      }
      let plan: FramePlan;
      let from: Sender;
      try {
        plan = encodedSize(s.value);
        if (plan.byteLength > this.settings.maxMessage) throw new FrameTooLargeError(`a message of ${plan.byteLength} bytes is larger than the bridge's maxMessage (${this.settings.maxMessage})`);
        from = this.sender(s.publisher);
      } catch (err) {
        c.dropped++;
        s.release();
        report(err instanceof PlexusError ? err : new ProtocolError(`cannot send a message of ${JSON.stringify(topic)}`, { cause: err }));
        return;
      }
      const item = batchItemBytes(plan.byteLength);
      const limit = Math.min(maxPayload(), MAX_BATCH_BYTES) - batchHeadBytes(from);
      // A batch holds one publisher's messages with rising sequence numbers (a port id that came
      // back with a new publisher starts again at 1: a batch of its own).
      const joins =
        held.length > 0 &&
        this.settings.batch &&
        s.publisher === (held[0] as Sample<unknown>).publisher &&
        s.sequence > (sequences[sequences.length - 1] as number) &&
        heldBytes + item <= limit;
      if (held.length > 0 && !joins) flushHeld();
      held.push(s);
      plans.push(plan);
      sequences.push(s.sequence);
      heldBytes += item;
      // A message that needs a NATS message of its own (or chunks) goes now.
      if (held.length === 1 && item > limit) flushHeld();
    };
    /**
     * A lone message of bytes (a ping, a request's payload) from a publisher already sent for:
     * written in one pass, without a plan or a batch (what costs least for the message a
     * round trip waits on). False, with nothing done: {@link one} takes it.
     */
    const sendLone = (s: Sample<unknown>): boolean => {
      const from = this.senders.get(s.publisher);
      if (from === undefined || s.topic !== topic || !this.roles.sends(topic)) return false;
      let taken = false;
      try {
        const out = loneRawEnvelope(from, s.sequence, s.value, maxPayload(), this.settings.maxMessage, this.arena.take);
        if (out === undefined) return false; // not bytes, too large, or chunks: one() sends (or refuses) it
        taken = true;
        publish(out);
        c.sent++;
        c.sentChunks++;
      } catch (err) {
        taken = true;
        c.dropped++;
        report(natsError(err, `sending a message of ${JSON.stringify(topic)} to NATS`));
      } finally {
        if (taken) s.release();
      }
      return true;
    };
    // A message that finds the export idle (the loop below waiting in `receive()`, nothing
    // queued) is sent in the call that delivered it — the publisher's own `publish` in this
    // thread, or the read of its link — without a promise or a turn of the event loop: what a
    // lone message (a request, a ping) costs least this way. Then the taker steps aside until the
    // event loop has turned once: what follows meanwhile is queued, and the loop sends it as
    // batches. (The queue offers the taker only what finds nobody ahead of it: order is kept.)
    let idle = false;
    let rearm: NodeJS.Immediate | undefined;
    const taker = (s: Sample<unknown>): boolean => {
      if (!idle || !this.ctx.online() || unflushed >= FLUSH_BYTES) return false;
      sub.taker = undefined;
      rearm ??= setImmediate(() => {
        rearm = undefined;
        if (idle) sub.taker = taker;
      });
      taking = true;
      try {
        if (!sendLone(s)) {
          one(s);
          flushHeld();
        }
      } catch (err) {
        // one() and flushHeld() report what fails; nothing may reach the publisher's call
        report(new ProtocolError(`the export of ${JSON.stringify(topic)} failed on a message`, { cause: err }));
      } finally {
        taking = false;
      }
      return true;
    };
    try {
      // Whatever is queued is sent in one go: NATS's client writes what was published within a
      // microtask as one socket write, so a batch costs one system call, not one per message.
      // While messages keep coming, the loop lets the event loop turn once between batches, so
      // that the link fills the queue meanwhile (a few µs added to the first message of a burst).
      for (;;) {
        if (!this.ctx.online()) await this.ctx.connected();
        if (unflushed >= FLUSH_BYTES) {
          await nextWindow();
          continue;
        }
        let s = sub.tryReceive();
        if (s === null) {
          idle = true;
          if (rearm === undefined) sub.taker = taker;
          try {
            s = await sub.receive();
          } finally {
            idle = false;
            sub.taker = undefined;
          }
          if (s === null) return;
          if (unflushed >= FLUSH_BYTES) await nextWindow(); // the taker filled the window meanwhile
        }
        try {
          for (; s !== null; s = unflushed < FLUSH_BYTES ? sub.tryReceive() : null) one(s);
        } finally {
          flushHeld();
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      if (err instanceof ClosedError) return;
      this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`the export of ${JSON.stringify(topic)} stopped`, { cause: err }));
    } finally {
      if (rearm !== undefined) clearImmediate(rearm);
    }
  }

  private sender(publisher: string): Sender {
    let s = this.senders.get(publisher);
    if (s === undefined) {
      if (this.senders.size >= 4096) this.senders.clear(); // publishers come and go: nothing piles up
      s = { origin: this.origin, port: label(publisher, "a port id", true) };
      this.senders.set(publisher, s);
    }
    return s;
  }

  /**
   * The local publisher that stands for `topic` of the graph `origin` (made on first use):
   * local subscribers link to it as to any publisher, each with its own backpressure policy.
   * Rejects with `ResourceExhaustedError` beyond {@link MAX_IMPORTS_PER_ORIGIN} for one graph.
   */
  importPublisher(origin: string, topic: string): Promise<Publisher<unknown>> {
    const key = `${origin}\u0000${topic}`;
    let p = this.imported.get(key);
    if (p === undefined) {
      const head = `${origin}\u0000`;
      let held = 0;
      for (const k of this.imported.keys()) if (k.startsWith(head)) held++;
      if (held >= MAX_IMPORTS_PER_ORIGIN) return Promise.reject(new ResourceExhaustedError(`${origin} offers more than ${MAX_IMPORTS_PER_ORIGIN} topics; ${JSON.stringify(topic)} is not received`));
      p = this.node.remotePublisher(topic, origin, { capacity: this.settings.capacity });
      this.imported.set(key, p);
      p.catch((err: unknown) => {
        if (this.imported.get(key) === p) this.imported.delete(key);
        this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`cannot publish ${JSON.stringify(topic)} of ${origin} here`, { cause: err }));
      });
    }
    return p;
  }

  /** Closes the publishers of `origin` whose topic is not in `keep` (all of them, and its sequences, without `keep`). */
  async dropImports(origin: string, keep?: ReadonlySet<string>): Promise<void> {
    for (const [key, p] of [...this.imported]) {
      const [o, topic] = key.split("\u0000");
      if (o !== origin || keep?.has(topic)) continue;
      this.imported.delete(key);
      this.routes.clear();
      await p.then((pub) => pub.close({ linger: 0 })).catch(() => {});
    }
    if (keep === undefined) {
      const head = `${origin}\u0000`;
      for (const k of [...this.lastSeq.keys()]) if (k.startsWith(head)) this.lastSeq.delete(k);
      this.routes.clear(); // also any made by a message that arrived while the publishers closed
      for (const m of [this.followed, this.followedBefore]) for (const k of [...m.keys()]) if (k.startsWith(head)) m.delete(k);
      this.lastHeard.delete(origin);
    }
  }

  /**
   * The graphs this bridge holds publishers for or heard from, that were last heard from before
   * `before` (ms since the epoch): a graph that never announced itself and fell silent.
   */
  silentOrigins(before: number): string[] {
    const origins = new Set([...[...this.imported.keys()].map((k) => k.slice(0, k.indexOf("\u0000"))), ...this.lastHeard.keys()]);
    return [...origins].filter((o) => (this.lastHeard.get(o) ?? 0) < before);
  }

  /**
   * A new election: where this bridge now publishes what another bridge of its graph published,
   * the messages it followed since the election before last may have been lost with that bridge: they
   * are counted as gaps and reported. `takenOver` names those (graph, topic) pairs.
   */
  elected(takenOver: readonly { origin: string; topic: string }[]): void {
    for (const { origin, topic } of takenOver) {
      const key = `${origin}\u0000${topic}`;
      const n = (this.followed.get(key) ?? 0) + (this.followedBefore.get(key) ?? 0);
      if (n === 0) continue;
      this.c.gaps += n;
      this.ctx.report(new PeerDeadError(`the bridge that published ${JSON.stringify(topic)} of ${origin} here left; up to ${n} message(s) it received meanwhile may be lost (counted as gaps)`));
    }
    for (const { origin, topic } of takenOver) this.followed.delete(`${origin}\u0000${topic}`);
    this.followedBefore = this.followed;
    this.followed = new Map();
    const now = Date.now();
    for (const [k, v] of this.lastSeq) {
      if (now - v.at <= SEQUENCE_IDLE_MS) continue;
      this.lastSeq.delete(k);
      this.routes.clear();
    }
  }

  /** One message from NATS: checked, reassembled, de-duplicated, then queued for publishing here. */
  private receive(m: NatsMsg): void {
    if (this.closed) return;
    const c = this.c;
    const data = m.data;
    const subject = m.subject;
    c.receivedBytes += data.length;
    let decoded: { value: unknown } | undefined;
    const route = this.routes.get(subject);
    if (route !== undefined) {
      const f = this.fast(route, data);
      if (f === true) return;
      if (f !== false) decoded = f;
    }
    try {
      let topic = this.subjects.get(subject);
      if (topic === undefined) {
        const name = nameOfSubject(this.ctx.prefix, "t", subject);
        topic = name !== undefined && this.settings.imports.passes(name) && validTopic(name) ? name : null;
        if (this.subjects.size >= 4096) this.subjects.clear(); // names seen once (garbage) do not pile up
        this.subjects.set(subject, topic);
      }
      if (topic === null) {
        c.malformed++;
        throw new ProtocolError(`a message on ${JSON.stringify(subject)}, which names no topic this bridge imports; dropped`);
      }
      let e;
      let batch: BatchItem[] | undefined;
      try {
        e = readEnvelope(data);
        if (e.kind === Kind.Batch) batch = readBatch(e, this.settings.maxMessage);
        else if (e.kind !== Kind.Message) throw new ProtocolError(`a bridge message of kind ${e.kind} on the topic subject ${JSON.stringify(subject)}`);
      } catch (err) {
        c.malformed++;
        throw err;
      }
      if (e.origin === this.ctx.origin) {
        c.looped += e.items;
        return;
      }
      if (!this.roles.accepts(e.origin)) {
        c.dropped += e.items;
        return;
      }
      this.lastHeard.set(e.origin, Date.now());
      if (batch !== undefined) {
        this.deliver(e.origin, e.port, topic, batch, false);
        return;
      }
      let whole;
      try {
        whole = this.reassembler.add(e);
      } catch (err) {
        if (err instanceof ResourceExhaustedError) c.dropped++;
        else c.malformed++;
        throw err;
      }
      if (whole === undefined) return;
      this.deliver(e.origin, e.port, topic, [whole], whole.owned, e.count === 1 ? subject : undefined, decoded);
    } catch (err) {
      this.ctx.report(err instanceof PlexusError ? err : new ProtocolError("a bridged message could not be delivered", { cause: err }));
    }
  }

  /**
   * The way of most messages, taken when everything {@link deliver} would look at is as the
   * last message on its subject left it (the `Route`): a whole message of the same sender with
   * the next sequence number, the roles unchanged, nothing of the topic waiting here, and
   * subscribers with room. The envelope is checked against the route's bytes (no name decoded),
   * then the value is published in this call, without a promise: a lone message (a ping, a
   * request's event) reaches its subscribers a few µs sooner. False: nothing done, the full
   * way decides (and counts and reports what is wrong); `{ value }`: the message, decoded, is
   * for the full way to publish (a subscriber would make it wait).
   */
  private fast(r: Route, data: Uint8Array): boolean | { value: unknown } {
    if (r.version !== this.roles.version) return false;
    const at = loneFrameAt(data, r.names, r.o, r.seq.seq + 1);
    if (at < 0 || data.length - at > this.settings.maxMessage || (this.backlogs.size > 0 && this.backlogs.has(r.where))) return false;
    let value: unknown;
    try {
      value = decodeAt(data, at, data.length);
    } catch {
      return false; // the full way counts and reports it
    }
    try {
      // Not now (a subscriber over TCP, or a full one): the full way publishes the decoded value.
      if (!r.publisher.tryPublish(value)) return { value };
    } catch {
      return { value }; // the publisher closed or a subscriber refused: the full way counts and reports it
    }
    const now = Date.now();
    r.seq.seq++;
    r.seq.at = now;
    this.lastHeard.set(r.origin, now);
    this.c.received++;
    return true;
  }

  /**
   * Whole messages of one sender (one, or a batch's), in order: each sequence checked, then
   * published here by the bridge of the graph that receives them. `owned`: the one frame is the
   * reassembler's memory, given back once nothing refers to it. `subject`: the one message came
   * alone on it, and the next one there may take {@link fast}; `decoded`: its value, decoded
   * already.
   */
  private deliver(origin: string, port: string, topic: string, items: readonly BatchItem[], owned: boolean, subject?: string, decoded?: { value: unknown }): void {
    const c = this.c;
    const key = `${origin}\u0000${port}`;
    const where = `${origin}\u0000${topic}`;
    const receives = this.roles.receives(origin, topic);
    let pub: Promise<Publisher<unknown>> | undefined;
    const values: unknown[] = [];
    // One report per NATS message however many of its messages have a gap or do not decode (a
    // crafted batch of thousands must not turn into thousands of errors); all are counted.
    let gap: { expected: number; got: number; lost: number } | undefined;
    let gaps = 0;
    let undecodable: unknown;
    let failed = 0;
    let last = this.lastSeq.get(key)?.seq;
    for (const { frame, sequence } of items) {
      if (last !== undefined && sequence <= last) {
        c.duplicates++;
        continue;
      }
      const previous = last;
      last = sequence;
      pub ??= this.importPublisher(origin, topic); // standby bridges hold one too: ready to take over
      if (!receives) {
        c.standby++;
        this.followed.set(where, (this.followed.get(where) ?? 0) + 1);
        continue;
      }
      if (previous !== undefined && sequence > previous + 1) {
        const lost = sequence - previous - 1;
        c.gaps += lost;
        gaps += lost;
        gap ??= { expected: previous + 1, got: sequence, lost };
      }
      try {
        values.push(decoded !== undefined ? decoded.value : decode(frame));
      } catch (err) {
        c.malformed++;
        failed++;
        undecodable ??= err;
      }
    }
    let state: SequenceState | undefined;
    if (last !== undefined) {
      const now = Date.now();
      state = this.lastSeq.get(key);
      if (state === undefined) this.lastSeq.set(key, (state = { seq: last, at: now }));
      else {
        state.seq = last;
        state.at = now;
      }
    }
    if (gap !== undefined) {
      // The expected sequence number and the one that came: what was lost in between is counted.
      const more = gaps > gap.lost ? `; ${gaps} in all between the messages of this batch and those before` : "";
      this.ctx.report(new SequenceError(gap.expected, gap.got, { cause: `${gap.lost} message(s) of ${JSON.stringify(topic)} from ${origin} never arrived${more}` }));
    }
    if (failed > 0) this.ctx.report(new ProtocolError(`${failed === 1 ? "a message" : `${failed} messages`} of ${JSON.stringify(topic)} from ${origin} ${failed === 1 ? "is" : "are"} not a Plexus frame; dropped`, { cause: undecodable }));
    // A reassembled frame's memory goes back to the reassembler once nothing refers to it.
    const frame = (items[0] as BatchItem).frame;
    const recycle = (): void => {
      if (owned) this.reassembler.recycle(frame);
    };
    if (pub === undefined || values.length === 0) {
      recycle();
      return;
    }
    // Each topic publishes in order, on its own: a subscriber that holds one topic back does not
    // hold the others. At most `queue` messages of earlier bursts wait per topic; beyond, they
    // are dropped and counted.
    if (!this.burstEnding) {
      this.burstEnding = true;
      queueMicrotask(() => {
        this.burst++;
        this.burstEnding = false;
      });
    }
    let b = this.backlogs.get(where);
    if (b === undefined) {
      b = { chain: Promise.resolve(), waiting: 0, burst: this.burst, inBurst: 0, dropped: 0 };
      this.backlogs.set(where, b);
    }
    if (b.burst !== this.burst) {
      b.burst = this.burst;
      b.inBurst = 0;
    }
    // Only what earlier bursts left waiting counts: a burst of more than `queue` messages is
    // published as fast as they came unless the subscribers hold the publisher back.
    if (b.waiting - b.inBurst >= this.settings.queue) {
      c.dropped += values.length;
      if (b.dropped++ === 0) this.ctx.report(new BackpressureError(`the subscribers of ${JSON.stringify(topic)} here do not keep up with ${origin}: messages are dropped (${this.settings.queue} wait already)`));
      recycle();
      return;
    }
    b.waiting += values.length;
    b.inBurst += values.length;
    const backlog = b;
    const publisher = pub;
    // Once a lone message is published, the next one of its sender on this subject may take `fast`.
    const version = this.roles.version;
    const route = subject !== undefined && !owned && state !== undefined ? { subject, seq: state } : undefined;
    backlog.chain = backlog.chain.then(async () => {
      // Subscribers of this thread receive the value itself (views of the frame): then its memory is theirs.
      let shared = true;
      let done = 0;
      try {
        const p = await publisher;
        shared = p.local.count > 0;
        for (const value of values) {
          await p.publish(value);
          done++;
          backlog.waiting--;
          c.received++;
        }
        shared ||= p.local.count > 0;
        // Still the sender's sequence and the topic's publisher (neither was dropped meanwhile).
        if (route !== undefined && this.lastSeq.get(key) === route.seq && this.imported.get(where) === publisher) {
          if (this.routes.size >= 4096) this.routes.clear();
          // The names' bytes are the last route's while the sender stays (a subscriber over TCP sends every message this way).
          const last = this.routes.get(route.subject);
          const names = last !== undefined && last.origin === origin && last.port === port ? last : senderNames(origin, port);
          this.routes.set(route.subject, { origin, port, where, publisher: p, seq: route.seq, version, names: names.names, o: names.o });
        }
      } catch (err) {
        c.dropped += values.length - done;
        if (!this.closed) this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`publishing ${JSON.stringify(topic)} of ${origin} here failed`, { cause: err }));
      } finally {
        if (!shared) recycle();
        backlog.waiting -= values.length - done;
        if (backlog.waiting === 0) {
          backlog.dropped = 0;
          if (this.backlogs.get(where) === backlog) this.backlogs.delete(where);
        }
      }
    });
  }

  /** Stops sending: the exports' subscribers close (what they hold is not sent). */
  async stopExports(): Promise<void> {
    for (const e of this.exported.values()) this.closedDrops += e.sub.counters.drops;
    await Promise.all([...this.exported.values()].map((e) => e.sub.close()));
    await Promise.all([...this.exported.values()].map((e) => e.done));
    this.exported.clear();
  }

  /** Stops receiving and sending; the bridge's ports close with its node. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subscriptions) s.unsubscribe();
    await this.stopExports();
    await Promise.allSettled([...this.backlogs.values()].map((b) => b.chain));
    this.reassembler.clear();
  }
}

/** True if `name` is a topic name the graph takes. */
function validTopic(name: string): boolean {
  try {
    checkTopic(name);
    return true;
  } catch {
    return false;
  }
}
