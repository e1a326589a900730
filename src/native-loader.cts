/**
 * Locates and loads the compiled addon. A CommonJS file on purpose: it is emitted as `.cjs` in
 * both builds so `__dirname` works from ESM and CommonJS alike.
 * (Internal: not part of the public API.)
 * @module
 */
import { join } from "node:path";

/** Loads `build/Release/plexus.node` from the package root (two levels above this file). */
export function loadAddon(): unknown {
  const candidates = [join(__dirname, "..", "..", "build", "Release", "plexus.node"), join(__dirname, "..", "..", "build", "Debug", "plexus.node")];
  let first: unknown;
  for (const file of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loading a .node binary needs require
      return require(file);
    } catch (err) {
      first ??= err;
    }
  }
  throw new Error(`plexus: the native addon is not built (run "npm run build:native"): ${String(first)}`, { cause: first });
}
