// The pipeline API in one thread: units tested alone (testUnit), typed connections (a
// mismatched one does not compile), settings, completion, leaky inputs, and every startup
// error a user can make — each a typed error naming the component, nothing left running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GraphServer, connect as join } from "../src/index.js";
import {
  BackpressureError,
  Collection,
  CycleError,
  InvalidArgumentError,
  NotFoundError,
  Unit,
  UnitError,
  connect,
  input,
  output,
  setting,
  start,
  testUnit,
  topic,
} from "../src/pipeline/index.js";

class Scale extends Unit.with({ factor: setting.number(2, { min: -100, max: 100 }), label: setting.oneOf(["a", "b"], "a") }) {
  readonly INPUT = input<number>();
  readonly OUTPUT = output<number>();
  shutdowns = 0;
  override initialize(): void {
    this.subscribe(this.INPUT, (v) => {
      if (Number.isNaN(v)) throw new RangeError("not a number");
      return this.OUTPUT.publish(v * this.settings.factor);
    });
  }
  override shutdown(): void {
    this.shutdowns++;
  }
}

class Count extends Unit.with({ n: setting.int(5, { min: 0 }) }) {
  readonly OUTPUT = output<number>();
  override initialize(): void {
    this.produce(this.OUTPUT, async function* (this: void) {
      for (let i = 0; i < 5; i++) yield i;
    });
  }
}

class Collect extends Unit {
  readonly INPUT = input<number>();
  readonly values: number[] = [];
  override initialize(): void {
    this.task(async () => {
      for await (const v of this.INPUT) this.values.push(v);
    });
  }
}

class Words extends Unit {
  readonly OUTPUT = output<string>();
}

async function graph(): Promise<{ address: string; close(): Promise<void> }> {
  const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  return { address: `127.0.0.1:${server.address.port}`, close: () => server.close() };
}

test("pipeline: testUnit feeds a unit's input, collects its output, runs its shutdown", async () => {
  const unit = new Scale({ factor: 3 });
  const h = await testUnit(unit);
  for (const v of [1, 2, 3]) await h.feed(unit.INPUT, v);
  assert.deepEqual(await h.take(unit.OUTPUT, 3), [3, 6, 9]);
  assert.deepEqual(unit.settings, { factor: 3, label: "a" });
  assert.ok(Object.isFrozen(unit.settings), "settings are frozen for the run");
  await h.close();
  assert.equal(unit.shutdowns, 1);
});

test("pipeline: a unit that throws fails its run with a UnitError naming it, the error and its stack", async () => {
  const unit = new Scale();
  const h = await testUnit(unit);
  await h.feed(unit.INPUT, NaN);
  await assert.rejects(h.take(unit.OUTPUT, 1), (err: unknown) => {
    assert.ok(err instanceof UnitError);
    assert.equal(err.path, "Scale");
    assert.match(err.message, /^Scale: its handler of INPUT threw: RangeError: not a number$/);
    assert.match(err.stack ?? "", /caused by: RangeError: not a number\n\s+at /);
    assert.equal((err.cause as Error).name, "RangeError");
    return true;
  });
  await assert.rejects(h.close(), UnitError);
  assert.equal(unit.shutdowns, 1, "shutdown() still ran");
});

test("pipeline: a collection runs in one thread, the producer completes, the pipeline ends with every value handled", async () => {
  const g = await graph();
  class Sys extends Collection {
    readonly COUNT = new Count();
    readonly SCALE = new Scale({ factor: 10 });
    readonly SINK = new Collect();
    override connections() {
      return [connect(this.COUNT.OUTPUT, this.SCALE.INPUT), connect(this.SCALE.OUTPUT, this.SINK.INPUT)];
    }
  }
  const sys = new Sys();
  const runner = await start(sys, { address: g.address, signals: false });
  assert.deepEqual(
    runner.places.map((p) => [p.path, p.placement, p.pid]),
    [
      ["Sys/COUNT", "main", process.pid],
      ["Sys/SCALE", "main", process.pid],
      ["Sys/SINK", "main", process.pid],
    ],
  );
  await runner.done;
  assert.equal(runner.state, "stopped");
  assert.deepEqual(sys.SINK.values, [0, 10, 20, 30, 40]);
  assert.equal(sys.SCALE.shutdowns, 1);
  await g.close();
});

