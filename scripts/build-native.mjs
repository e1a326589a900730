// Builds the native addon with node-gyp. `--if-needed` skips the build when the binary is newer
// than every source file, so `npm test` stays fast after the first build.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const binary = join(root, "build", "Release", "plexus.node");

function newestSource() {
  let newest = statSync(join(root, "binding.gyp")).mtimeMs;
  for (const f of readdirSync(join(root, "native"))) {
    newest = Math.max(newest, statSync(join(root, "native", f)).mtimeMs);
  }
  return newest;
}

if (process.argv.includes("--if-needed") && existsSync(binary) && statSync(binary).mtimeMs >= newestSource()) {
  process.exit(0);
}

// npm passes the path of its own node-gyp to lifecycle scripts; fall back to the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, "rebuild"]] : ["node-gyp", ["rebuild"]];
const jobs = ["--jobs", "max"];
const r = spawnSync(cmd, [...args, ...jobs], { cwd: root, stdio: "inherit" });
if (r.error) {
  console.error(`plexus: cannot run node-gyp (${r.error.message}); a C++17 compiler, make and python3 are required`);
  process.exit(1);
}
process.exit(r.status ?? 1);
