// Makes the Python package's virtual environment: `.venv/` at the root of the repository (git
// ignores it), made from the system's Python 3 with --system-site-packages (msgpack, numpy,
// pytest, pyzmq and mypy come from the distribution's packages that scripts/ensure-system.mjs
// installs), with `python/` installed into it in editable mode — no network, no package index.
// Idempotent: an environment whose `plexus` already imports from this checkout is kept.
// PLEXUS_PYTHON names another interpreter (3.10 or later) to make it from.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const venv = join(root, ".venv");
const python = join(venv, "bin", "python");
const base = process.env.PLEXUS_PYTHON || (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

function run(cmd, args, quiet = false) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? ["ignore", "pipe", "pipe"] : ["ignore", "inherit", "inherit"], encoding: "utf8" });
  return r;
}

const probe = "import plexus, msgpack, pytest, sys; assert sys.version_info >= (3, 10); print(plexus.__file__)";
if (existsSync(python)) {
  const r = run(python, ["-c", probe], true);
  if (r.status === 0 && r.stdout.trim().startsWith(join(root, "python"))) process.exit(0);
}
console.error(`ensure-python: making ${venv} from ${base}…`);
for (const [cmd, args] of [
  [base, ["-m", "venv", "--clear", "--system-site-packages", venv]],
  [python, ["-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", "--no-deps", "--editable", join(root, "python")]],
]) {
  const r = run(cmd, args);
  if (r.status !== 0) {
    console.error(`ensure-python: ${[cmd, ...args].join(" ")} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}
const check = run(python, ["-c", probe], true);
if (check.status !== 0) {
  console.error(`ensure-python: the environment does not import plexus, msgpack and pytest:\n${check.stderr}`);
  process.exit(1);
}
