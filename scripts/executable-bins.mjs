// Makes the package's commands (package.json "bin") executable after the build: tsc writes them
// with mode 0644, so in a checkout `dist/src/cli/main.js` would not run through its shebang
// (npm sets the mode only when it installs a package).
import { chmodSync, readFileSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);
const { bin = {} } = JSON.parse(readFileSync(new URL("package.json", root), "utf8"));
for (const file of typeof bin === "string" ? [bin] : Object.values(bin)) {
  const path = new URL(file, root);
  chmodSync(path, statSync(path).mode | 0o111);
}
