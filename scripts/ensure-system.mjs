// Makes sure the system programs the tests start for real are installed: the distribution's
// packages listed below, installed with one apt-get call for whichever are missing (root, as in
// CI). Each entry names the file that shows the package is there; an environment variable may
// point at another binary (then nothing is installed for it). PLEXUS_SKIP_SYSTEM=1 skips every
// install: the tests that need a missing program then fail with a message naming it, rather than
// passing silently.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

/** What the tests need: Debian package, the file it installs, the variable that overrides it. */
const NEEDED = [
  { pkg: "chromium", file: "/usr/bin/chromium", env: "PLEXUS_CHROMIUM" }, // the dashboard's browser test
  { pkg: "mosquitto", file: "/usr/sbin/mosquitto", env: "PLEXUS_MOSQUITTO" }, // the MQTT queue tests' real broker (test/helpers/mosquitto.ts)
  { pkg: "nats-server", file: "/usr/sbin/nats-server", env: "PLEXUS_NATS_SERVER" }, // the NATS bridge tests' real servers and clusters (test/helpers/nats.ts)
  // the Python package (python/): its virtual environment (scripts/ensure-python.mjs) and tests
  { pkg: "python3-venv", file: "/usr/share/doc/python3-venv" },
  { pkg: "python3-setuptools", file: "/usr/lib/python3/dist-packages/setuptools/__init__.py" },
  { pkg: "python3-msgpack", file: "/usr/lib/python3/dist-packages/msgpack/__init__.py" },
  { pkg: "python3-numpy", file: "/usr/lib/python3/dist-packages/numpy/__init__.py" },
  { pkg: "python3-pytest", file: "/usr/lib/python3/dist-packages/pytest/__init__.py" },
  { pkg: "python3-mypy", file: "/usr/lib/python3/dist-packages/mypy/__init__.py" },
  { pkg: "python3-zmq", file: "/usr/lib/python3/dist-packages/zmq/__init__.py" }, // the "python" bench row's baseline
  { pkg: "libatomic1", file: `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu/libatomic.so.1` }, // the ring's atomics, through ctypes
];

const missing = NEEDED.filter((n) => !(n.env && process.env[n.env]) && !existsSync(n.file));
if (missing.length === 0 || process.env.PLEXUS_SKIP_SYSTEM === "1") process.exit(0);
const names = missing.map((n) => n.pkg);
if (process.getuid?.() !== 0) {
  console.error(`ensure-system: missing ${missing.map((n) => n.file).join(", ")} and this is not root; install the package(s) ${names.join(" ")}`);
  process.exit(1);
}
console.error(`ensure-system: installing ${names.join(" ")} (apt-get)…`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
for (const args of [["update"], ["install", "-y", "--no-install-recommends", ...names]]) {
  const r = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
  if (r.status !== 0) {
    console.error(`ensure-system: apt-get ${args.join(" ")} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}
const still = missing.filter((n) => !existsSync(n.file));
if (still.length > 0) {
  console.error(`ensure-system: still missing after the install: ${still.map((n) => n.file).join(", ")}`);
  process.exit(1);
}
