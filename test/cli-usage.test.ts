/**
 * Every usage error of the `plexus` command — a bad topic, a bad number, a value an option does
 * not take, a malformed address — exits 2 (docs/cli.md), before the command connects, listens or
 * starts anything; and the built command is executable and runs through its shebang. The real
 * command (dist/src/cli/main.js) in a child process, one test per command family.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { constants, accessSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, freePort, plexus } from "./helpers/cli.js";

/** Runs each of `cases` and checks it exits 2 with a one-line reason matching its pattern (no stack trace). */
async function usageErrors(cases: [string[], RegExp][], env: NodeJS.ProcessEnv): Promise<void> {
  for (const [args, reason] of cases) {
    const r = await plexus(args, env, 15_000);
    assert.equal(r.code, 2, `plexus ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, reason, `plexus ${args.join(" ")}`);
    assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
  }
}

/** No GraphServer answers there: a usage error must come first (not exit 3). */
const nobody = async (): Promise<NodeJS.ProcessEnv> => ({ PLEXUS_GRAPH: `127.0.0.1:${await freePort()}` });

test("cli usage: pub and echo — a bad topic or count exits 2, before connecting", async () => {
  await usageErrors(
    [
      [["pub", "bad topic", "1"], /^plexus pub: a topic is 1\.\.256 characters without spaces/],
      [["echo", "bad topic"], /^plexus echo: a topic is 1\.\.256 characters without spaces/],
      [["pub", "t", "1", "--count", "2x"], /^plexus pub: --count must be an integer >= 1, got "2x"/],
      [["echo", "t", "--count", "0"], /^plexus echo: --count must be an integer >= 1/],
    ],
    await nobody(),
  );
});

test("cli usage: graph, top and status — a malformed address (option or PLEXUS_GRAPH) or count exits 2", async () => {
  await usageErrors(
    [
      [["graph", "--address", "nowhere"], /^plexus graph: --address: not a GraphServer address/],
      [["status", "--address", "127.0.0.1:99999"], /^plexus status: --address: not a GraphServer address/],
      [["top", "-n", "1.5"], /^plexus top: --iterations must be an integer >= 1/],
      [["top", "--interval", "soon"], /^plexus top: --interval must be a number in 50\.\./],
    ],
    await nobody(),
  );
  await usageErrors([[["graph"], /^plexus graph: PLEXUS_GRAPH: not a GraphServer address/]], { PLEXUS_GRAPH: "no-port" });
});

test("cli usage: serve, start and stop — bad option values exit 2 before anything listens or is stopped", async () => {
  const state = mkdtempSync(join(tmpdir(), "plexus-usage-"));
  try {
    const env = { ...(await nobody()), PLEXUS_STATE_DIR: state };
    await usageErrors(
      [
        // (serve used to start its GraphServer first, then stay up after the complaint)
        [["serve", "--dashboard", "x"], /^plexus serve: --dashboard must be an integer in 0\.\.65535, got "x"/],
        [["serve", "--address", "nowhere"], /^plexus serve: --address: not a GraphServer address/],
        [["serve", "--tls-key", "key.pem"], /^plexus serve: --tls-key and --tls-cert go together/],
        [["start", "--wait", "later"], /^plexus start: --wait must be an integer >= 0/],
        [["start", "--dashboard", "70000"], /^plexus start: --dashboard must be an integer in 0\.\.65535/],
        [["stop", "--wait", "later"], /^plexus stop: --wait must be an integer >= 0/],
      ],
      env,
    );
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

test("cli usage: demo — a malformed address or dashboard port exits 2 before it starts a GraphServer", async () => {
  await usageErrors(
    [
      [["demo", "--address", "nowhere"], /^plexus demo: --address: not a GraphServer address/],
      [["demo", "--dashboard", "x"], /^plexus demo: --dashboard must be an integer in 0\.\.65535/],
      [["demo", "--duration", "0"], /^plexus demo: --duration must be a number >= /],
    ],
    await nobody(),
  );
});

test("cli: the built command is executable and runs through its shebang", async () => {
  accessSync(CLI, constants.X_OK);
  assert.ok((statSync(CLI).mode & 0o111) === 0o111, "executable by everyone who can read it");
  assert.match(readFileSync(CLI, "utf8"), /^#!\/usr\/bin\/env node\n/);
  const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  const out = await new Promise<string>((resolve, reject) => execFile(CLI, ["--version"], (err, stdout) => (err ? reject(err) : resolve(stdout))));
  assert.equal(out.trim(), version);
});
