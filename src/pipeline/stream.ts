/**
 * Streams: the typed inputs and outputs of units and collections, global topics, and the
 * connections between them. The message type travels in the TypeScript type of each stream, so
 * `connect(lfo.OUTPUT, logger.INPUT)` does not compile when the output's type is not assignable
 * to the input's. At run time each stream is a topic of the graph (its path, `SYS/LFO/OUTPUT`)
 * and each connection an edge between two topics.
 * @module
 */
import { ClosedError } from "../errors.js";
import type { Publisher } from "../pubsub/publisher.js";
import type { Subscriber } from "../pubsub/subscriber.js";
import { checkTopic } from "../graph/registry.js";
import { PORT_TRANSPORTS } from "../transport/transport.js";
import { BACKPRESSURE_POLICIES } from "../util/async-queue.js";
import type { BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";

/** The type a stream carries out (type-only: no value exists). */
export declare const OUT_TYPE: unique symbol;
/** The type a stream takes in (type-only: no value exists). */
export declare const IN_TYPE: unique symbol;

/** Something messages of type `T` come from: an output, a collection's input (inside it), a topic. */
export interface Source<T> {
  /** The message type (type-only). */
  readonly [OUT_TYPE]?: T;
}

/** Something that takes messages of type `T`: an input, a collection's output (inside it), a topic. */
export interface Sink<T> {
  /** The message type (type-only). */
  readonly [IN_TYPE]?: (value: T) => void;
}

/** What an input does when its queue is full: the publisher waits, the oldest message is dropped, or the publish fails. */
export type Backpressure = "block" | "drop-oldest" | "fail";

/** Options of {@link input}. */
export interface InputOptions {
  /**
   * When this input's queue is full: `block` (default: the upstream publisher waits),
   * `drop-oldest` (the oldest queued message is dropped and counted; ezmsg's "leaky"), or `fail`
   * (the upstream publish fails with `BackpressureError`).
   */
  backpressure?: Backpressure;
  /** Messages queued before the policy applies (default 16). */
  queue?: number;
  /**
   * The topic this input subscribes to (default: its path, `SYS/VIEW/INPUT`). A plain name
   * (`camera/frames`) makes it a subscriber of that topic of the graph: a connection from an
   * output of the same topic needs no edge, and anything published there reaches it.
   */
  topic?: string;
  /** Take messages only over this transport (tests, benchmarks, demonstrations): see `node.subscriber()`. */
  transport?: "inproc" | "shm" | "tcp";
}

/** Options of {@link output}. */
export interface OutputOptions {
  /** Shared-memory ring capacity in bytes (default 4 MiB; the largest message is half). */
  capacity?: number;
  /** How long a publish may wait for a blocking input (ms, default 5000). */
  timeout?: number;
  /**
   * The topic this output publishes on (default: its path, `SYS/LFO/OUTPUT`). A plain name
   * (`camera/frames`) publishes straight on that topic of the graph, where low-level
   * subscribers, other pipelines and `plexus echo` find it by name.
   */
  topic?: string;
}

/** What every stream has: its kind and, once the pipeline is named, its path. */
abstract class Stream {
  /** @internal The name of the property that holds it, set when the pipeline is built. */
  name = "";
  /** @internal The component that declares it. */
  owner: object | undefined;
  /** The stream's path (`SYS/LFO/OUTPUT`); "" until the pipeline is built. */
  path = "";
  /** @internal The topic given in the options, if any. */
  named: string | undefined;
  /** What kind of stream this is. */
  abstract readonly kind: "input" | "output";

  /** The topic of the graph this stream is: the one given in its options, else its path. */
  get topic(): string {
    return this.named ?? this.path;
  }
}

/**
 * An input stream of a unit (it receives) or of a collection (it relays to the collection's
 * children). In a unit: handle it with `this.subscribe(INPUT, handler)`, or iterate it in a
 * task: `for await (const value of this.INPUT)`.
 */
export class Input<T> extends Stream implements Source<T>, Sink<T>, AsyncIterable<T> {
  declare readonly [OUT_TYPE]?: T;
  declare readonly [IN_TYPE]?: (value: T) => void;
  /** Always "input". */
  readonly kind = "input";
  /** @internal The checked options. */
  readonly options: { backpressure: Backpressure; queue: number; transport: "inproc" | "shm" | "tcp" | undefined };
  /** @internal The subscriber, while the unit runs. */
  port: Subscriber<T> | undefined;
  /** @internal A consumer (a handler or a loop) reads it. */
  consumed = false;

  /** @internal Use {@link input}. */
  constructor(opts: InputOptions | undefined) {
    super();
    const o = readOptions("input", opts);
    this.options = { backpressure: o.oneOf("backpressure", BACKPRESSURE_POLICIES, "block"), queue: o.int("queue", 16, 1, 2 ** 31 - 1), transport: o.oneOf("transport", PORT_TRANSPORTS, undefined) };
    this.named = topicOption(o.string("topic", 1), o.error.bind(o));
  }

  /** Messages dropped at this input (policy `drop-oldest`) since the last call. */
  takeMissed(): number {
    return this.port?.takeMissed() ?? 0;
  }

  /** The values received, one at a time (a unit's input, while it runs; one consumer per input). */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    const it = running(this.port, this.path)[Symbol.asyncIterator]();
    this.consumed = true;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done === true) return;
        yield r.value.value;
      }
    } finally {
      await it.return?.();
    }
  }
}

