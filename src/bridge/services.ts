/**
 * Request/response across the bridge: local services answer NATS requests (in one queue group,
 * so requests are balanced across every host that serves them), and other hosts' services get a
 * local server here that forwards each request over NATS (docs/scale-out.md, *Services*).
 * (Internal: not part of the public API.)
 * @module
 */
import { errorFromWire, PlexusError, ProtocolError, RemoteError } from "../errors.js";
import { decode } from "../codec/index.js";
import type { Node } from "../node/index.js";
import type { Client } from "../rpc/client.js";
import type { Server } from "../rpc/server.js";
import { passThrough } from "../rpc/wire.js";
import type { BridgeContext } from "./context.js";
import { envelopes, Kind, label, readEnvelope, type Sender } from "./envelope.js";
import { natsError, type NatsMsg, type NatsSubscription } from "./nats.js";
import { subjectOf, type NameFilter } from "./subjects.js";
import type { ServiceCounters } from "./types.js";

/** Requests of one exported service answered at once, at most. */
const MAX_ANSWERING = 1024;

/** The NATS queue group every bridge's service subscriptions join. */
export const SERVICE_GROUP = "plexus-service";

/** How services are bridged (checked by the `Bridge`). */
export interface ServiceSettings {
  /** Local services that answer NATS requests. */
  readonly exports: NameFilter;
  /** Remote services served here. */
  readonly imports: NameFilter;
  /** The largest request or answer. */
  readonly maxMessage: number;
  /** How long a request forwarded to NATS waits for its answer (ms). */
  readonly requestTimeout: number;
}


/** An error as a failure answer carries it. */
interface WireFailure {
  code: string;
  name: string;
  message: string;
  /** True if the handler threw it; false if the request failed before it reached one. */
  handler: boolean;
}

/** The request/response half of a bridge. */
export class ServiceBridge {
  /** Counters since the bridge started. */
  readonly counters: ServiceCounters = { answered: 0, failed: 0, forwarded: 0, forwardFailed: 0, malformed: 0 };
  private readonly exported = new Map<string, { client: Client<unknown, unknown>; sub: NatsSubscription; done: Promise<void> }>();
  private readonly imported = new Map<string, Promise<Server>>();
  private readonly sender: Sender;
  private closed = false;

  constructor(
    private readonly ctx: BridgeContext,
    private readonly node: Node,
    private readonly settings: ServiceSettings,
  ) {
    this.sender = { origin: label(ctx.origin, "a graph name"), port: new Uint8Array(0) };
  }

  /** The services exported now. */
  get exports(): string[] {
    return [...this.exported.keys()];
  }

  /** The remote services served here now, as `{ origin, service }`. */
  get imports(): { origin: string; service: string }[] {
    return [...this.imported.keys()].map((k) => {
      const [origin, service] = k.split("\u0000");
      return { origin, service };
    });
  }

  /** Exports exactly `services` (local services that the export list allows). */
  async setExports(services: ReadonlySet<string>): Promise<void> {
    for (const [service, e] of this.exported) {
      if (!services.has(service)) {
        this.exported.delete(service);
        // Drained, not dropped: a request already on its way here is answered (NoServerError if the service is gone).
        await e.sub.drain().catch(() => e.sub.unsubscribe());
        await e.done;
        await e.client.close();
      }
    }
    for (const service of services) {
      if (this.closed || this.exported.has(service) || !this.settings.exports.passes(service)) continue;
      const client = await this.node.client(service, { localOnly: true, maxInFlight: 1024 });
      if (this.closed) {
        await client.close();
        return;
      }
      const sub = this.ctx.nc.subscribe(subjectOf(this.ctx.prefix, "s", service), { queue: SERVICE_GROUP });
      this.exported.set(service, { client, sub, done: this.answerAll(service, client, sub) });
    }
  }

