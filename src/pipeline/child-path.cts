/**
 * Where the script that hosts units in a worker or child process is. A CommonJS file on purpose
 * (emitted as `.cjs` in both builds, so `__dirname` works from ESM and CommonJS alike); both
 * builds start the ES module build's script, which imports the user's module with `import()`
 * whatever its format.
 * (Internal: not part of the public API.)
 * @module
 */
import { join } from "node:path";

/** The path of `dist/src/pipeline/child.js`, from `dist/src/pipeline` or `dist/cjs/pipeline`. */
export function childScript(): string {
  return join(__dirname, "..", "..", "src", "pipeline", "child.js");
}