test("pipeline: a collection's own streams relay to and from its children; global topics join low-level ports", async () => {
  const g = await graph();
  class Inner extends Collection {
    readonly INPUT = input<number>();
    readonly OUTPUT = output<number>();
    readonly SCALE = new Scale();
    override connections() {
      return [connect(this.INPUT, this.SCALE.INPUT), connect(this.SCALE.OUTPUT, this.OUTPUT)];
    }
  }
  class Sys extends Collection.with({ factor: setting.number(5) }) {
    readonly INNER = new Inner();
    constructor() {
      super();
      this.INNER.SCALE.configure({ factor: this.settings.factor }); // a collection sets its children's settings
    }
    override connections() {
      return [connect(topic<number>("pipeline-test/in"), this.INNER.INPUT), connect(this.INNER.OUTPUT, topic<number>("pipeline-test/out"))];
    }
  }
  const node = await join({ address: g.address, embedded: false });
  const sub = await node.subscriber<number>("pipeline-test/out");
  const pub = await node.publisher<number>("pipeline-test/in");
  const runner = await start(new Sys(), { address: g.address, signals: false, settings: { "Sys/INNER/SCALE": { factor: 7 } } });
  await pub.waitForSubscribers(1, { timeout: 5000 });
  await pub.publish(6);
  const s = await sub.receive({ timeout: 5000 });
  assert.equal(s?.value, 42, "run-time settings win over the collection's");
  await runner.stop();
  await runner.done;
  await node.close();
  await g.close();
});

test("pipeline: a mismatched connection does not compile (tsc checks this file: an unused @ts-expect-error fails the build)", () => {
  const words = new Words();
  const scale = new Scale();
  // @ts-expect-error -- a string output cannot feed a number input
  const bad = connect(words.OUTPUT, scale.INPUT);
  const wide = input<number | string>();
  connect(scale.OUTPUT, wide); // a number output may feed an input that takes numbers or strings
  // @ts-expect-error -- but not the other way round
  connect(output<number | string>(), scale.INPUT);
  // @ts-expect-error -- a typed topic is checked the same way
  connect(topic<string>("t"), scale.INPUT);
  assert.equal(bad.from, words.OUTPUT);
});

test("pipeline: bad input is a typed error at startup naming the component, and nothing is left running", async () => {
  const g = await graph();
  const opts = { address: g.address, signals: false };
  class Loop extends Collection {
    readonly A = new Scale();
    readonly B = new Scale();
    override connections() {
      return [connect(this.A.OUTPUT, this.B.INPUT), connect(this.B.OUTPUT, this.A.INPUT)];
    }
  }
  await assert.rejects(start(new Loop(), opts), (e: unknown) => e instanceof CycleError && /Loop: the connections form a cycle: Loop\/A\/OUTPUT -> Loop\/B\/INPUT -> Loop\/B\/OUTPUT -> Loop\/A\/INPUT -> Loop\/A\/OUTPUT/.test(e.message));
  const stray = new Scale();
  class Unknown extends Collection {
    readonly A = new Scale();
    override connections() {
      return [connect(this.A.OUTPUT, stray.INPUT)];
    }
  }
  await assert.rejects(start(new Unknown(), opts), (e: unknown) => e instanceof NotFoundError && /^Unknown: connection 1 \(to\) is a stream of no component/.test(e.message));
  class Backwards extends Collection {
    readonly A = new Scale();
    readonly B = new Scale();
    override connections() {
      return [connect(this.A.INPUT, this.B.INPUT)];
    }
  }
  await assert.rejects(start(new Backwards(), opts), (e: unknown) => e instanceof InvalidArgumentError && /Backwards\/A\/INPUT is an input of a unit/.test(e.message));
  class Big extends Collection {
    readonly A = new Scale({ factor: 1000 });
  }
  await assert.rejects(start(new Big(), opts), (e: unknown) => e instanceof InvalidArgumentError && e.message === 'Big/A: option "factor" must be a number in -100..100, got 1000');
  class Two extends Collection {
    readonly A = new Scale();
  }
  await assert.rejects(start(new Two(), { ...opts, settings: { "Two/A": { factr: 1 } } }), (e: unknown) => e instanceof InvalidArgumentError && /^Two\/A: no setting "factr" \(settings: factor, label\)/.test(e.message));
  await assert.rejects(start(new Two(), { ...opts, placement: { "Two/NOPE": "process" } }), (e: unknown) => e instanceof NotFoundError && /^placement: no component "Two\/NOPE"/.test(e.message));
  await assert.rejects(start(new Two(), { ...opts, placement: { "Two/A": "moon" as "process" } }), (e: unknown) => e instanceof InvalidArgumentError && /"Two\/A" must be one of "main", "worker", "process", got "moon"/.test(e.message));
  class Broken extends Unit {
    readonly OUTPUT = output<number>();
    override initialize(): void {
      throw new Error("no device");
    }
  }
  class WithBroken extends Collection {
    readonly A = new Scale();
    readonly BROKEN = new Broken();
  }
  await assert.rejects(start(new WithBroken(), opts), (e: unknown) => e instanceof UnitError && e.path === "WithBroken/BROKEN" && /initialize\(\) threw: Error: no device/.test(e.message));
  const node = await join({ address: g.address, embedded: false });
  const snap = await node.snapshot();
  assert.deepEqual(
    snap.nodes.map((n) => n.name).filter((n) => n?.startsWith("pipeline")),
    [],
    "no pipeline node is left in the graph",
  );
  assert.deepEqual(snap.edges, [], "no edge is left in the graph");
  await node.close();
  await g.close();
});

