/**
 * Optional peer dependencies (`mqtt`, `@grpc/grpc-js`, `@nats-io/transport-node`): declared optional in package.json,
 * loaded on first use, and a missing one is a `MissingDependencyError` that names the package to
 * install — asked for by name in this process (ESM and CommonJS copies), and for real in child
 * processes whose module resolution cannot find the package (an `--import` hook resolves it from
 * a directory without it) or finds one that cannot load (one of its own imports is missing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { InvalidArgumentError, MissingDependencyError } from "../src/index.js";
import { loadOptionalPeer } from "../src/util/optional-peer.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const require = createRequire(import.meta.url);

const ABSENT = "plexus-test-absent-package";

test("optional peers: a package that is not installed is a MissingDependencyError naming it (ESM and CommonJS)", async () => {
  const cjs = require("../cjs/util/optional-peer.js") as typeof import("../src/util/optional-peer.js");
  for (const load of [loadOptionalPeer, cjs.loadOptionalPeer]) {
    await assert.rejects(load(ABSENT, "the tests"), (e: unknown) => {
      assert.ok(e instanceof MissingDependencyError, String(e));
      assert.ok(e instanceof InvalidArgumentError, "a MissingDependencyError is an InvalidArgumentError");
      assert.equal(e.code, "ERR_PLEXUS_MISSING_DEPENDENCY");
      assert.equal(e.name, "MissingDependencyError");
      assert.equal(e.packageName, ABSENT);
      assert.equal(e.message, `the \`${ABSENT}\` package, needed for the tests, is not installed: npm install ${ABSENT}`);
      assert.match(String((e.cause as { code?: string }).code), /MODULE_NOT_FOUND$/);
      return true;
    });
  }
  const mqtt = await loadOptionalPeer<typeof import("mqtt")>("mqtt", "the tests");
  assert.equal(typeof mqtt.connectAsync, "function", "an installed peer loads");
});

test("optional peers: every package the code loads with loadOptionalPeer is an optional peer dependency (and a dev dependency, for the tests)", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    devDependencies?: Record<string, string>;
    dependencies?: Record<string, string>;
  };
  const loaded = new Set<string>();
  const scan = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) scan(p);
      else if (e.name.endsWith(".ts") && !p.endsWith("optional-peer.ts")) {
        for (const m of readFileSync(p, "utf8").matchAll(/loadOptionalPeer<[^>]*>\("([^"]+)"/g)) loaded.add(m[1] as string);
      }
    }
  };
  scan(join(root, "src"));
  assert.ok(loaded.has("mqtt") && loaded.has("@grpc/grpc-js") && loaded.has("@nats-io/transport-node"), `found ${[...loaded].join(", ")}`);
  for (const name of loaded) {
    assert.ok(pkg.peerDependencies?.[name] !== undefined, `${name} is a peer dependency`);
    assert.equal(pkg.peerDependenciesMeta?.[name]?.optional, true, `${name} is optional`);
    assert.equal(pkg.devDependencies?.[name], pkg.peerDependencies?.[name], `${name} is a dev dependency of the same range`);
    assert.equal(pkg.dependencies?.[name], undefined, `${name} is not a dependency`);
  }
});

/**
 * The optional peers: the package, what needs it (`what`), the error message's words for it, and
 * the calls that need it (JavaScript, run in the child with `queue` and `Bridge` in scope).
 */
const PEERS = [
  { pkg: "mqtt", what: "mqtt:// queue servers and clients", feature: "mqtt:// and mqtts:// queue URLs", calls: "[() => queue.server({ url: 'mqtt://127.0.0.1:0/q' }), () => queue.client({ url: 'mqtt://127.0.0.1:1/q', connectTimeout: 200 })]", count: 2 },
  { pkg: "@grpc/grpc-js", what: "grpc:// queue servers and clients", feature: "grpc:// and grpcs:// queue URLs", calls: "[() => queue.server({ url: 'grpc://127.0.0.1:0' }), () => queue.client({ url: 'grpc://127.0.0.1:1', connectTimeout: 200 })]", count: 2 },
  { pkg: "@nats-io/transport-node", what: "the NATS bridge", feature: "the NATS bridge", calls: "[() => Bridge.start({ nats: 'nats://127.0.0.1:1', export: ['>'] })]", count: 1 },
] as const;

