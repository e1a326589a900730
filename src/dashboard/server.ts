/**
 * The dashboard: a static page and a WebSocket, served over HTTP next to a GraphServer. Every
 * 500 ms it pushes the graph and its traffic to each page; a page may watch one topic, whose
 * messages it then receives (summarized) with their latency.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { ConnectionOptions } from "node:tls";
import { timingSafeEqual } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { AccessDeniedError, InvalidArgumentError } from "../errors.js";
import type { Snapshot } from "../graph/registry.js";
import type { GraphStats } from "../graph/stats.js";
import { checkTopic } from "../graph/registry.js";
import { connect, type Node } from "../node/node.js";
import type { Subscriber } from "../pubsub/subscriber.js";
import { isLoopback } from "../net/loopback.js";
import { parseAddress } from "../graph/client.js";
import { MIN_TOKEN } from "../graph/server.js";
import { readOptions } from "../util/options.js";
import { PAGE } from "./page.js";
import { unitOfService, type UnitDescription } from "../graph/units.js";
import { describeUnits, pipelinePicture, type PipelinePicture } from "./pipelines.js";
import { numbersOf, summarize } from "./summary.js";

/** Where the dashboard reads the graph: a GraphServer, or anything answering the same two questions. */
export interface DashboardSource {
  /** The graph. */
  snapshot(): Snapshot | Promise<Snapshot>;
  /** Its traffic. */
  stats(): GraphStats | Promise<GraphStats>;
}

/** Options of {@link Dashboard.start}. */
export interface DashboardOptions {
  /** The graph to show (a GraphServer works as is). */
  source: DashboardSource;
  /** `host:port` of that GraphServer, for the subscriber that taps a watched topic. */
  graphAddress: string;
  /** Access token of the GraphServer, if it requires one. */
  graphToken?: string;
  /** TLS options to reach that GraphServer, if it serves TLS (e.g. `ca` for a private authority). */
  graphTls?: ConnectionOptions;
  /** Address to bind (default 127.0.0.1). Anything but loopback requires `token`. */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Token the page must present (`?token=`); required off loopback. */
  token?: string;
  /** Push period in ms (default 500). */
  interval?: number;
}

/** One message of a watched topic as the page receives it. */
interface TapItem {
  seq: number;
  at: number;
  latency?: number;
  numbers: Record<string, number>;
  summary: string;
}

/** A subscriber on a watched topic, shared by the pages watching it. */
interface Tap {
  sub: Subscriber;
  watchers: Set<WebSocket>;
  items: TapItem[];
  latencies: number[];
  count: number;
}

const now = (): number => performance.timeOrigin + performance.now();