  /** Answers the requests of one exported service, each as it comes (they run concurrently). */
  private async answerAll(service: string, client: Client<unknown, unknown>, sub: NatsSubscription): Promise<void> {
    const running = new Set<Promise<void>>();
    for await (const m of sub) {
      // At most MAX_ANSWERING at once: beyond, requests wait in the subscription (NATS's client buffers them).
      if (running.size >= MAX_ANSWERING) await Promise.race(running);
      const p = this.answer(service, client, m).finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.allSettled(running);
  }

  private async answer(service: string, client: Client<unknown, unknown>, m: NatsMsg): Promise<void> {
    const c = this.counters;
    let value: unknown;
    let timeout: number;
    try {
      const e = readEnvelope(m.data);
      if (e.kind !== Kind.Request) throw new ProtocolError(`a bridge message of kind ${e.kind} on the service subject of ${JSON.stringify(service)}`);
      value = decode(e.chunk);
      timeout = e.sequence > 0 ? e.sequence : this.settings.requestTimeout;
    } catch (err) {
      c.malformed++;
      const e = err instanceof PlexusError ? err : new ProtocolError("malformed bridged request", { cause: err });
      this.ctx.report(e);
      if (m.reply) this.reply(m, Kind.Failure, { code: e.code, name: e.name, message: e.message, handler: false } satisfies WireFailure);
      return;
    }
    try {
      const answer = await client.request(value, { timeout });
      c.answered++;
      this.reply(m, Kind.Answer, answer);
    } catch (err) {
      c.answered++;
      c.failed++;
      const f: WireFailure =
        err instanceof RemoteError
          ? { code: err.remoteCode, name: err.remoteName, message: err.message, handler: true }
          : err instanceof PlexusError
            ? { code: err.code, name: err.name, message: err.message, handler: false }
            : { code: ProtocolError.code, name: "ProtocolError", message: String(err), handler: false };
      this.reply(m, Kind.Failure, f);
    }
  }

  /** Answers `m` (a failure that does not fit goes back as `FrameTooLargeError`). */
  private reply(m: NatsMsg, kind: Kind.Answer | Kind.Failure, value: unknown): void {
    if (!m.reply) return;
    let payload: Uint8Array;
    try {
      payload = envelopes(kind, this.sender, 0, value, this.ctx.nc.info?.max_payload ?? 1 << 20, this.settings.maxMessage)[0];
    } catch (err) {
      const e = err instanceof PlexusError ? err : new ProtocolError("cannot encode the answer", { cause: err });
      payload = envelopes(Kind.Failure, this.sender, 0, { code: e.code, name: e.name, message: e.message, handler: false } satisfies WireFailure, 1 << 20, 1 << 20)[0];
    }
    try {
      m.respond(payload);
    } catch (err) {
      this.ctx.report(natsError(err, "answering a bridged request"));
    }
  }

  /** Serves `service` of the graph `origin` here (a server that forwards to NATS), if the import list allows it. */
  async importService(origin: string, service: string): Promise<void> {
    const key = `${origin}\u0000${service}`;
    if (this.closed || this.imported.has(key) || !this.settings.imports.passes(service)) return;
    const p = this.node.remoteServer(service, origin, (req: unknown) => this.forward(service, req));
    this.imported.set(key, p);
    try {
      await p;
    } catch (err) {
      if (this.imported.get(key) === p) this.imported.delete(key);
      this.ctx.report(err instanceof PlexusError ? err : new ProtocolError(`cannot serve ${JSON.stringify(service)} of ${origin} here`, { cause: err }));
    }
  }

  /** Stops serving the services of `origin` that are not in `keep` (all of them without `keep`). */
  async dropImports(origin: string, keep?: ReadonlySet<string>): Promise<void> {
    for (const [key, p] of [...this.imported]) {
      const [o, service] = key.split("\u0000");
      if (o !== origin || keep?.has(service)) continue;
      this.imported.delete(key);
      await p.then((s) => s.close({ linger: 0 })).catch(() => {});
    }
  }

  /**
   * One request of a local client to a remote service: sent to NATS (the service's queue group
   * picks a host), its answer returned. A failure on the way (no responder, a timeout, a lost
   * connection) reaches the client as its own class (`NoServerError`, `TimeoutError`, …); the
   * remote handler's error as the `RemoteError` it would get locally.
   */
  private async forward(service: string, req: unknown): Promise<unknown> {
    const c = this.counters;
    c.forwarded++;
    const timeout = this.settings.requestTimeout;
    let reply: NatsMsg;
    try {
      const [payload] = envelopes(Kind.Request, this.sender, timeout, req, this.ctx.nc.info?.max_payload ?? 1 << 20, this.settings.maxMessage);
      reply = await this.ctx.nc.request(subjectOf(this.ctx.prefix, "s", service), payload, { timeout });
    } catch (err) {
      c.forwardFailed++;
      throw passThrough(natsError(err, `request to ${JSON.stringify(service)} over NATS`));
    }
    let kind: Kind;
    let value: unknown;
    try {
      const e = readEnvelope(reply.data);
      kind = e.kind;
      value = decode(e.chunk);
      if (kind !== Kind.Answer && kind !== Kind.Failure) throw new ProtocolError(`a bridge message of kind ${kind} as an answer`);
    } catch (err) {
      c.forwardFailed++;
      throw passThrough(new ProtocolError(`a malformed answer to a request to ${JSON.stringify(service)} over NATS`, { cause: err }));
    }
    if (kind === Kind.Answer) return value;
    c.forwardFailed++;
    const f = value as Partial<WireFailure> | null;
    const code = typeof f?.code === "string" ? f.code : "ERR_PLEXUS_HANDLER";
    const message = typeof f?.message === "string" ? f.message : "the remote service failed";
    if (f?.handler === true) throw passThrough(new RemoteError(message, code, typeof f.name === "string" ? f.name : "Error"));
    throw passThrough(errorFromWire(code, message));
  }

  /** Stops answering and forwarding. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.exported.values()].map((e) => e.sub.drain().catch(() => e.sub.unsubscribe())));
    await Promise.all([...this.exported.values()].map((e) => e.done));
    await Promise.all([...this.exported.values()].map((e) => e.client.close()));
    this.exported.clear();
  }
}