/**
 * Runs a child that makes `peer`'s calls with its package resolved by a hook: `absent` resolves it from a directory without node_modules, `broken` to a
 * module that imports a package that does not exist. Prints what each factory rejected with.
 */
async function withoutPeer(
  peer: (typeof PEERS)[number],
  mode: "absent" | "broken",
): Promise<{ name: string; code: string; packageName: string; message: string; invalidArgument: boolean }[]> {
  const dir = mkdtempSync(join(tmpdir(), "plexus-peer-"));
  try {
    mkdirSync(join(dir, "broken"));
    writeFileSync(join(dir, "broken", "index.mjs"), `import "${ABSENT}";\nexport const connectAsync = null;\n`);
    writeFileSync(
      join(dir, "hooks.mjs"),
      `const name = ${JSON.stringify(peer.pkg)};
export async function resolve(specifier, context, next) {
  if (specifier !== name && !specifier.startsWith(name + "/")) return next(specifier, context);
  ${mode === "absent" ? "return next(specifier, { ...context, parentURL: import.meta.url });" : 'return { url: new URL("./broken/index.mjs", import.meta.url).href, shortCircuit: true };'}
}
`,
    );
    writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url);\n`);
    const index = pathToFileURL(join(root, "dist", "src", "index.js")).href;
    const bridge = pathToFileURL(join(root, "dist", "src", "bridge", "index.js")).href;
    const script = `
      const { queue, InvalidArgumentError } = await import(${JSON.stringify(index)});
      const { Bridge } = await import(${JSON.stringify(bridge)});
      const out = [];
      for (const make of ${peer.calls}) {
        try {
          await make();
          out.push({ name: "resolved" });
        } catch (e) {
          out.push({ name: e.name, code: e.code, packageName: e.packageName, message: e.message, invalidArgument: e instanceof InvalidArgumentError });
        }
      }
      console.log(JSON.stringify(out));
    `;
    const r = await run(process.execPath, ["--import", pathToFileURL(join(dir, "register.mjs")).href, "--input-type=module", "-e", script], { cwd: dir });
    return JSON.parse(r.stdout) as Awaited<ReturnType<typeof withoutPeer>>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const peer of PEERS) {
  test(`optional peers: without the ${peer.pkg} package, ${peer.what} reject with MissingDependencyError naming it`, async () => {
    const out = await withoutPeer(peer, "absent");
    assert.equal(out.length, peer.count);
    for (const e of out) {
      assert.equal(e.name, "MissingDependencyError", JSON.stringify(e));
      assert.equal(e.code, "ERR_PLEXUS_MISSING_DEPENDENCY");
      assert.equal(e.packageName, peer.pkg);
      assert.equal(e.invalidArgument, true);
      assert.equal(e.message, `the \`${peer.pkg}\` package, needed for ${peer.feature}, is not installed: npm install ${peer.pkg}`);
    }
  });

  test(`optional peers: an installed ${peer.pkg} that cannot load (a dependency of its own is missing) is a MissingDependencyError that says so`, async () => {
    for (const e of await withoutPeer(peer, "broken")) {
      assert.equal(e.name, "MissingDependencyError", JSON.stringify(e));
      assert.equal(e.packageName, peer.pkg);
      assert.ok(e.message.startsWith(`the \`${peer.pkg}\` package, needed for ${peer.feature}, is installed but could not be loaded: `), e.message);
      assert.match(e.message, new RegExp(ABSENT));
    }
  });
}
