// Builds the addon with AddressSanitizer in a scratch copy of the package and runs the native
// tests against it (not part of `npm test`). The repository's own build/ is never touched: the
// scratch directory gets binding.gyp + native/ (built there into build/Debug), a copy of dist/
// (the loader looks for ../../build/{Release,Debug}/plexus.node) and package.json.
//
//   node scripts/native-asan.mjs [--keep]     (--keep leaves the scratch directory for inspection)
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const keep = process.argv.includes("--keep");

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", ...options });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function fail(message) {
  console.error(`native-asan: ${message}`);
  process.exit(1);
}

// The sanitizer runtime must be loaded first: node itself is not instrumented.
const gcc = spawnSync("gcc", ["-print-file-name=libasan.so"], { encoding: "utf8" });
const libasan = gcc.stdout?.trim();
if (gcc.status !== 0 || !libasan || !existsSync(libasan)) fail("libasan.so not found (gcc with AddressSanitizer is required)");

// npm passes its node-gyp to scripts; otherwise use the copy bundled with npm next to node.
const gyp =
  process.env.npm_config_node_gyp ?? join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
if (!existsSync(gyp)) fail(`node-gyp not found at ${gyp}`);
// Use the headers installed with node (as npm's nodedir setting would) instead of downloading them.
const prefix = join(dirname(process.execPath), "..");
const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined);
const gypArgs = ["rebuild", "--debug", "--jobs", "max", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];

console.log("native-asan: compiling TypeScript");
if (run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json")], { cwd: root }) !== 0) {
  fail("tsc failed");
}

const scratch = mkdtempSync(join(tmpdir(), "plexus-asan-"));
let status = 1;
try {
  cpSync(join(root, "binding.gyp"), join(scratch, "binding.gyp"));
  cpSync(join(root, "native"), join(scratch, "native"), { recursive: true });
  cpSync(join(root, "package.json"), join(scratch, "package.json"));
  cpSync(join(root, "dist", "src"), join(scratch, "dist", "src"), { recursive: true });
  cpSync(join(root, "dist", "test"), join(scratch, "dist", "test"), { recursive: true });
  symlinkSync(join(root, "node_modules"), join(scratch, "node_modules"), "dir");

  console.log(`native-asan: building with -fsanitize=address in ${scratch}`);
  const sanitize = "-fsanitize=address -fno-omit-frame-pointer -g";
  const env = { ...process.env, CFLAGS: sanitize, CXXFLAGS: sanitize, LDFLAGS: "-fsanitize=address" };
  if (run(process.execPath, [gyp, ...gypArgs], { cwd: scratch, env }) !== 0) fail("build failed");

  console.log("native-asan: running dist/test/native.test.js under AddressSanitizer");
  const test = spawnSync(process.execPath, ["--test", join(scratch, "dist", "test", "native.test.js")], {
    cwd: scratch,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: {
      ...process.env,
      LD_PRELOAD: libasan,
      // V8 and node allocations that live until exit are not leaks worth reporting.
      ASAN_OPTIONS: "detect_leaks=0:abort_on_error=1:halt_on_error=1",
    },
  });
  process.stdout.write(test.stdout);
  process.stderr.write(test.stderr);
  const output = test.stdout + test.stderr;
  const asanErrors = (output.match(/ERROR: AddressSanitizer/g) ?? []).length;
  status = test.status === 0 && asanErrors === 0 ? 0 : 1;
  console.log(`native-asan: tests ${test.status === 0 ? "passed" : `failed (status ${test.status ?? test.signal})`}, ${asanErrors} AddressSanitizer report(s)`);
} finally {
  if (keep) console.log(`native-asan: kept ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}
process.exit(status);
