/**
 * Queues over JetStream (docs/scale-out.md, *Queues*): one stream per queue, with work-queue
 * retention, on the subject `<prefix>.q.<name>`.
 *
 * - **export** (the producers' host): the bridge runs a Plexus queue server; every message a
 *   local producer puts to it is published to the stream, still encoded (the payload is the
 *   codec frame), with a message id (`Nats-Msg-Id`) that stays the same when the bridge publishes
 *   it again, so the stream stores it once. The producer's put resolves when the stream stored it
 *   (`fast`) or when an importing bridge put it into the consumers' queue server (`reliable`: the
 *   importer publishes a notice on the exporter's subject `<prefix>.qa.<instance>`); it rejects
 *   with a typed error when the message could not be stored.
 * - **import** (the consumers' host): every importing bridge of a queue pulls from one durable
 *   consumer of the stream (each message goes to one of them), puts each message into the
 *   application's queue server and acknowledges it on JetStream when that put resolved; what an
 *   importer does not acknowledge, JetStream delivers again (to any importer) after `ackWait`.
 *
 * The wire format (subjects, headers, payload) is in docs/protocol.md §8.
 * @module
 */
import { randomBytes } from "node:crypto";
import type * as JetStream from "@nats-io/jetstream";
import {
  ClosedError,
  EncodeError,
  errorFromWire,
  FrameTooLargeError,
  InvalidArgumentError,
  NoServerError,
  PlexusError,
  ProtocolError,
  ResourceExhaustedError,
  TimeoutError,
} from "../errors.js";
import { decode } from "../codec/index.js";
import { QueueClient } from "../queue/client.js";
import type { DeliveryMode, QueueClientOptions, QueueServerOptions } from "../queue/options.js";
import { QueueServer } from "../queue/server.js";
import type { Session } from "../queue/session.js";
import type { Delivery } from "../queue/tap.js";
import { checkOptions, Deadline, type BlockingOptions } from "../util/blocking.js";
import { closeLinger, DEFAULT_LINGER, warnDropped, type CloseOptions } from "../util/linger.js";
import { readOptions } from "../util/options.js";
import { loadOptionalPeer } from "../util/optional-peer.js";
import { Deferred } from "../util/wait.js";
import type { BridgeContext } from "./context.js";
import { natsError, type NatsMsg, type NatsSubscription } from "./nats.js";
import { subjectOf } from "./subjects.js";

/** The JetStream client package's module. */
type JetStreamModule = typeof JetStream;

/** Header: the message's id, for JetStream's de-duplication. */
export const MSG_ID_HEADER = "Nats-Msg-Id";
/** Header: the graph (bridge origin) the message was put on. */
export const ORIGIN_HEADER = "Plexus-Origin";
/** The `reliable` exporters of this process, by notice subject: an importer of the process tells them directly. */
const exporters = new Map<string, QueueBridge>();

/** Header (`reliable` export): the subject the importer publishes its notice on. */
export const ACK_HEADER = "Plexus-Ack";
/** Header of a notice: the importer refused the message for good (`<code> <message>`). */
export const ERROR_HEADER = "Plexus-Error";

/** What a queue bridge does: take a local queue to NATS, or bring one from NATS. */
export type QueueBridgeDirection = "export" | "import";

