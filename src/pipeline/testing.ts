/**
 * Testing support: one unit run alone, in this thread, against a GraphServer of its own — feed
 * its inputs, collect its outputs, stop it (its `shutdown()` runs), see its errors.
 *
 * ```ts
 * await using h = await testUnit(new Scale({ factor: 3 }));
 * await h.feed(h.unit.INPUT, 2);
 * assert.deepEqual(await h.take(h.unit.OUTPUT, 1), [6]);
 * ```
 * @module
 */
import { ClosedError, TimeoutError } from "../errors.js";
import { GraphServer } from "../graph/server.js";
import { connect, type Node } from "../node/node.js";
import type { Publisher } from "../pubsub/publisher.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";
import { Deferred } from "../util/wait.js";
import type { Unit } from "./component.js";
import { plan } from "./plan.js";
import { Runner, start } from "./runner.js";
import type { Input, Output } from "./stream.js";

/** Options of {@link testUnit}. */
export interface TestUnitOptions {
  /** Settings over those the unit was given. */
  settings?: object;
  /** How long the unit may take to shut down (ms, default 5000). */
  shutdownTimeout?: number;
}

/** One unit running alone: {@link testUnit}. */
export class UnitHarness<U extends Unit<object>> implements AsyncDisposable {
  private readonly got = new Map<string, unknown[]>();
  private readonly waiters = new Set<() => void>();
  private closing: Promise<void> | undefined;

  private constructor(
    /** The unit under test. */
    readonly unit: U,
    /** The run (its `done` rejects with the unit's error). */
    readonly runner: Runner,
    private readonly node: Node,
    private readonly server: GraphServer,
    private readonly inputs: Map<string, Publisher<unknown>>,
  ) {
    runner.done.catch(() => this.wake());
  }

  /** @internal Use {@link testUnit}. */
  static async start<U extends Unit<object>>(unit: U, opts: TestUnitOptions | undefined): Promise<UnitHarness<U>> {
    const o = readOptions("testUnit", opts);
    const settings = o.object("settings");
    const shutdownTimeout = o.ms("shutdownTimeout", 5000);
    const name = unit.constructor.name || "unit";
    plan(unit, { name, single: true }); // names the streams, so that their topics are known
    const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
    const address = `127.0.0.1:${server.address.port}`;
    const node = await connect({ address, embedded: false, name: `testUnit ${name}` });
    const inputs = new Map<string, Publisher<unknown>>();
    const streams = Object.values(unit).filter((v): v is Input<unknown> | Output<unknown> => typeof v === "object" && v !== null && (v as { owner?: unknown }).owner === unit);
    const harness: { h?: UnitHarness<U> } = {};
    const got = new Map<string, unknown[]>();
    try {
      for (const s of streams) {
        if (s.kind === "input") inputs.set(s.path, await node.publisher(s.topic, { transport: "inproc" }));
        else {
          const list: unknown[] = [];
          got.set(s.path, list);
          const sub = await node.subscriber(s.topic, { queue: 1024 });
          void sub.forEach((sample) => {
            list.push(sample.value);
            harness.h?.wake();
          });
        }
      }
      const runner = await start(unit, { address, node, name, single: true, signals: false, shutdownTimeout, settings: settings === undefined ? undefined : { [name]: settings } });
      const h = new UnitHarness(unit, runner, node, server, inputs);
      for (const [k, v] of got) h.got.set(k, v);
      harness.h = h;
      return h;
    } catch (err) {
      await node.close({ linger: 0 });
      await server.close();
      throw err;
    }
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** Sends `value` to `input` of the unit, as an upstream unit would. */
  async feed<T>(input: Input<T>, value: T, opts?: BlockingOptions): Promise<void> {
    const pub = this.inputs.get(input.path);
    if (pub === undefined) throw new ClosedError(`${input.path || "this input"} is not an input of ${this.unit.path}, or the harness is closed`);
    await pub.publish(value, opts);
  }

  /** What `output` published so far (the values themselves). */
  received<T>(output: Output<T>): T[] {
    return (this.got.get(output.path) ?? []) as T[];
  }

  /**
   * Resolves with the first `count` values `output` published, once there are that many;
   * rejects with `TimeoutError` after `timeout` ms (default 5000), with the unit's `UnitError`
   * if it failed, or `ClosedError` if the harness closed first.
   */
  async take<T>(output: Output<T>, count: number, opts: BlockingOptions = {}): Promise<T[]> {
    checkOptions(opts, "take");
    const list = this.received(output);
    const timeout = opts.timeout ?? 5000;
    const wait = new Deferred<T[]>({ timeout, signal: opts.signal, what: "take", timeoutError: () => new TimeoutError(`${output.path} published ${list.length} of ${count} values within ${timeout} ms`) }, undefined);
    const look = (): void => {
      if (list.length >= count) wait.resolve(list.slice(0, count));
      else if (this.runner.state !== "running") void this.runner.done.then(() => wait.reject(new ClosedError(`${this.unit.path} stopped after ${list.length} of ${count} values`)), (err: unknown) => wait.reject(err));
    };
    this.waiters.add(look);
    look();
    try {
      return await wait.promise;
    } finally {
      this.waiters.delete(look);
    }
  }

  /** Stops the unit (its `shutdown()` runs) and everything the harness made; rejects with the unit's error if it failed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.runner.stop();
        await this.runner.done;
      } finally {
        this.wake();
        for (const p of this.inputs.values()) await p.close({ linger: 0 });
        this.inputs.clear();
        await this.node.close({ linger: 0 });
        await this.server.close();
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Runs `unit` alone in this thread (see {@link UnitHarness}); resolves once its `initialize()` returned. */
export function testUnit<U extends Unit<object>>(unit: U, opts?: TestUnitOptions): Promise<UnitHarness<U>> {
  return UnitHarness.start(unit, opts);
}
