/**
 * How a worker or child process finds the user's pipeline: it imports the user's module again
 * (as `cluster` re-enters the program), with a hook set. If the module calls `run()` or
 * `start()`, that call hands its system to the hook instead of running it; otherwise the
 * module's default export is the system (a component, a component class, or a function making
 * one).
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import type { Component } from "./component.js";
import { errorInfo, unitError } from "./host.js";

/** The registered symbol of the hook (shared by the ESM and CJS copies of the package). */
const HOOK = Symbol.for("plexus.pipeline.entry");

/** The hook a re-entered module's `run()` hands its system to. */
interface Hook {
  take(system: unknown): void;
}

/**
 * In a worker or process the runner started, takes `system` for it and returns true: the
 * caller (`run()`, `start()`) must then do nothing. False in the program that runs the pipeline.
 */
export function reentered(system: unknown): boolean {
  const hook = (globalThis as { [HOOK]?: Hook })[HOOK];
  if (hook === undefined) return false;
  hook.take(system);
  return true;
}

/** Makes a component of what a module exported: a component, a component class, or a function making one. */
export function componentOf(value: unknown): unknown {
  if (typeof value !== "function") return value;
  const f = value as { prototype?: { componentKind?: unknown } } & (() => unknown);
  if (typeof f.prototype === "object" && f.prototype !== null && "componentKind" in (f.prototype as object)) return new (value as new () => unknown)();
  try {
    return new (value as new () => unknown)();
  } catch {
    return f();
  }
}

/**
 * Imports `module` (a file URL) and returns its system. Rejects with a `UnitError` naming
 * `path` (the component placed here) when the module fails to import or gives no system.
 */
export async function loadSystem(module: string, path: string): Promise<Component<object>> {
  let taken: { system: unknown } | undefined;
  let found: (s: { system: unknown }) => void = () => {};
  const handed = new Promise<{ system: unknown }>((resolve) => (found = resolve));
  (globalThis as { [HOOK]?: Hook })[HOOK] = {
    take(system) {
      taken ??= { system };
      found(taken);
    },
  };
  let got: { system: unknown } | { module: { default?: unknown } };
  try {
    got = await Promise.race([import(module).then((m: { default?: unknown }) => ({ module: m })), handed]);
  } catch (err) {
    throw unitError(path, `its module ${module} could not be imported`, errorInfo(err));
  }
  const system = taken !== undefined ? taken.system : "module" in got ? componentOf(got.module.default) : got.system;
  const kind = typeof system === "object" && system !== null ? (system as { componentKind?: unknown }).componentKind : undefined;
  if (kind !== "unit" && kind !== "collection") {
    throw unitError(path, "no system", errorInfo(new InvalidArgumentError(`${module} neither calls run() nor exports the system as its default export`)));
  }
  return system as Component<object>;
}