test("pipeline: a leaky input (drop-oldest) keeps a fast producer from waiting for a slow consumer, and counts what it dropped", async () => {
  class Slow extends Unit {
    readonly INPUT = input<number>({ backpressure: "drop-oldest", queue: 2 });
    readonly seen: number[] = [];
    override initialize(): void {
      this.subscribe(this.INPUT, async (v) => {
        this.seen.push(v);
        await new Promise((r) => setTimeout(r, 20));
      });
    }
  }
  const unit = new Slow();
  const h = await testUnit(unit);
  for (let i = 0; i < 50; i++) await h.feed(unit.INPUT, i, { timeout: 1000 });
  await new Promise((r) => setTimeout(r, 150));
  const dropped = unit.INPUT.takeMissed();
  assert.ok(dropped > 0, "messages were dropped");
  await h.close();
  assert.equal(unit.seen.length + dropped, 50, "every message was either handled or counted as dropped");
  assert.equal(unit.seen.at(-1), 49, "the newest message is kept");
  assert.throws(() => input({ backpressure: "leaky" as "block" }), (e: unknown) => e instanceof InvalidArgumentError && /input: option "backpressure" must be one of "block", "drop-oldest", "fail"/.test(e.message));
});

test("pipeline: an input with policy fail refuses what does not fit: the upstream publish fails with BackpressureError", async () => {
  class Stuck extends Unit {
    readonly INPUT = input<number>({ backpressure: "fail", queue: 1 });
    override initialize(): void {
      this.subscribe(this.INPUT, () => new Promise<void>((r) => setTimeout(r, 200)));
    }
  }
  const unit = new Stuck();
  const h = await testUnit(unit);
  await h.feed(unit.INPUT, 1); // taken by the handler
  await h.feed(unit.INPUT, 2); // queued
  await assert.rejects(h.feed(unit.INPUT, 3), (e: unknown) => e instanceof BackpressureError);
  await h.close();
});