/** What a {@link QueueBridge} bridges, and how. */
export interface QueueBridgeSpec {
  /** The queue's name on NATS (`/`-separated segments, no whitespace): subject `<prefix>.q.<name>`. */
  name: string;
  /**
   * `export`: local producers put to the bridge's queue server at `url`, the bridge stores their
   * messages in the stream. `import`: the bridge takes the stream's messages and puts them into
   * the application's queue server at `url`.
   */
  direction: QueueBridgeDirection;
  /** export: where the bridge's queue server listens (port 0: a free one, see `bridge.url`); import: the application's queue server. */
  url: string;
  /**
   * export: when a producer's put resolves: `fast` (default) once the stream stored the message
   * (with `replicas`, once a majority of them did); `reliable` once an importing bridge's put of
   * it resolved on the consumers' host. import: the mode of the bridge's queue client: `fast`
   * (default) — its put resolves, and the message is acknowledged on JetStream, once the
   * application's queue server queued it; `reliable` — once the application released it.
   */
  delivery?: DeliveryMode;
  /** Replicas of the stream when the bridge creates it (1..5, default 1; 3 in a three-node cluster survives the loss of one node). */
  replicas?: number;
  /** Where the stream keeps messages when the bridge creates it: `file` (default) or `memory`. */
  storage?: "file" | "memory";
  /** The stream's name (default: derived from the prefix and the queue's name, see docs). */
  stream?: string;
  /** The durable consumer every importing bridge of the queue shares (default `plexus`). */
  consumer?: string;
  /** How long the stream remembers message ids for de-duplication, ms (default 120 000), when the bridge creates it. */
  duplicateWindow?: number;
  /** Most messages the stream holds when the bridge creates it (default: no limit); a full stream refuses puts with `ResourceExhaustedError`. */
  maxMessages?: number;
  /** Most bytes the stream holds when the bridge creates it (default: no limit); a full stream refuses puts with `ResourceExhaustedError`. */
  maxBytes?: number;
  /** export: how long the bridge keeps trying to store a message (JetStream unavailable, a node failing over) before the put rejects, ms (default 20 000). */
  storeTimeout?: number;
  /** export: the wait for JetStream's acknowledgement of one attempt, ms (default 3000); a lost attempt is published again with the same id. */
  publishTimeout?: number;
  /** export, `reliable`: how long a stored message may wait for an importer's notice before the put rejects with `TimeoutError`, ms (default 120 000). */
  settleTimeout?: number;
  /** import: messages in flight at once: the consumer's `max_ack_pending` (shared by the importers) and the local client's slots (1..1024, default 256). */
  window?: number;
  /** import: how long JetStream waits for an importer's acknowledgement before it delivers the message again, ms (default 30 000). */
  ackWait?: number;
  /** export: more options of the bridge's queue server (TLS, limits; not `url` or `mode`). Its `maxMessage` is capped by the NATS server's `max_payload`. */
  server?: Omit<QueueServerOptions, "url" | "mode">;
  /** import: more options of the bridge's queue client (TLS, identity, limits; not `url`, `mode` or `slots`). */
  client?: Omit<QueueClientOptions, "url" | "mode" | "slots" | "signal">;
}

/** Counters of a {@link QueueBridge}. */
export interface QueueBridgeStats {
  /** export: messages taken from local producers; import: messages taken from JetStream. */
  forwarded: number;
  /** export: messages the stream stored (not counting duplicates). */
  stored: number;
  /** export: `reliable` notices that an importer's put resolved; import: local puts that resolved (acknowledged on JetStream). */
  delivered: number;
  /** import: messages JetStream delivered again (an importer did not acknowledge them in time, or gave them back). */
  redelivered: number;
  /** export: publications the stream recognised as already stored; import: redeliveries of messages this bridge had already put (acknowledged, not put again). */
  duplicates: number;
  /** Failures: puts refused or timed out, garbage on the queue's subject, failed local puts, malformed notices. */
  errors: number;
  /** Messages in flight now. */
  pending: number;
}

/** Settings of a bridge, read from its spec. */
interface Config {
  name: string;
  direction: QueueBridgeDirection;
  url: string;
  delivery: DeliveryMode;
  replicas: number;
  storage: "file" | "memory";
  stream: string;
  consumer: string;
  duplicateWindow: number;
  maxMessages: number;
  maxBytes: number;
  storeTimeout: number;
  publishTimeout: number;
  settleTimeout: number;
  window: number;
  ackWait: number;
  server: Omit<QueueServerOptions, "url" | "mode">;
  client: Omit<QueueClientOptions, "url" | "mode" | "slots" | "signal">;
}

const WHERE = "QueueBridge.start";
/** Default of `start`'s timeout. */
const START_TIMEOUT = 10_000;
/** Message ids an importer remembers, to acknowledge without putting again what JetStream delivers again. */
const RECENT_IDS = 65_536;
/** How long an importer's pull requests last, ms: a pull lost in a failover is replaced that soon. */
const PULL_EXPIRES = 5000;
/** How long an importer leaves a message it could not put before JetStream offers it again, ms. */
const NAK_DELAY = 1000;

/**
 * A name as a stream or consumer name: letters, digits and `-` as they are, every other byte as
 * `_` and two hex digits (so no `.`, `*`, `>`, `/`, `\` or whitespace, and distinct names stay
 * distinct); long names are cut and end in a hash.
 */
