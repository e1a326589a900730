/**
 * Components of a pipeline: {@link Unit}s, which do the work, and {@link Collection}s, which hold
 * units and collections and connect them. Both have settings (a schema given to `Unit.with` /
 * `Collection.with`), streams (the {@link Input} and {@link Output} properties they declare) and
 * a placement (where they run).
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import type { Node } from "../node/node.js";
import { enumOption } from "../util/options.js";
import { readSettings, type SettingsOf, type SettingsSchema } from "./settings.js";
import type { Connection, Input, Output } from "./stream.js";

/** Where a component runs: the runner's main thread (default), a worker thread of it, or a process of its own. */
export type Placement = "main" | "worker" | "process";

/** Every {@link Placement}. */
export const PLACEMENTS: readonly Placement[] = ["main", "worker", "process"];

/** No settings. */
export type NoSettings = Record<never, never>;

/** What a component class may declare on its static side. */
export interface ComponentStatics {
  /** The schema of its settings (set by `Unit.with` / `Collection.with`). */
  readonly schema?: SettingsSchema;
  /** Where its instances run unless placed otherwise. */
  readonly placement?: Placement;
}

/** What units and collections share: a name and path in the pipeline, settings, a placement. */
export abstract class Component<S extends object = NoSettings> {
  /** @internal "unit" or "collection" (a plain property, so two copies of the package agree). */
  abstract readonly componentKind: "unit" | "collection";
  /** The component's path in the pipeline (`SYS/LFO`); "" until the pipeline is built. */
  path = "";
  /** @internal Settings given to the constructor and to {@link configure}, not checked yet. */
  given: Partial<S>;
  /** @internal The checked settings, once the pipeline is built (or live settings replaced them). */
  current: Readonly<S> | undefined;
  /** @internal Placement given to {@link place}. */
  placed: Placement | undefined;

  /** @param settings - settings (partial: the rest are the schema's defaults) */
  constructor(settings?: Partial<S>) {
    this.given = { ...settings } as Partial<S>;
  }

  /** @internal The settings schema of this component's class, if any. */
  get schema(): SettingsSchema | undefined {
    return (this.constructor as ComponentStatics).schema;
  }

  /** @internal Where this component was declared to run (by {@link place}, else its class's static `placement`). */
  get declaredPlacement(): Placement | undefined {
    return this.placed ?? (this.constructor as ComponentStatics).placement;
  }

  /**
   * The settings: those given with defaults for the rest, checked and frozen. Before the
   * pipeline runs they are checked when read (a collection reads its own to configure its
   * children); while it runs they are the run's (replaced when changed live).
   */
  get settings(): Readonly<S> {
    return this.current ?? readSettings<S>(this.path || this.constructor.name, this.schema, this.given);
  }

  /** Sets some settings before the pipeline runs (a collection configuring its children). Returns this. */
  configure(settings: Partial<S>): this {
    this.given = { ...this.given, ...settings };
    this.current = undefined;
    return this;
  }

  /** Runs this component (and what it holds) in `placement` unless the run overrides it. Returns this. */
  place(placement: Placement): this {
    this.placed = enumOption("placement", placement, PLACEMENTS, "main", this.constructor.name);
    return this;
  }
}

/** A unit's registered work (read by the runner). */
export interface UnitWork {
  /** The handler of each input handled per message. */
  readonly handlers: { input: Input<unknown>; handler: (value: unknown) => void | Promise<void> }[];
  /** Producers: async iterables whose values go to an output. */
  readonly producers: { output: Output<unknown>; producer: (signal: AbortSignal) => AsyncIterable<unknown> }[];
  /** Long-running tasks. */
  readonly tasks: ((signal: AbortSignal) => Promise<void>)[];
}

/** What the runner gives a running unit. @internal */
export interface UnitControl {
  /** Aborted when the unit is shut down. */
  readonly signal: AbortSignal;
  /** The graph node of the unit's thread. */
  readonly node: Node;
  /** Its work has started: registering more is too late. */
  readonly started: boolean;
  /** The unit is done producing. */
  complete(): void;
  /** The whole pipeline should stop now, normally. */
  terminate(): void;
}

/** A constructor of units with the settings `S` (what `Unit.with` returns). */
export type UnitClass<S extends object> = (new (settings?: Partial<S>) => Unit<S>) & ComponentStatics;

/** A constructor of collections with the settings `S` (what `Collection.with` returns). */
export type CollectionClass<S extends object> = (new (settings?: Partial<S>) => Collection<S>) & ComponentStatics;