test("pipeline: complete() ends a unit's producing, terminate() the whole pipeline; single mode ignores placements", async () => {
  const g = await graph();
  class Forever extends Unit {
    readonly OUTPUT = output<number>();
    override initialize(): void {
      this.produce(this.OUTPUT, async function* (signal) {
        for (let i = 0; !signal.aborted; i++) {
          yield i;
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    }
  }
  class StopAt extends Unit.with({ at: setting.int(5), how: setting.oneOf(["complete", "terminate"], "terminate") }) {
    readonly INPUT = input<number>();
    readonly OUTPUT = output<number>();
    n = 0;
    override initialize(): void {
      this.subscribe(this.INPUT, (v) => {
        if (++this.n === this.settings.at) this.terminate();
        return this.OUTPUT.publish(v);
      });
    }
  }
  class Sys extends Collection {
    readonly SRC = new Forever().place("process");
    readonly STOP = new StopAt().place("worker");
    override connections() {
      return [connect(this.SRC.OUTPUT, this.STOP.INPUT)];
    }
  }
  const sys = new Sys();
  const runner = await start(sys, { address: g.address, signals: false, single: true });
  assert.deepEqual(new Set(runner.places.map((p) => `${p.placement} ${p.pid}`)), new Set([`main ${process.pid}`]));
  await runner.done; // terminate() at the 5th message
  assert.ok(sys.STOP.n >= 5);

  class Finite extends Unit {
    readonly OUTPUT = output<number>();
    produced = 0;
    override initialize(): void {
      this.produce(this.OUTPUT, (signal) => this.count(signal));
    }
    async *count(signal: AbortSignal): AsyncGenerator<number> {
      for (let i = 0; !signal.aborted; i++) {
        this.produced++;
        if (i === 3) this.complete();
        yield i;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  }
  const finite = new Finite();
  const r2 = await start(finite, { address: g.address, signals: false });
  await r2.done; // complete() of the only producer ends the pipeline
  assert.ok(finite.produced >= 4 && finite.produced <= 5, `produced ${finite.produced}`);
  await g.close();
});

test("pipeline: runner.configure changes a unit's settings live, checked, and the unit is told", async () => {
  const g = await graph();
  const told: [number, number][] = [];
  class Live extends Unit.with({ gain: setting.number(1, { min: 0, max: 10 }) }) {
    readonly OUTPUT = output<number>();
    override onSettings(next: { gain: number }, previous: { gain: number }): void {
      told.push([previous.gain, next.gain]);
    }
  }
  const unit = new Live();
  const runner = await start(unit, { address: g.address, signals: false });
  assert.deepEqual(await runner.configure("Live", { gain: 4 }), { gain: 4 });
  assert.deepEqual(unit.settings, { gain: 4 });
  assert.ok(Object.isFrozen(unit.settings));
  assert.deepEqual(told, [[1, 4]]);
  await assert.rejects(runner.configure("Live", { gain: 11 }), (e: unknown) => e instanceof InvalidArgumentError && e.message === 'Live: option "gain" must be a number in 0..10, got 11');
  await assert.rejects(runner.configure("Nope", { gain: 1 }), NotFoundError);
  assert.deepEqual(unit.settings, { gain: 4 }, "a refused change changes nothing");
  await runner.stop();
  await runner.done;
  await g.close();
});

test("pipeline: work registered after initialize() is refused (it would never run)", async () => {
  class Late extends Unit {
    readonly INPUT = input<number>();
    override initialize(): void {
      this.task(async () => this.subscribe(this.INPUT, () => {}));
    }
  }
  const h = await testUnit(new Late());
  await assert.rejects(h.close(), (e: unknown) => e instanceof UnitError && /^Late: a task threw: InvalidArgumentError: Late: subscribe\(\) must be called in initialize\(\)/.test(e.message));
});

test("pipeline: streams given a topic publish and subscribe on it by name (no edge, the value itself in one thread), still stop in dependency order; a unit's node serves what the pipeline does not declare; its settings service describes it", async () => {
  const g = await graph();
  const stopped: string[] = [];
  let all: () => void = () => {};
  const five = new Promise<void>((resolve) => (all = resolve));
  class Src extends Unit {
    readonly OUTPUT = output<number>({ topic: "named/raw" });
    override initialize(): void {
      this.produce(this.OUTPUT, async function* (signal: AbortSignal) {
        for (let i = 0; i < 5; i++) yield i;
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      });
    }
    override shutdown(): void {
      stopped.push("SRC");
    }
  }
  class Sink extends Unit {
    readonly INPUT = input<number>({ topic: "named/raw" });
    readonly values: number[] = [];
    links: string[] = [];
    private server: { close(): Promise<void> } | undefined;
    override async initialize(): Promise<void> {
      this.server = await this.node.server<number, number>("named/double", (n) => 2 * n);
      this.subscribe(this.INPUT, (v) => {
        this.links = (this.INPUT.port?.transports ?? []).map((t) => t.transport);
        if (this.values.push(v) === 5) all();
      });
    }
    override async shutdown(): Promise<void> {
      stopped.push("SINK");
      await this.server?.close();
    }
  }
  class Sys extends Collection {
    readonly SINK = new Sink();
    readonly SRC = new Src();
    override connections() {
      return [connect(this.SRC.OUTPUT, this.SINK.INPUT)];
    }
  }
  await assert.rejects(start(new Sys(), { address: g.address, signals: false, names: { "Sys/SRC": "source" } }), (e: unknown) => e instanceof NotFoundError && /names: no worker or process is placed at "Sys\/SRC"/.test(e.message));
  assert.throws(() => input({ topic: "has space" }), (e: unknown) => e instanceof InvalidArgumentError && /option "topic" must be a topic name/.test(e.message));
  const sys = new Sys();
  const runner = await start(sys, { address: g.address, signals: false });
  const node = await join({ address: g.address, embedded: false });
  await five;
  assert.deepEqual(sys.SINK.values, [0, 1, 2, 3, 4]);
  assert.deepEqual(sys.SINK.links, ["inproc"]);
  const snap = await node.snapshot();
  assert.deepEqual(snap.edges, [], "one topic: no edge");
  assert.ok(snap.topics.includes("named/raw") && !snap.topics.some((t) => t.startsWith("Sys/SRC/")), snap.topics.join(", "));
  const double = await node.client<number, number>("named/double");
  assert.equal(await double.request(21, { timeout: 5000 }), 42);
  await double.close();
  const about = await node.client<{ describe: boolean }, { placement: string; pid: number; streams: unknown[] }>("Sys/SINK#settings");
  const d = await about.request({ describe: true }, { timeout: 5000 });
  assert.deepEqual([d.placement, d.pid, d.streams], ["main", process.pid, [{ name: "INPUT", kind: "input", topic: "named/raw" }]]);
  await about.close();
  await runner.stop();
  await runner.done;
  assert.deepEqual(stopped, ["SRC", "SINK"], "upstream first");
  await node.close();
  await g.close();
});
