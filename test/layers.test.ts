// The import rule of docs/architecture.md, checked over the source tree: a layer imports only
// the layers below it, and the features (pubsub, rpc, queue, zerobuffer) never import each other.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/**
 * Rank of each top-level part of `src/`: a module may import a part of lower rank, or its own
 * part. Parts of the same rank are siblings and may not import each other.
 */
const RANK: Record<string, number> = {
  errors: 0,
  "native-loader": 0,
  native: 1,
  util: 2,
  ring: 3,
  codec: 3,
  net: 4,
  transport: 5,
  graph: 6,
  pubsub: 7,
  rpc: 7,
  queue: 7,
  zerobuffer: 7,
  node: 8,
  dashboard: 9,
  pipeline: 9,
  bridge: 9,
  cli: 10,
  index: 11,
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return files(p);
    return /\.c?ts$/.test(e.name) ? [p] : [];
  });
}

/** The top-level part of `src/` a path belongs to: a folder, or a file's name without its extension. */
function partOf(path: string): string {
  return relative(SRC, path).split(sep)[0]!.replace(/\.c?[jt]s$/, "");
}

/** Relative imports of a module: static `import … from`, `export … from`, `import("…")`, `require("…")`. */
function importsOf(source: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) out.push(m[1]!);
  return out;
}

/** Every import that breaks the rule, as "from -> to". */
function violations(): string[] {
  const bad: string[] = [];
  for (const file of files(SRC)) {
    const from = partOf(file);
    const rankFrom = RANK[from];
    if (rankFrom === undefined) {
      bad.push(`${relative(SRC, file)}: src/${from} has no layer in the rule (add it to docs/architecture.md and this test)`);
      continue;
    }
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      const to = partOf(resolve(dirname(file), spec));
      if (to === from) continue;
      const rankTo = RANK[to];
      if (rankTo === undefined || rankTo >= rankFrom) bad.push(`${relative(SRC, file)} -> ${spec} (src/${from} may not import src/${to})`);
    }
  }
  return bad;
}

test("layers: every module imports only lower layers, features never each other", () => {
  assert.deepEqual(violations(), []);
});

test("layers: the check sees imports of every form", () => {
  const found = importsOf(
    [
      'import { a } from "../x/a.js";',
      'export * from "./b.js";',
      'const c = await import("../c/index.js");',
      'const d = require("../d.js");',
      'import "../side-effect.js";',
      'import { e } from "node:fs";',
    ].join("\n"),
  );
  assert.deepEqual(found, ["../x/a.js", "./b.js", "../c/index.js", "../d.js", "../side-effect.js"]);
});
