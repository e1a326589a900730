/**
 * Loads msgpackr's self-contained "no-eval" build (`msgpackr/index-no-eval`). A CommonJS file on
 * purpose, like `native-loader.cts`: `require` works from both builds.
 *
 * Why that build and not `msgpackr` itself:
 * - it is a separate instance, so the codec's extensions (msgpackr registers them process-wide)
 *   never touch other users of msgpackr in the process, and theirs never touch frames;
 * - it has no native string extractor: `msgpackr-extract` cannot read a SharedArrayBuffer and
 *   throws (then falls back) on every body decoded from a ring, which costs ~10 µs per message;
 * - it builds no code with `new Function` while decoding.
 * (Internal: not part of the public API.)
 * @module
 */
import type * as Msgpackr from "msgpackr";

/** The msgpackr API (Packr, Unpackr, addExtension), from the no-eval build. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a package subpath without types; require works in both builds
export const msgpackr = require("msgpackr/index-no-eval") as typeof Msgpackr;