export function safeName(text: string): string {
  let out = "";
  for (const b of Buffer.from(text, "utf8")) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The default stream name of queue `name` under `prefix`: `<prefix>_q_<name>`, escaped by {@link safeName}, at most 200 characters. */
export function streamNameOf(prefix: string, name: string): string {
  const s = `${safeName(prefix)}_q_${safeName(name)}`;
  if (s.length <= 200) return s;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return `${s.slice(0, 190)}_${h.toString(16).padStart(8, "0")}`;
}

/** A stream or consumer name given by the user: 1 to 200 printable ASCII characters, none of `. * > / \` (no whitespace). */
function checkJsName(o: { error(name: "stream" | "consumer", accepted: string): InvalidArgumentError }, field: "stream" | "consumer", v: string): string {
  if (v.length > 200 || !/^[!-~]+$/.test(v) || /[.*>/\\]/.test(v)) throw o.error(field, "a name of 1 to 200 characters without whitespace, '.', '*', '>', '/' or '\\'");
  return v;
}

function readSpec(prefix: string, spec: QueueBridgeSpec): Config {
  const o = readOptions(WHERE, spec);
  const name = o.string("name", 1);
  if (name === undefined || /\s/.test(name)) throw o.error("name", "a queue name without whitespace");
  const direction = o.oneOf("direction", ["export", "import"], undefined);
  if (direction === undefined) throw o.error("direction", '"export" or "import"');
  const url = o.string("url", 1);
  if (url === undefined) throw o.error("url", "a queue URL (tcp://host:port, ...)");
  const stream = o.string("stream");
  const consumer = o.string("consumer");
  const server = o.object("server") ?? {};
  const client = o.object("client") ?? {};
  return {
    name,
    direction,
    url,
    delivery: o.oneOf("delivery", ["fast", "reliable"], "fast"),
    replicas: o.int("replicas", 1, 1, 5),
    storage: o.oneOf("storage", ["file", "memory"], "file"),
    stream: stream === undefined ? streamNameOf(prefix, name) : checkJsName(o, "stream", stream),
    consumer: consumer === undefined ? "plexus" : checkJsName(o, "consumer", consumer),
    duplicateWindow: o.ms("duplicateWindow", 120_000),
    maxMessages: o.int("maxMessages", undefined, 1, Number.MAX_SAFE_INTEGER) ?? -1,
    maxBytes: o.int("maxBytes", undefined, 1, Number.MAX_SAFE_INTEGER) ?? -1,
    storeTimeout: o.ms("storeTimeout", 20_000),
    publishTimeout: o.ms("publishTimeout", 3000),
    settleTimeout: o.ms("settleTimeout", 120_000),
    window: o.int("window", 256, 1, 1024),
    ackWait: o.ms("ackWait", 30_000),
    server,
    client,
  };
}

/** The name of an error's class (errors of the NATS packages, which other copies may define). */
function className(err: unknown): string {
  return err instanceof Error ? (err.name !== "Error" ? err.name : err.constructor.name) : "";
}

/**
 * A JetStream failure as a Plexus typed error: no stream or JetStream answering -> `NoServerError`;
 * a full stream -> `ResourceExhaustedError`; a message above the stream's limit ->
 * `FrameTooLargeError`; other API errors -> `ProtocolError`; the rest as {@link natsError}.
 */
export function jetStreamError(err: unknown, what: string): PlexusError {
  if (err instanceof PlexusError) return err;
  const name = className(err);
  const message = err instanceof Error ? err.message : String(err);
  if (name === "JetStreamNotEnabled" && !/account/i.test(message)) {
    return new NoServerError(`${what}: no JetStream stream answered (no stream for the subject, or JetStream unavailable)`, { cause: err });
  }
  if (name === "JetStreamNotEnabled") return new NoServerError(`${what}: JetStream is not enabled for this account: ${message}`, { cause: err });
  const api = err as { code?: unknown; status?: unknown };
  if (/^(JetStreamApiError|StreamNotFoundError|ConsumerNotFoundError)$/.test(name) && typeof api.code === "number") {
    if (/maximum (messages|bytes)|insufficient resources|resource limits/i.test(message)) return new ResourceExhaustedError(`${what}: ${message}`, { cause: err });
    if (/message size exceeds/i.test(message)) return new FrameTooLargeError(`${what}: ${message}`, { cause: err });
    if (api.status === 503) return new NoServerError(`${what}: JetStream unavailable: ${message}`, { cause: err });
    if (name === "StreamNotFoundError") return new NoServerError(`${what}: ${message}`, { cause: err });
    return new ProtocolError(`${what}: JetStream refused: ${message} (code ${api.code})`, { cause: err });
  }
  if (name === "MaxPayloadExceeded" || /max.?payload/i.test(message)) return new FrameTooLargeError(`${what}: ${message}`, { cause: err });
  return natsError(err, what);
}

/** Whether a failed attempt to store may succeed if tried again (same id: stored at most once). */
function retriable(err: PlexusError): boolean {
  return err instanceof TimeoutError || err instanceof NoServerError || err.code === "ERR_PLEXUS_PEER_DEAD";
}

/** Loads the JetStream client package, or rejects with `MissingDependencyError` naming it. */
export function loadJetStream(): Promise<JetStreamModule> {
  return loadOptionalPeer<JetStreamModule>("@nats-io/jetstream", "queues over the NATS bridge");
}

/** Waits for `p` within `deadline` and `signal`; a NATS failure as a typed error. */
function within<T>(p: Promise<T>, deadline: Deadline, signal: AbortSignal | undefined, what: string): Promise<T> {
  const d = new Deferred<T>({ timeout: deadline.remaining(), signal, what }, undefined);
  p.then(
    (v) => d.resolve(v),
    (err: unknown) => d.reject(jetStreamError(err, what)),
  );
  return d.promise;
}

/** Makes the stream if it is missing; checks one that exists (work-queue retention, the queue's subject). */
async function ensureStream(js: JetStreamModule, jsm: JetStream.JetStreamManager, cfg: Config, subject: string): Promise<void> {
  const what = `queue ${cfg.name}: stream ${cfg.stream}`;
  const check = (info: JetStream.StreamInfo): void => {
    if (info.config.retention !== js.RetentionPolicy.Workqueue) {
      throw new InvalidArgumentError(`${what} exists with ${info.config.retention} retention; a bridged queue needs work-queue retention`);
    }
    if (!(info.config.subjects ?? []).includes(subject)) {
      throw new InvalidArgumentError(`${what} exists without the subject ${subject} (it has ${JSON.stringify(info.config.subjects ?? [])})`);
    }
  };
  try {
    check(await jsm.streams.info(cfg.stream));
    return;
  } catch (err) {
    if (className(err) !== "StreamNotFoundError") throw jetStreamError(err, what);
  }
  try {
    await jsm.streams.add({
      name: cfg.stream,
      subjects: [subject],
      retention: js.RetentionPolicy.Workqueue,
      storage: cfg.storage === "memory" ? js.StorageType.Memory : js.StorageType.File,
      num_replicas: cfg.replicas,
      duplicate_window: cfg.duplicateWindow * 1e6,
      discard: js.DiscardPolicy.New,
      max_msgs: cfg.maxMessages,
      max_bytes: cfg.maxBytes,
    });
  } catch (err) {
    // Another bridge made it meanwhile (with other settings): use it if it fits.
    try {
      check(await jsm.streams.info(cfg.stream));
    } catch {
      throw jetStreamError(err, `${what}: creating it`);
    }
  }
}

/** Makes the durable consumer if it is missing; checks one that exists (explicit acknowledgements). */
async function ensureConsumer(js: JetStreamModule, jsm: JetStream.JetStreamManager, cfg: Config, subject: string): Promise<void> {
  const what = `queue ${cfg.name}: consumer ${cfg.consumer} of stream ${cfg.stream}`;
  const check = (info: JetStream.ConsumerInfo): void => {
    if (info.config.ack_policy !== js.AckPolicy.Explicit) throw new InvalidArgumentError(`${what} exists with ack policy ${info.config.ack_policy}; a bridge needs explicit acknowledgements`);
    if (info.config.deliver_subject !== undefined && info.config.deliver_subject !== "") throw new InvalidArgumentError(`${what} exists as a push consumer; a bridge needs a pull consumer`);
  };
  try {
    check(await jsm.consumers.info(cfg.stream, cfg.consumer));
    return;
  } catch (err) {
    if (className(err) !== "ConsumerNotFoundError") throw jetStreamError(err, what);
  }
  try {
    await jsm.consumers.add(cfg.stream, {
      durable_name: cfg.consumer,
      ack_policy: js.AckPolicy.Explicit,
      ack_wait: cfg.ackWait * 1e6,
      max_ack_pending: cfg.window,
      deliver_policy: js.DeliverPolicy.All,
      filter_subject: subject,
      max_deliver: -1,
    });
  } catch (err) {
    try {
      check(await jsm.consumers.info(cfg.stream, cfg.consumer));
    } catch {
      throw jetStreamError(err, `${what}: creating it`);
    }
  }
}

/** A message of an exporting bridge between its arrival and its settlement. */
interface Outgoing {
  readonly d: Delivery;
  readonly id: string;
  /** export `reliable`: when it fails for want of a notice (performance.now()). */
  due: number;
  /** Settled (acknowledged or refused). */
  done: boolean;
}

/**
 * One queue bridged between this graph and a NATS cluster's JetStream, in one direction. Made
 * by the `Bridge` for each queue its allow list names (or on its own: `QueueBridge.start(ctx,
 * spec)`); closed with it.
 */
export class QueueBridge implements AsyncDisposable {
  /** The queue's subject: `<prefix>.q.<name>`. */
  readonly subject: string;
  private readonly counts = { forwarded: 0, stored: 0, delivered: 0, redelivered: 0, duplicates: 0, errors: 0 };
  private closing: Promise<void> | undefined;
  private stopped = false;

  // export
  private server: QueueServer | undefined;
  private noticeSub: NatsSubscription | undefined;
  /** The subject of this bridge's notices (`reliable` export). */
  private readonly noticeSubject: string;
  private readonly instance = randomBytes(8).toString("hex");
  private readonly sessionNos = new WeakMap<Session, number>();
  private nextSession = 1;
  private readonly outgoing = new Map<string, Outgoing>();
  private sweep: ReturnType<typeof setInterval> | undefined;
  private inStore = 0;
  /** Bytes of a message's headers, at most (with the longest id). */
  private headerRoom = 0;
  private storeIdle: (() => void) | undefined;

  // import
  private client: QueueClient | undefined;
  private messages: JetStream.ConsumerMessages | undefined;
  private inPut = 0;
  private putIdle: (() => void) | undefined;
  private readonly recent = new Set<string>();

  private constructor(
    private readonly ctx: BridgeContext,
    private readonly cfg: Config,
    private readonly js: JetStream.JetStreamClient,
  ) {
    this.subject = subjectOf(ctx.prefix, "q", cfg.name);
    this.noticeSubject = `${ctx.prefix}.qa.${this.instance}`;
  }

  /**
   * Bridges one queue: makes its stream if it is missing (and, importing, the shared durable
   * consumer), then starts the queue server (export) or connects to the application's one and
   * starts consuming (import). Rejects with `MissingDependencyError` without the
   * `@nats-io/jetstream` package, `InvalidArgumentError` for a bad spec or a stream or consumer
   * that exists with settings a bridge cannot use, `NoServerError` when JetStream does not
   * answer, `AccessDeniedError`, `TimeoutError` (default 10 s), `AbortError`, and what
   * `queue.server` / `queue.client` reject with.
   */
  static async start(ctx: BridgeContext, spec: QueueBridgeSpec, opts: BlockingOptions = {}): Promise<QueueBridge> {
    checkOptions(opts, WHERE);
    const cfg = readSpec(ctx.prefix, spec);
    const mod = await loadJetStream();
    const deadline = new Deadline(opts.timeout ?? START_TIMEOUT);
    const what = `queue ${cfg.name}`;
    const jsm = await within(mod.jetstreamManager(ctx.nc, { timeout: 5000 }), deadline, opts.signal, `${what}: reaching JetStream`);
    const bridge = new QueueBridge(ctx, cfg, mod.jetstream(ctx.nc, { timeout: cfg.publishTimeout }));
    try {
      await within(ensureStream(mod, jsm, cfg, bridge.subject), deadline, opts.signal, `${what}: stream ${cfg.stream}`);
      if (cfg.direction === "export") await bridge.startExport();
      else await bridge.startImport(mod, jsm, deadline, opts.signal);
    } catch (err) {
      await bridge.close();
      throw err;
    }
    return bridge;
  }

  /** The queue's name. */
  get name(): string {
    return this.cfg.name;
  }

  /** `export` or `import`. */
  get direction(): QueueBridgeDirection {
    return this.cfg.direction;
  }

  /** export: the URL of the bridge's queue server (with its bound port); import: the application's queue server. */
  get url(): string {
    return this.server?.url ?? this.cfg.url;
  }

  /** The stream's name. */
  get stream(): string {
    return this.cfg.stream;
  }

  /** The durable consumer's name (import). */
  get consumer(): string {
    return this.cfg.consumer;
  }

  /** The counters (a snapshot). */
  stats(): QueueBridgeStats {
    return { ...this.counts, pending: this.cfg.direction === "export" ? this.outgoing.size : this.inPut };
  }

  /**
   * Stops the bridge. export: no more messages are taken; messages being stored get up to
   * `linger` ms (default 2 s) to be stored, then every message not settled rejects at its
   * producer with `ClosedError` (it may still be stored or delivered); the queue server closes.
   * import: no more messages are taken from JetStream; puts in flight get up to `linger` ms,
   * what is not acknowledged then is given back to JetStream for another importer; the client
   * closes. Idempotent.
   */
  close(opts?: CloseOptions): Promise<void> {
    if (this.closing === undefined) {
      let linger: number;
      try {
        linger = closeLinger(opts, DEFAULT_LINGER);
      } catch (err) {
        return Promise.reject(err);
      }
      this.closing = this.shutdown(linger);
    }
    return this.closing;
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private report(err: PlexusError): void {
    this.counts.errors++;
    try {
      this.ctx.report(err);
    } catch {
      // the bridge's report must not stop the queue
    }
  }

  private async shutdown(linger: number): Promise<void> {
    this.stopped = true;
    if (this.sweep !== undefined) clearInterval(this.sweep);
    if (this.cfg.direction === "export") {
      if (this.server !== undefined) this.server.tap = (d) => d.fail(new ClosedError(`the bridge of queue ${this.cfg.name} is closing`));
      await this.idle(() => this.inStore, (f) => (this.storeIdle = f), linger);
      if (this.outgoing.size > 0) warnDropped(`the bridge of queue ${this.cfg.name} closed with ${this.outgoing.size} message(s) not ${this.cfg.delivery === "reliable" ? "consumed" : "stored"} within the linger of ${linger} ms; their puts reject with ClosedError (they may still be delivered)`);
      for (const o of [...this.outgoing.values()]) this.settle(o, new ClosedError(`the bridge of queue ${this.cfg.name} closed before the message was ${this.cfg.delivery === "reliable" ? "consumed" : "stored"}`));
      this.noticeSub?.unsubscribe();
      if (exporters.get(this.noticeSubject) === this) exporters.delete(this.noticeSubject);
      await this.server?.close({ linger: Math.min(linger, 500) });
    } else {
      await this.messages?.close().catch(() => undefined);
      await this.idle(() => this.inPut, (f) => (this.putIdle = f), linger);
      await this.client?.close({ linger: 0 });
    }
  }

  /** Waits until `count()` is 0 or `ms` passed. */
  private async idle(count: () => number, onIdle: (f: (() => void) | undefined) => void, ms: number): Promise<void> {
    if (count() === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      onIdle(() => {
        clearTimeout(t);
        resolve();
      });
    });
    onIdle(undefined);
  }

  // ---- export ----

  private async startExport(): Promise<void> {
    const maxPayload = this.ctx.nc.info?.max_payload ?? 1 << 20;
    this.headerRoom = this.headerBytes();
    const room = maxPayload - this.headerRoom;
    const asked = this.cfg.server.maxMessage;
    this.server = await QueueServer.create({ ...this.cfg.server, url: this.cfg.url, maxMessage: Math.max(1, Math.min(asked ?? room, room)) });
    this.server.tap = (d) => this.take(d);
    if (this.cfg.delivery === "reliable") {
      exporters.set(this.noticeSubject, this);
      this.noticeSub = this.ctx.nc.subscribe(this.noticeSubject, { callback: (err, m) => (err === null ? this.notice(m) : this.report(natsError(err, `queue ${this.cfg.name}: notices`))) });
      this.sweep = setInterval(() => this.expire(), 1000);
      this.sweep.unref();
    }
  }

  /** The headers of a message, with the longest id this bridge makes. */
  private headerBytes(): number {
    const h = this.headers(`${this.idPrefix()}${"f".repeat(32)}.${"f".repeat(16)}/4294967295/4294967295`);
    return Buffer.byteLength(`NATS/1.0\r\n${[...h.keys()].map((k) => `${k}: ${h.get(k)}\r\n`).join("")}\r\n`) + 16;
  }

  private idPrefix(): string {
    return `${this.ctx.origin}/${this.instance}/`;
  }

  private headers(id: string): ReturnType<BridgeContext["nats"]["headers"]> {
    const h = this.ctx.nats.headers();
    h.set(ORIGIN_HEADER, this.ctx.origin);
    if (this.cfg.delivery === "reliable") h.set(ACK_HEADER, this.noticeSubject);
    h.set(MSG_ID_HEADER, id);
    return h;
  }

  /** A message from a local producer. */
  private take(d: Delivery): void {
    this.counts.forwarded++;
    let no = this.sessionNos.get(d.session);
    if (no === undefined) this.sessionNos.set(d.session, (no = this.nextSession++));
    // Stable for this message (a retry publishes the same id), unique across producers, sessions and bridges.
    const id = `${this.idPrefix()}${d.peer}.${d.token || "0"}/${no}/${d.serial}`;
    const o: Outgoing = { d, id, due: performance.now() + this.cfg.storeTimeout + this.cfg.settleTimeout, done: false };
    this.outgoing.set(id, o);
    const h = this.headers(id);
    const max = this.ctx.nc.info?.max_payload ?? Infinity;
    const size = d.payload.length + this.headerRoom;
    if (size > max) {
      this.settle(o, new FrameTooLargeError(`queue ${this.cfg.name}: a message of ${d.payload.length} bytes does not fit in the NATS server's max_payload of ${max} bytes with its headers`));
      return;
    }
    this.inStore++;
    void this.store(o, h).finally(() => {
      if (--this.inStore === 0) this.storeIdle?.();
    });
  }

  /** Publishes `o` until the stream stored it, a failure is final, or `storeTimeout` passed. */
  private async store(o: Outgoing, h: ReturnType<BridgeContext["nats"]["headers"]>): Promise<void> {
    const what = `queue ${this.cfg.name}: storing a message in stream ${this.cfg.stream}`;
    const deadline = new Deadline(this.cfg.storeTimeout);
    let pause = 50;
    /** A "no stream answered" seen on the way says more than the timeout of a later attempt. */
    let noServer: PlexusError | undefined;
    for (;;) {
      if (o.done || !o.d.current) {
        this.forget(o); // settled already (a notice came first), or the producer's session is gone: nobody waits
        return;
      }
      const left = deadline.remaining();
      try {
        // `h` carries the id (Nats-Msg-Id): the same on every attempt.
        const ack = await this.js.publish(this.subject, o.d.payload, { headers: h, timeout: Math.max(1, Math.min(this.cfg.publishTimeout, left)) });
        if (ack.duplicate) this.counts.duplicates++;
        else this.counts.stored++;
        if (this.cfg.delivery === "fast") this.settle(o);
        return;
      } catch (err) {
        const e = jetStreamError(err, what);
        if (e instanceof NoServerError) noServer = e;
        if (this.stopped || !retriable(e) || deadline.remaining() <= 0) {
          const last = retriable(e) ? (noServer ?? e) : e;
          this.settle(o, last instanceof TimeoutError || !retriable(last) ? last : new NoServerError(`${last.message} (not stored within ${this.cfg.storeTimeout} ms)`, { cause: last }));
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(pause, deadline.remaining())));
        pause = Math.min(pause * 2, 1000);
      }
    }
  }

  /** Settles `o`: acknowledged (no error), or refused with `err` (its producer's put rejects with it). */
  private settle(o: Outgoing, err?: PlexusError): void {
    if (o.done) return;
    o.done = true;
    this.forget(o);
    if (err === undefined) {
      o.d.ack();
      return;
    }
    if (o.d.current) {
      this.counts.errors++; // the producer is told: not reported
      o.d.fail(err);
    }
  }

  private forget(o: Outgoing): void {
    if (this.outgoing.get(o.id) === o) this.outgoing.delete(o.id);
  }

  /** A notice from an importer (`reliable`): the message's id, and `Plexus-Error` if it refused it. */
  private notice(m: NatsMsg): void {
    this.noticed(m.string(), m.headers?.get(ERROR_HEADER) ?? "", m.subject);
  }

  /** A notice (from NATS, or from an importer of this process): the message's id, and the refusal, if it was refused. */
  private noticed(id: string, refused: string, subject: string): void {
    const o = this.outgoing.get(id);
    if (o === undefined) {
      if (!id.startsWith(this.idPrefix())) this.report(new ProtocolError(`queue ${this.cfg.name}: a notice on ${subject} for an id this bridge never sent (${JSON.stringify(id.slice(0, 80))})`));
      return; // a late or repeated notice
    }
    if (refused === "") {
      this.counts.delivered++;
      this.settle(o);
      return;
    }
    const space = refused.indexOf(" ");
    this.settle(o, errorFromWire(space < 0 ? refused : refused.slice(0, space), `queue ${this.cfg.name}: the importing bridge refused the message: ${space < 0 ? refused : refused.slice(space + 1)}`, ProtocolError.code));
  }

  /** `reliable` export: fails what waited too long for a notice. */
  private expire(): void {
    const now = performance.now();
    for (const o of [...this.outgoing.values()]) {
      if (o.due > now) continue;
      this.settle(o, new TimeoutError(`queue ${this.cfg.name}: no importing bridge put the message within ${this.cfg.settleTimeout} ms of storing it (it stays in stream ${this.cfg.stream})`));
    }
  }

  // ---- import ----

  private async startImport(mod: JetStreamModule, jsm: JetStream.JetStreamManager, deadline: Deadline, signal: AbortSignal | undefined): Promise<void> {
    const what = `queue ${this.cfg.name}`;
    await within(ensureConsumer(mod, jsm, this.cfg, this.subject), deadline, signal, `${what}: consumer ${this.cfg.consumer}`);
    const putTimeout = Math.max(this.cfg.ackWait - 1000, this.cfg.ackWait / 2);
    this.client = await QueueClient.connect({
      timeout: putTimeout,
      ...this.cfg.client,
      url: this.cfg.url,
      mode: this.cfg.delivery,
      slots: this.cfg.window,
      connectTimeout: Math.max(1, Math.min(this.cfg.client.connectTimeout ?? 5000, deadline.remaining())),
      ...(signal !== undefined ? { signal } : {}),
    });
    const consumer = await within(this.js.consumers.get(this.cfg.stream, this.cfg.consumer), deadline, signal, `${what}: consumer ${this.cfg.consumer}`);
    const messages = await within(
      // Short pulls: a pull request lost with a failing NATS node is replaced within PULL_EXPIRES
      // (with the client's default of 30 s the importer sat idle that long after a failover).
      consumer.consume({ max_messages: this.cfg.window, expires: PULL_EXPIRES, idle_heartbeat: PULL_EXPIRES / 2, callback: (m) => this.receive(m) }),
      deadline,
      signal,
      `${what}: consuming`,
    );
    this.messages = messages;
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === "consumer_deleted" || s.type === "consumer_not_found" || s.type === "stream_not_found") {
          this.report(new NoServerError(`queue ${this.cfg.name}: ${s.type.replace(/_/g, " ")} (consumer ${this.cfg.consumer} of stream ${this.cfg.stream})`));
        } else if (s.type === "heartbeats_missed" && s.count === 2) {
          this.report(new TimeoutError(`queue ${this.cfg.name}: JetStream's heartbeats for consumer ${this.cfg.consumer} stopped (the bridge keeps pulling)`));
        }
      }
    })().catch(() => undefined);
  }

  /** A message from JetStream. */
  private receive(m: JetStream.JsMsg): void {
    this.counts.forwarded++;
    if (m.redelivered) this.counts.redelivered++;
    const id = m.headers?.get(MSG_ID_HEADER) ?? "";
    const ackTo = m.headers?.get(ACK_HEADER) ?? "";
    if (this.stopped) {
      m.nak(0);
      return;
    }
    if (id !== "" && this.recent.has(id)) {
      // This bridge put it already; its acknowledgement was lost.
      this.counts.duplicates++;
      m.ack();
      this.notify(ackTo, id);
      return;
    }
    let value: unknown;
    try {
      value = decode(m.data);
    } catch (err) {
      const e = new ProtocolError(`queue ${this.cfg.name}: message ${m.seq} of stream ${this.cfg.stream} is not a Plexus frame (dropped): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      this.report(e);
      m.term("not a Plexus frame");
      this.notify(ackTo, id, e);
      return;
    }
    const client = this.client;
    if (client === undefined) return;
    this.inPut++;
    client.put(value).then(
      () => {
        m.ack();
        this.counts.delivered++;
        if (id !== "") this.remember(id);
        this.notify(ackTo, id);
        this.putDone();
      },
      (err: unknown) => {
        const e = err instanceof PlexusError ? err : new ProtocolError(String(err));
        if (e instanceof FrameTooLargeError || e instanceof EncodeError || e instanceof ProtocolError) {
          // It will never go in: dropped, and its producer told (reliable).
          m.term(e.message.slice(0, 200));
          this.notify(ackTo, id, e);
        } else {
          m.nak(this.stopped ? 0 : NAK_DELAY); // another try, here or at another importer
        }
        if (!(e instanceof ClosedError && this.stopped)) this.report(e);
        this.putDone();
      },
    );
  }

  private putDone(): void {
    if (--this.inPut === 0) this.putIdle?.();
  }

  private remember(id: string): void {
    this.recent.add(id);
    if (this.recent.size > RECENT_IDS) this.recent.delete(this.recent.values().next().value as string);
  }

  /** `reliable`: tells the exporting bridge its message was put (or refused with `err`). */
  private notify(to: string, id: string, err?: PlexusError): void {
    if (to === "" || id === "") return;
    if (!to.startsWith(`${this.ctx.prefix}.qa.`) || /[\s*>]/.test(to)) {
      this.report(new ProtocolError(`queue ${this.cfg.name}: a message asks for its notice on ${JSON.stringify(to.slice(0, 80))}, not a notice subject of this prefix (not sent)`));
      return;
    }
    const refusal = err === undefined ? "" : `${err.code} ${err.message.replace(/[\r\n]+/g, " ").slice(0, 400)}`;
    // An exporter of this process is told directly: a bridge that exports and imports one queue
    // would not hear its own notice (its NATS connection does not echo what it publishes).
    const local = exporters.get(to);
    if (local !== undefined) {
      local.noticed(id, refusal, to);
      return;
    }
    try {
      if (err === undefined) {
        this.ctx.nc.publish(to, id);
      } else {
        const h = this.ctx.nats.headers();
        h.set(ERROR_HEADER, refusal);
        this.ctx.nc.publish(to, id, { headers: h });
      }
    } catch (e) {
      this.report(natsError(e, `queue ${this.cfg.name}: sending a notice`));
    }
  }
}
