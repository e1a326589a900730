/**
 * Optional peer dependencies: packages a feature needs that Plexus does not install itself
 * (`mqtt` for `mqtt://` queue URLs). They are loaded on first use, and a missing one becomes a
 * {@link MissingDependencyError} that names the package to install.
 * (Internal: not part of the public API.)
 * @module
 */
import { MissingDependencyError } from "../errors.js";

/** Node's codes for a module that resolution did not find (ESM, CommonJS). */
const NOT_FOUND = new Set(["ERR_MODULE_NOT_FOUND", "MODULE_NOT_FOUND"]);

/**
 * Loads the optional peer package `name` (its module namespace, typed `T` by the caller:
 * `loadOptionalPeer<typeof import("mqtt")>("mqtt", ...)`). `feature` says what needs it, in
 * the user's words ("mqtt:// and mqtts:// queue URLs"). Rejects with {@link MissingDependencyError}
 * (`packageName` = `name`) when the package is not installed, or is installed but cannot be
 * loaded (a missing dependency of its own, an error while it loads: `cause` is Node's error).
 */
export async function loadOptionalPeer<T>(name: string, feature: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (err) {
    throw missingPeer(name, feature, err);
  }
}

/** The error for a failed load of `name`: not installed, or not loadable. */
function missingPeer(name: string, feature: string, err: unknown): MissingDependencyError {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  // Not found: `name` itself, not one of its own dependencies (whose message names another package).
  if (typeof code === "string" && NOT_FOUND.has(code) && (message.includes(`'${name}'`) || message.includes(`'${name}/`))) {
    return new MissingDependencyError(name, `the \`${name}\` package, needed for ${feature}, is not installed: npm install ${name}`, { cause: err });
  }
  return new MissingDependencyError(name, `the \`${name}\` package, needed for ${feature}, is installed but could not be loaded: ${message}`, { cause: err });
}