/** An output stream of a unit (it publishes) or of a collection (it relays what its children send to it). */
export class Output<T> extends Stream implements Source<T>, Sink<T> {
  declare readonly [OUT_TYPE]?: T;
  declare readonly [IN_TYPE]?: (value: T) => void;
  /** Always "output". */
  readonly kind = "output";
  /** @internal The checked options. */
  readonly options: { capacity: number | undefined; timeout: number | undefined };
  /** @internal The publisher, while the unit runs. */
  port: Publisher<T> | undefined;

  /** @internal Use {@link output}. */
  constructor(opts: OutputOptions | undefined) {
    super();
    const o = readOptions("output", opts);
    this.options = { capacity: o.int("capacity", undefined, 1, 2 ** 31 - 1), timeout: opts?.timeout === undefined ? undefined : o.timeout("timeout", 5000) };
    this.named = topicOption(o.string("topic", 1), o.error.bind(o));
  }

  /**
   * Publishes `value` to every input connected downstream (the value itself in this thread, a
   * shared-memory ring to other threads and processes). Waits, bounded by `timeout` and
   * `signal`, while a blocking input is full. Only while the unit runs.
   */
  publish(value: T, opts?: BlockingOptions): Promise<void> {
    return running(this.port, this.path).publish(value, opts);
  }
}

/** A stream's `topic` option, checked as a topic name. */
function topicOption(topic: string | undefined, error: (name: "topic", accepted: string) => Error): string | undefined {
  if (topic === undefined) return undefined;
  try {
    return checkTopic(topic);
  } catch {
    throw error("topic", "a topic name (1..256 characters, no spaces or control characters)");
  }
}

/** The port of a stream while its unit runs, else a `ClosedError` naming the stream. */
function running<P>(port: P | undefined, path: string): P {
  if (port === undefined) throw new ClosedError(`${path === "" ? "this stream" : JSON.stringify(path)} is not running (a unit's streams work between its initialize() and shutdown())`);
  return port;
}

/**
 * A global topic: a pipeline's connection to or from a plain topic of the graph, which
 * low-level publishers and subscribers, other pipelines and `plexus echo` can join.
 */
export class Topic<T> implements Source<T>, Sink<T> {
  declare readonly [OUT_TYPE]?: T;
  declare readonly [IN_TYPE]?: (value: T) => void;
  /** Always "topic". */
  readonly kind = "topic";
  /** @internal Use {@link topic}. */
  constructor(
    /** The topic's name: also its path. */
    readonly path: string,
  ) {}
}

/** An input of type `T` (a unit's or a collection's). */
export function input<T>(opts?: InputOptions): Input<T> {
  return new Input<T>(opts);
}

/** An output of type `T` (a unit's or a collection's). */
export function output<T>(opts?: OutputOptions): Output<T> {
  return new Output<T>(opts);
}

/** The global topic `name`, carrying messages of type `T`. */
export function topic<T>(name: string): Topic<T> {
  return new Topic<T>(name);
}

/** A connection: everything published on `from` reaches `to`. Made by {@link connect}. */
export interface Connection {
  /** Where messages come from. */
  readonly from: Input<unknown> | Output<unknown> | Topic<unknown>;
  /** Where they go. */
  readonly to: Input<unknown> | Output<unknown> | Topic<unknown>;
}

/**
 * Connects `from` to `to`. The type of what `from` carries must be assignable to what `to`
 * takes, or this does not compile.
 */
export function connect<T>(from: Source<T>, to: Sink<T>): Connection {
  return { from: from as Connection["from"], to: to as Connection["to"] };
}
