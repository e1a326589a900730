// Makes sure a Chromium for the dashboard's browser test is installed: the distribution's
// `chromium` package, installed with apt-get when /usr/bin/chromium is missing (root, as in CI).
// Set PLEXUS_CHROMIUM to use another binary; PLEXUS_SKIP_CHROMIUM=1 skips the install (the
// browser test then fails with a clear message rather than passing silently).
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

const binary = process.env.PLEXUS_CHROMIUM || "/usr/bin/chromium";
if (existsSync(binary) || process.env.PLEXUS_SKIP_CHROMIUM === "1") process.exit(0);
if (process.getuid?.() !== 0) {
  console.error(`ensure-chromium: ${binary} is missing and this is not root; install the \`chromium\` package (or set PLEXUS_CHROMIUM)`);
  process.exit(1);
}
console.error("ensure-chromium: installing the chromium package (apt-get)…");
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
for (const args of [["update"], ["install", "-y", "--no-install-recommends", "chromium"]]) {
  const r = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
  if (r.status !== 0) {
    console.error(`ensure-chromium: apt-get ${args.join(" ")} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}
if (!existsSync(binary)) {
  console.error(`ensure-chromium: ${binary} still missing after the install`);
  process.exit(1);
}
