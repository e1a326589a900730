// The shipped type declarations: a strict TypeScript project that imports the package through
// its exports map (ESM and CommonJS) type-checks against them with library checking on, and
// the internals of the public classes (members tagged @internal, public in the code because
// other modules of the package call them) do not appear in them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

const USER_CODE = `
import { connect, queue, PlexusError, CycleError, TimeoutError, type Sample, type StatsReport } from "plexus";
import { Reader, WriterDeadError, PeerDeadError } from "plexus/zerobuffer";
import { Collection, Unit, UnitError, connect as wire, input, output, setting, start, testUnit } from "plexus/pipeline";
import { Bridge, type BridgeStats, type RemoteHost } from "plexus/bridge";

export async function bridge(): Promise<void> {
  await using b = await Bridge.start({ nats: { servers: "nats://127.0.0.1:4222", user: "u", pass: "p" }, export: ["camera/>"], import: [">"], deny: ["secret/>"] });
  b.on("error", (e) => void e.code).on("host-join", (h: RemoteHost) => void h.topics);
  const s: BridgeStats = b.stats();
  void s.topics.gaps;
}

class Scale extends Unit.with({ factor: setting.number(2, { min: 0 }) }) {
  readonly INPUT = input<number>({ backpressure: "drop-oldest", queue: 4 });
  readonly OUTPUT = output<number>();
  override initialize(): void {
    this.subscribe(this.INPUT, (v) => this.OUTPUT.publish(v * this.settings.factor));
  }
}
class Sys extends Collection {
  readonly A = new Scale({ factor: 3 }).place("worker");
  readonly B = new Scale();
  override connections() {
    return [wire(this.A.OUTPUT, this.B.INPUT)];
  }
}
export async function pipeline(): Promise<void> {
  await using runner = await start(new Sys(), { placement: { "Sys/B": "process" }, signals: false });
  const factor: number = new Scale().settings.factor;
  await using h = await testUnit(new Scale());
  await h.feed(h.unit.INPUT, factor);
  const out: number[] = await h.take(h.unit.OUTPUT, 1);
  await runner.done.catch((e: unknown) => (e instanceof UnitError ? e.path : ""));
  void out;
}

export async function main(): Promise<void> {
  await using node = await connect({ timeout: 1000 });
  await using pub = await node.publisher<{ x: number }>("t");
  await using sub = await node.subscriber<{ x: number }>("t", { backpressure: "drop-oldest" });
  await pub.publish({ x: 1 }, { timeout: 10 });
  const s: Sample<{ x: number }> | null = await sub.receive({ timeout: 10 });
  s?.release();
  await using srv = await node.server<number, number>("svc", (n) => n + 1);
  await using cli = await node.client<number, number>("svc");
  const n: number = await cli.request(1, { signal: AbortSignal.timeout(100) });
  const stats: StatsReport = node.stats();
  await using q = await queue.server({ url: "tcp://127.0.0.1:0" });
  void [n, stats, srv, q, Reader];
  try {
    await node.connect("a", "b");
  } catch (e) {
    if (e instanceof CycleError) console.log(e.code);
    else if (e instanceof WriterDeadError || e instanceof PeerDeadError) console.log(e.message);
    else if (e instanceof TimeoutError || e instanceof PlexusError) console.log(e.name);
  }
}
`;

/** A throw-away project that depends on this package (a symlink in its node_modules). */
function project(kind: "module" | "commonjs"): string {
  const dir = mkdtempSync(join(tmpdir(), "plexus-types-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "user", private: true, type: kind }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        lib: ["es2023", "esnext.disposable"],
        types: ["node"],
      },
      files: ["main.ts"],
    }),
  );
  writeFileSync(join(dir, "main.ts"), USER_CODE);
  // node_modules/plexus is this package, as an installed dependency would be; @types from ours
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(root, join(dir, "node_modules", "plexus"));
  symlinkSync(join(root, "node_modules", "@types"), join(dir, "node_modules", "@types"));
  return dir;
}

test("types: a strict user project type-checks against the shipped declarations (ESM and CommonJS)", async () => {
  for (const kind of ["module", "commonjs"] as const) {
    const dir = project(kind);
    try {
      const r = await run(process.execPath, [tsc, "-p", dir], { cwd: dir }).then(
        () => "",
        (e: { stdout?: string }) => e.stdout ?? String(e),
      );
      assert.equal(r, "", `${kind}: tsc reported\n${r}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("types: internals of the public classes are not in the shipped declarations", () => {
  const dts = (file: string): string => readFileSync(join(root, "dist", "src", file), "utf8");
  for (const [file, internals] of [
    ["node/node.d.ts", ["open("]],
    ["pubsub/subscriber.d.ts", ["register(", "update("]],
    ["pubsub/publisher.d.ts", ["local:", "register(", "create<"]],
    ["errors.d.ts", ["registerWireError", "errorFromWire", "errorToWire", "systemError"]],
  ] as const) {
    const text = dts(file);
    for (const name of internals) assert.ok(!text.includes(name), `${file} declares ${name}`);
  }
});