/**
 * A unit: declares its streams as properties (`readonly INPUT = input<number>()`), and in
 * {@link initialize} registers its work: {@link subscribe} (a handler per message of an input),
 * {@link produce} (an async generator whose values are published), {@link task} (a long-running
 * function, which may iterate an input: `for await (const v of this.INPUT)`).
 *
 * ```ts
 * class Scale extends Unit.with({ factor: setting.number(2) }) {
 *   readonly INPUT = input<number>();
 *   readonly OUTPUT = output<number>();
 *   override initialize() {
 *     this.subscribe(this.INPUT, (v) => this.OUTPUT.publish(v * this.settings.factor));
 *   }
 * }
 * ```
 */
export class Unit<S extends object = NoSettings> extends Component<S> {
  /** @internal Always "unit". */
  readonly componentKind = "unit";
  /** @internal The work registered by {@link initialize}. */
  readonly work: UnitWork = { handlers: [], producers: [], tasks: [] };
  /** @internal Set by the runner while the unit runs. */
  control: UnitControl | undefined;

  /** The unit class whose settings are `schema`'s: `class LFO extends Unit.with({ freq: setting.number(1) }) {}`. */
  static with<D extends SettingsSchema>(schema: D): UnitClass<SettingsOf<D>> {
    return class extends Unit<SettingsOf<D>> {
      static readonly schema = schema;
    };
  }

  /** Called once where the unit runs, before any message: register the unit's work here. */
  initialize(): void | Promise<void> {}

  /** Called once when the pipeline stops, after the unit's work ended (in dependency order: upstream units first). */
  shutdown(): void | Promise<void> {}

  /** Called when the unit's settings were changed while it runs (`this.settings` is already `next`). */
  onSettings(next: Readonly<S>, previous: Readonly<S>): void | Promise<void> {
    void next;
    void previous;
  }

  /** Aborted when the unit shuts down (producers and tasks should end then). */
  get signal(): AbortSignal {
    return this.running("signal").signal;
  }

  /**
   * The graph node of the thread this unit runs in, for ports the pipeline does not declare:
   * request/response servers and clients, publishers and subscribers of other topics. The unit
   * closes what it made in {@link shutdown}. Only while the unit runs (from `initialize()`).
   */
  protected get node(): Node {
    return this.running("node").node;
  }

  /** Calls `handler` with each message of `input`, one at a time (the next waits for its promise). */
  protected subscribe<T>(input: Input<T>, handler: (value: T) => void | Promise<void>): void {
    this.registering("subscribe");
    this.work.handlers.push({ input: input as Input<unknown>, handler: handler as (value: unknown) => void | Promise<void> });
  }

  /**
   * Publishes on `output` each value `producer` yields (it gets the unit's shutdown signal). The
   * producer is done when it returns; the pipeline ends when every producer is done.
   */
  protected produce<T>(output: Output<T>, producer: (signal: AbortSignal) => AsyncIterable<T>): void {
    this.registering("produce");
    this.work.producers.push({ output: output as Output<unknown>, producer });
  }

  /** Runs `fn` while the unit runs (it gets the unit's shutdown signal); an error it throws stops the pipeline. */
  protected task(fn: (signal: AbortSignal) => Promise<void>): void {
    this.registering("task");
    this.work.tasks.push(fn);
  }

  /** This unit is done producing: its producers stop and count as done. */
  protected complete(): void {
    this.running("complete").complete();
  }

  /** Stops the whole pipeline, normally (like Ctrl-C). */
  protected terminate(): void {
    this.running("terminate").terminate();
  }

  private registering(what: string): void {
    if (this.control?.started === true) throw new InvalidArgumentError(`${this.path}: ${what}() must be called in initialize(), before the unit's work starts`);
  }

  private running(what: string): UnitControl {
    if (this.control === undefined) throw new InvalidArgumentError(`${this.path || this.constructor.name}: ${what} is only available while the unit runs`);
    return this.control;
  }
}

/**
 * A collection: holds units and collections as properties, declares how they connect in
 * {@link connections}, may declare its own inputs and outputs (relayed to and from its children)
 * and configures its children's settings.
 */
export class Collection<S extends object = NoSettings> extends Component<S> {
  /** @internal Always "collection". */
  readonly componentKind = "collection";

  /** The collection class whose settings are `schema`'s. */
  static with<D extends SettingsSchema>(schema: D): CollectionClass<SettingsOf<D>> {
    return class extends Collection<SettingsOf<D>> {
      static readonly schema = schema;
    };
  }

  /** The connections between the streams of this collection and of its children (and global topics). */
  connections(): Connection[] {
    return [];
  }
}
