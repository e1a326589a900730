// `plexus run <module>` with placements and settings from the command line, `plexus settings`
// reading and changing a unit's settings live in another process, and Ctrl-C ending it all.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GraphServer } from "../src/index.js";
import { plexus, spawnPlexus } from "./helpers/cli.js";

const module = fileURLToPath(new URL("./fixtures/pipeline-module.js", import.meta.url));

test("plexus run places and configures a module's pipeline; plexus settings changes a setting live in its process; Ctrl-C exits 0", async () => {
  const server = await GraphServer.start({ host: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  try {
    const run = spawnPlexus(["run", module, "-a", address, "--place", "Sys/TICK=process", "--set", "Sys/TICK.interval=7"]);
    const inits = [await run.line(20000), await run.line(20000)].sort();
    const tickPid = Number(inits.find((l) => l.startsWith("init Sys/TICK"))?.split(" ")[2]);
    assert.ok(tickPid > 0 && tickPid !== run.proc.pid, `TICK runs in its own process: ${inits.join(" | ")}`);
    assert.equal(inits.find((l) => l.startsWith("init Sys/LOG"))?.split(" ")[2], String(run.proc.pid));
    const read = await plexus(["settings", "Sys/TICK", "-a", address]);
    assert.equal(read.code, 0, read.stderr);
    assert.deepEqual(JSON.parse(read.stdout), { interval: 7, label: "tick" }, "--set reached the unit");
    const changed = await plexus(["settings", "Sys/TICK", "interval=20", "label=fast", "-a", address]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual(JSON.parse(changed.stdout), { interval: 20, label: "fast" });
    assert.equal(await run.line(), `settings Sys/TICK ${tickPid} {"interval":20,"label":"fast"}`, "the unit was told, in its process");
    const graph = await plexus(["graph", "--pipelines", "-a", address]);
    assert.equal(graph.code, 0, graph.stderr);
    const text = graph.stdout;
    assert.match(text, /^flowchart LR\n {2}subgraph c\d+\["Sys"\]\n/, text);
    assert.match(text, new RegExp(`\\["LOG \\(main thread, pid ${run.proc.pid}\\)"\\]`), text);
    assert.match(text, new RegExp(`\\["TICK \\(process, pid ${tickPid}\\) interval=20 label=fast"\\]`), `with its placement and its settings now: ${text}`);
    assert.match(text, /u\d+ -->\|"OUTPUT → INPUT"\| u\d+/, text);
    const bad = await plexus(["settings", "Sys/TICK", "interval=-1", "-a", address]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Sys\/TICK: option "interval" must be a number in 1\.\.1000, got -1/);
    const missing = await plexus(["settings", "Sys/NOPE", "-a", address]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no pipeline unit Sys\/NOPE runs in this graph/);
    run.proc.kill("SIGINT");
    assert.equal(await run.exited, 0, run.stderr());
    const rest: string[] = [];
    for (;;) {
      const l = await run.line(2000).catch(() => undefined);
      if (l === undefined) break;
      rest.push(l);
    }
    assert.deepEqual(rest, [`shutdown Sys/TICK ${tickPid}`, `shutdown Sys/LOG ${run.proc.pid}`]);
  } finally {
    await server.close();
  }
});

test("plexus run: a bad placement fails naming the path; a module that cannot be imported fails", async () => {
  const bad = await plexus(["run", module, "--place", "Sys/NOPE=process", "-a", "127.0.0.1:1"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /placement: no component "Sys\/NOPE"/);
  const none = await plexus(["run", fileURLToPath(new URL("./fixtures/pipeline-sys.js", import.meta.url)).replace("pipeline-sys", "no-such-module")]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /cannot import/);
});
