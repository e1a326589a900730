// Every TypeScript and JavaScript code block of the README and of docs/ compiles under `strict`,
// against the package as a user imports it ("plexus", "plexus/zerobuffer"). A block may be
// preceded by an HTML comment (invisible when rendered) that declares what it takes from the
// surrounding text:
//
//   <!-- snippet: declare const node: import("plexus").Node; declare function use(x: Uint8Array): void; -->
//
// A block that is deliberately not a program (a fragment of an interface, pseudo-code) says so
// with `<!-- snippet: fragment -->`: it is then only checked for syntax. A block that shows the
// internal modules to contributors (`import … from "../codec/index.js"`) says
// `<!-- snippet: internal -->` and is compiled as a module of `src/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));

/** A fenced code block of a markdown file. */
interface Snippet {
  file: string;
  line: number;
  lang: "ts" | "js";
  code: string;
  prelude: string;
  fragment: boolean;
  internal: boolean;
}

/** The ts/js blocks of one markdown file with the snippet comment just above each. */
export function snippetsOf(file: string, text: string): Snippet[] {
  const lines = text.split("\n");
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript|js|javascript)\s*$/.exec(lines[i] as string);
    if (!open) {
      if (/^```/.test(lines[i] as string)) {
        // skip over a block of another language, so its body is never taken for a fence
        for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++);
      }
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string);
    let prelude = "";
    let fragment = false;
    let internal = false;
    for (let k = start - 1; k >= 0 && /^<!-- snippet:/.test(lines[k] as string); k--) {
      const m = /^<!-- snippet:\s*([\s\S]*?)\s*-->$/.exec(lines[k] as string);
      if (!m) continue;
      if (m[1] === "fragment") fragment = true;
      else if (m[1] === "internal") internal = true;
      else prelude = `${m[1]}\n${prelude}`;
    }
    const lang = open[1]?.startsWith("t") ? "ts" : "js";
    out.push({ file, line: start + 2, lang, code: body.join("\n"), prelude, fragment, internal });
  }
  return out;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`);
  return ["README.md", "bench/README.md", ...docs];
}

test("snippet extraction: blocks, preludes, fragments, other languages skipped", () => {
  const md = [
    "text",
    "```sh",
    "```ts",
    "```",
    "<!-- snippet: declare const a: number; -->",
    "```ts",
    "const b = a + 1;",
    "```",
    "<!-- snippet: fragment -->",
    "```js",
    "x(",
    "```",
  ].join("\n");
  const s = snippetsOf("x.md", md);
  assert.equal(s.length, 2);
  assert.deepEqual(
    s.map((x) => [x.line, x.lang, x.code, x.prelude.trim(), x.fragment]),
    [
      [7, "ts", "const b = a + 1;", "declare const a: number;", false],
      [11, "js", "x(", "", true],
    ],
  );
});

test("every ts/js code block of the README and docs/ compiles under strict against the published types", { timeout: 180_000 }, async () => {
  const dir = join(root, "dist", "doc-snippets");
  const internalDir = join(root, "dist", "src", "doc-snippets"); // beside dist/src/codec & co.
  for (const d of [dir, internalDir]) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
  }
  const where = new Map<string, Snippet>();
  let n = 0;
  for (const file of markdownFiles()) {
    for (const s of snippetsOf(file, readFileSync(join(root, file), "utf8"))) {
      const name = `${file.replace(/[/.]/g, "_")}_${s.line}.${s.lang === "ts" ? "mts" : "mjs"}`;
      const head = s.fragment ? "// @ts-nocheck\n" : "";
      // A module (top-level await, `await using`), the prelude on one line so that lines map back.
      writeFileSync(join(s.internal ? internalDir : dir, name), `${head}export {}; ${s.prelude.replace(/\n/g, " ")}\n${s.code}\n`);
      where.set(name, s);
      n++;
    }
  }
  assert.ok(n >= 15, `only ${n} snippets found`);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "es2022",
        lib: ["es2023", "esnext.disposable"],
        module: "nodenext",
        moduleResolution: "nodenext",
        strict: true,
        noEmit: true,
        allowJs: true,
        checkJs: true,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [join(root, "node_modules", "@types")],
      },
      include: ["*.mts", "*.mjs", "../src/doc-snippets/*.mts"],
    }),
  );
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const result = await run(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"], { cwd: dir }).then(
    (r) => r.stdout,
    (e: { stdout?: string }) => e.stdout ?? String(e),
  );
  // Map "name.mts(3,5): error TS…" back to the markdown file and line.
  const errors = result
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => {
      const m = /^(?:.*[/\\])?([^/\\(]+)\((\d+),(\d+)\): (.*)$/.exec(l);
      const s = m ? where.get(m[1] as string) : undefined;
      return s && m ? `${s.file}:${s.line + Number(m[2]) - 2}: ${m[4]}` : l;
    });
  assert.deepEqual(errors, [], `code blocks that do not compile:\n${errors.join("\n")}`);
  for (const d of [dir, internalDir]) rmSync(d, { recursive: true, force: true });
});
