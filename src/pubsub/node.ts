/**
 * A Node: one participant of the graph. Owns every port it made.
 * @module
 */
import { ClosedError } from "../errors.js";
import { GraphClient, type GraphOptions } from "../graph/client.js";
import { checkTopic, type Snapshot } from "../graph/registry.js";
import { Publisher, type PublisherOptions } from "./publisher.js";
import { Subscriber, type SubscriberOptions } from "./subscriber.js";

/** A participant of the graph: `await using node = await connect()`. */
export class Node implements AsyncDisposable {
  private readonly publishers = new Map<string, Publisher<unknown>>();
  private readonly subscribers = new Map<string, Subscriber<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(private readonly graph: GraphClient) {
    graph.onNotify = (id, publishers) => this.subscribers.get(id)?.update(publishers);
  }

  /** @internal Use {@link connect}. */
  static async open(opts: GraphOptions): Promise<Node> {
    return new Node(await GraphClient.connect(opts));
  }

  /** This node's id in the graph. */
  get id(): string {
    return this.graph.node;
  }

  /** True if this process started the GraphServer it uses (the embedded default). */
  get hostsGraph(): boolean {
    return this.graph.embedded !== undefined;
  }

  /** Creates a publisher on `topic`. */
  async publisher<T = unknown>(topic: string, opts: PublisherOptions = {}): Promise<Publisher<T>> {
    this.checkOpen();
    checkTopic(topic);
    const p = await Publisher.create<T>(this.graph, topic, opts, (pub) => this.publishers.delete(pub.id));
    this.publishers.set(p.id, p as Publisher<unknown>);
    return p;
  }

  /** Creates a subscriber on `topic`; it receives from every publisher upstream of `topic`. */
  async subscriber<T = unknown>(topic: string, opts: SubscriberOptions = {}): Promise<Subscriber<T>> {
    this.checkOpen();
    checkTopic(topic);
    const { subscriber, publishers } = await this.graph.request<{ subscriber: string; publishers: [] }>("subscriber.add", { topic });
    const sub = new Subscriber<T>(topic, subscriber, this.graph, opts, (id) => this.publishers.get(id), () => this.subscribers.delete(subscriber));
    this.subscribers.set(subscriber, sub as Subscriber<unknown>);
    try {
      await sub.update(publishers);
    } catch (err) {
      await sub.close();
      throw err;
    }
    return sub;
  }

  /**
   * Adds the edge `from -> to` to the topic graph: subscribers of `to` also receive what is
   * published on `from` (and upstream of it). Cycles are refused (`CycleError`). The edge goes
   * away with this node unless `persistent`.
   */
  async connect(from: string, to: string, opts: { persistent?: boolean } = {}): Promise<void> {
    this.checkOpen();
    await this.graph.request("edge.add", { from: checkTopic(from), to: checkTopic(to), persistent: opts.persistent === true });
  }

  /** Removes the edge `from -> to`. */
  async disconnect(from: string, to: string): Promise<void> {
    this.checkOpen();
    await this.graph.request("edge.remove", { from, to });
  }

  /** The whole graph as the GraphServer sees it. */
  snapshot(): Promise<Snapshot> {
    this.checkOpen();
    return this.graph.request<Snapshot>("snapshot");
  }

  /** Closes every port and leaves the graph. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.subscribers.values()].map((s) => s.close()));
      await Promise.all([...this.publishers.values()].map((p) => p.close()));
      await this.graph.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private checkOpen(): void {
    if (this.closing) throw new ClosedError("node is closed");
  }
}

/**
 * Joins the graph: connects to the GraphServer (`opts.address`, `PLEXUS_GRAPH`, or
 * 127.0.0.1:25978), starting one in this process if none answers on loopback.
 */
export function connect(opts: GraphOptions = {}): Promise<Node> {
  return Node.open(opts);
}