/** The dashboard server. `await using dash = await Dashboard.start({ source: graphServer, graphAddress })`. */
export class Dashboard implements AsyncDisposable {
  /** The page's URL (with the token, if one is required). */
  readonly url: string;
  private readonly taps = new Map<string, Tap>();
  private readonly watching = new Map<WebSocket, string>();
  private node: Promise<Node> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private closing: Promise<void> | undefined;
  /** The units' descriptions last read (`key`: their settings services then), and when. */
  private about: { key: string; at: number; units: Map<string, UnitDescription> } | undefined;
  private describing: Promise<void> | undefined;

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly opts: DashboardOptions,
    url: string,
  ) {
    this.url = url;
  }

  /** Starts serving. Binding off loopback without a token throws AccessDeniedError. */
  static async start(opts: DashboardOptions): Promise<Dashboard> {
    if (opts === undefined) throw new InvalidArgumentError("Dashboard.start: the options { source, graphAddress, ... } are required");
    const o = readOptions("Dashboard.start", opts);
    const source = o.object("source", "a GraphServer or an object with snapshot() and stats()");
    if (source === undefined || typeof source.snapshot !== "function" || typeof source.stats !== "function") {
      throw o.error("source", "a GraphServer or an object with snapshot() and stats()");
    }
    const graphAddress = o.string("graphAddress");
    try {
      parseAddress(graphAddress as string);
    } catch {
      throw o.error("graphAddress", "the GraphServer's address (tcp://host:port, tls://host:port or host:port)");
    }
    o.string("graphToken");
    o.object("graphTls", "an object of TLS options");
    const host = o.string("host", 1) ?? "127.0.0.1";
    const port = o.int("port", 0, 0, 65535);
    const token = o.string("token", MIN_TOKEN);
    const interval = o.ms("interval", 500);
    if (!isLoopback(host) && !token) throw new AccessDeniedError(`serving the dashboard on ${host} (not loopback) requires a token`);
    const ref: { dash?: Dashboard } = {};
    const http = createServer((req, res) => ref.dash?.serve(req, res));
    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
    http.on("upgrade", (req, socket, head) => {
      if (!ref.dash?.allowed(req) || new URL(req.url ?? "/", "http://x").pathname !== "/ws") {
        socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => ref.dash?.accept(ws));
    });
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(port, host, () => {
        http.off("error", reject);
        resolve();
      });
    });
    const addr = http.address();
    const bound = typeof addr === "object" && addr ? addr.port : 0;
    const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
    const url = `http://${shown}:${bound}/${token ? `?token=${encodeURIComponent(token)}` : ""}`;
    ref.dash = new Dashboard(http, wss, opts, url);
    ref.dash.timer = setInterval(() => void ref.dash?.push(), interval);
    return ref.dash;
  }

  /** Stops serving, closes the pages and the taps. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      for (const ws of this.wss.clients) ws.terminate();
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http.close(() => resolve()));
      for (const tap of this.taps.values()) await tap.sub.close();
      await this.describing;
      this.taps.clear();
      const node = await this.node?.catch(() => undefined);
      await node?.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private allowed(req: IncomingMessage): boolean {
    const token = this.opts.token;
    if (token === undefined) return true;
    const given = Buffer.from(new URL(req.url ?? "/", "http://x").searchParams.get("token") ?? "");
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (!this.allowed(req)) {
      res.writeHead(401, { "content-type": "text/plain" }).end("a token is required: open the URL the server printed\n");
      return;
    }
    if (req.method !== "GET") {
      res.writeHead(405).end();
      return;
    }
    const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
    if (path === "/") {
      res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8", "content-security-policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'" }).end(PAGE);
    } else if (path === "/api/state") {
      void this.state().then(
        (s) => res.writeHead(200, { ...headers, "content-type": "application/json" }).end(JSON.stringify(s)),
        (err: unknown) => res.writeHead(503, { "content-type": "text/plain" }).end(String(err)),
      );
    } else res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }

  private async state(): Promise<{ type: "state"; at: number; snapshot: Snapshot; stats: GraphStats; pipelines: PipelinePicture }> {
    const [snapshot, stats] = await Promise.all([this.opts.source.snapshot(), this.opts.source.stats()]);
    return { type: "state", at: Date.now(), snapshot, stats, pipelines: await this.pipelines(snapshot) };
  }

  /** The node the dashboard joins the graph with (made when first needed). */
  private graphNode(): Promise<Node> {
    this.node ??= connect({ address: this.opts.graphAddress, embedded: false, name: "dashboard", token: this.opts.graphToken, tls: this.opts.graphTls });
    return this.node;
  }

  /**
   * The pipelines of `snapshot`, units grouped by collection with their placement and settings.
   * The units are asked to describe themselves when they change, else every 3 s at most (a push
   * does not wait for that, except the first time a set of units is seen).
   */
  private async pipelines(snapshot: Snapshot): Promise<PipelinePicture> {
    const key = [...new Set(snapshot.servers.map((s) => s.service).filter((s) => unitOfService(s) !== undefined))].sort().join("\n");
    if (key === "") return pipelinePicture(snapshot);
    if ((this.about?.key !== key || Date.now() - this.about.at > 3000) && this.describing === undefined && !this.closing) {
      this.describing = (async () => {
        const units = await describeUnits(await this.graphNode(), snapshot);
        this.about = { key, at: Date.now(), units };
      })()
        .catch(() => {}) // the graph is unreachable now: the next push tries again
        .finally(() => (this.describing = undefined));
    }
    if (this.about?.key !== key) await this.describing;
    return pipelinePicture(snapshot, this.about?.units);
  }

  private accept(ws: WebSocket): void {
    ws.on("message", (data) => {
      let m: { type?: unknown; topic?: unknown };
      try {
        m = JSON.parse(String(data)) as typeof m;
      } catch {
        return; // not JSON: ignored, the page keeps its connection
      }
      if (m.type === "watch") void this.watch(ws, m.topic === null ? null : m.topic);
    });
    ws.on("close", () => void this.watch(ws, null));
    ws.on("error", () => ws.terminate());
    void this.state().then((s) => ws.send(JSON.stringify(s)), () => {});
  }

  /** Moves `ws` to watching `topic` (null: nothing). */
  private async watch(ws: WebSocket, topic: unknown): Promise<void> {
    const before = this.watching.get(ws);
    if (before !== undefined) {
      this.watching.delete(ws);
      const tap = this.taps.get(before);
      tap?.watchers.delete(ws);
      if (tap && tap.watchers.size === 0) {
        this.taps.delete(before);
        await tap.sub.close();
      }
    }
    if (topic === null || topic === undefined || this.closing) return;
    try {
      checkTopic(topic);
    } catch (err) {
      ws.send(JSON.stringify({ type: "error", message: (err as Error).message }));
      return;
    }
    const name = topic as string;
    this.watching.set(ws, name);
    let tap = this.taps.get(name);
    if (tap === undefined) {
      const node = await this.graphNode();
      if (this.watching.get(ws) !== name || this.closing) return;
      tap = this.taps.get(name);
      if (tap === undefined) {
        const sub = await node.subscriber(name, { backpressure: "drop-oldest", queue: 64 });
        const created: Tap = { sub, watchers: new Set(), items: [], latencies: [], count: 0 };
        tap = created;
        this.taps.set(name, created);
        void sub.forEach((s) => {
          const at = now();
          const v = s.value as { sentAt?: unknown } | null;
          const latency = v !== null && typeof v === "object" && typeof v.sentAt === "number" ? at - v.sentAt : undefined;
          created.count++;
          if (latency !== undefined && created.latencies.length < 5000) created.latencies.push(latency);
          created.items.push({ seq: s.sequence, at: Date.now(), latency, numbers: numbersOf(s.value), summary: summarize(s.value, 8, 400) });
          if (created.items.length > 50) created.items.shift();
        });
      }
    }
    tap.watchers.add(ws);
  }

  /** Sends the state to every page, and each watched topic's new messages to its watchers. */
  private async push(): Promise<void> {
    if (this.wss.clients.size === 0) return;
    let text: string;
    try {
      text = JSON.stringify(await this.state());
    } catch {
      return; // the graph is unreachable now; the next push tries again
    }
    for (const ws of this.wss.clients) if (ws.readyState === ws.OPEN && ws.bufferedAmount < 1 << 20) ws.send(text);
    for (const [topic, tap] of this.taps) {
      const msg = JSON.stringify({ type: "samples", topic, count: tap.count, items: tap.items.slice(-20), latencies: tap.latencies });
      tap.items = [];
      tap.latencies = [];
      tap.count = 0;
      for (const ws of tap.watchers) if (ws.readyState === ws.OPEN && ws.bufferedAmount < 1 << 20) ws.send(msg);
    }
  }
}
