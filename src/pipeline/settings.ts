/**
 * Settings of a component: a schema of named settings, each with its default and its check.
 * `Unit.with({ freq: setting.number(0.2, { min: 0 }) })` gives a unit class whose
 * `this.settings` is `{ readonly freq: number }`. Settings are checked when the pipeline starts
 * (and when changed live) through the same option readers as every Plexus factory, so a bad value
 * is an `InvalidArgumentError` of one form: `SYS/LFO: option "freq" must be a number in 0..100, got -1`.
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import { describe, readOptions, type Options } from "../util/options.js";

/** One setting: its default and how it is checked. */
export interface Setting<T> {
  /** The value when none is given. */
  readonly default: T;
  /** @internal Reads and checks the setting `name`, given as `raw` (its default when undefined). */
  read(o: Options<Record<string, unknown>>, name: string, raw: unknown): T;
}

/** A schema: the settings of a component by name. */
export type SettingsSchema = Record<string, Setting<unknown>>;

/** The settings a schema describes. */
export type SettingsOf<D extends SettingsSchema> = { [K in keyof D]: D[K] extends Setting<infer T> ? T : never };

/** Bounds of a numeric setting. */
export interface NumberBounds {
  /** Smallest value (default: none). */
  min?: number;
  /** Largest value (default: none). */
  max?: number;
}

/** What a numeric setting accepts, as an error says it: "a number in 0..1", "an integer >= 1", "a number". */
function accepted(what: "a number" | "an integer", bounds: NumberBounds): string {
  const { min, max } = bounds;
  if (min !== undefined && max !== undefined) return `${what} in ${min}..${max}`;
  if (min !== undefined) return `${what} >= ${min}`;
  if (max !== undefined) return `${what} <= ${max}`;
  return what;
}

/** A numeric setting: finite (and whole for `int`) within its bounds. */
function numeric(fallback: number, bounds: NumberBounds, whole: boolean): Setting<number> {
  const { min = -Infinity, max = Infinity } = bounds;
  return {
    default: fallback,
    read: (o, name, v) => {
      if (v === undefined) return fallback;
      if (typeof v !== "number" || !Number.isFinite(v) || (whole && !Number.isInteger(v)) || v < min || v > max) throw o.error(name, accepted(whole ? "an integer" : "a number", bounds), v);
      return v;
    },
  };
}

/** Makers of settings for {@link SettingsSchema}s. */
export const setting = {
  /** A finite number in `min..max` (each bound optional). */
  number(fallback: number, bounds: NumberBounds = {}): Setting<number> {
    return numeric(fallback, bounds, false);
  },
  /** An integer in `min..max` (each bound optional). */
  int(fallback: number, bounds: NumberBounds = {}): Setting<number> {
    return numeric(fallback, bounds, true);
  },
  /** `true` or `false`. */
  bool(fallback: boolean): Setting<boolean> {
    return { default: fallback, read: (o, name) => o.bool(name, fallback) };
  },
  /** A string. */
  string(fallback: string): Setting<string> {
    return { default: fallback, read: (o, name) => (o.string(name) as string | undefined) ?? fallback };
  },
  /** One of `choices`. */
  oneOf<C extends string>(choices: readonly C[], fallback: C): Setting<C> {
    return { default: fallback, read: (o, name) => o.oneOf(name, choices as readonly never[], fallback as never) as C };
  },
  /**
   * Any value the codec carries (an object, an array, ...), checked by `check`, which returns
   * what it accepts (e.g. "an array of 3 numbers") when the value is wrong, else undefined.
   */
  value<T>(fallback: T, check?: (value: unknown) => string | undefined): Setting<T> {
    return {
      default: fallback,
      read: (o, name, v) => {
        if (v === undefined) return fallback;
        const accepted = check?.(v);
        if (accepted !== undefined) throw o.error(name, accepted, v);
        return v as T;
      },
    };
  },
};

/**
 * The settings of the component `path` from `given` (partial; undefined: defaults), checked
 * against `schema` and frozen. A name the schema does not have is refused (a typo would
 * otherwise be ignored silently).
 */
export function readSettings<S extends object>(path: string, schema: SettingsSchema | undefined, given: Partial<S> | undefined): Readonly<S> {
  const o = readOptions(path, given as Record<string, unknown> | undefined);
  if (schema === undefined) return Object.freeze({ ...(given ?? {}) }) as Readonly<S>;
  for (const name of Object.keys(given ?? {})) {
    if (!Object.hasOwn(schema, name)) {
      throw new InvalidArgumentError(`${path}: no setting ${JSON.stringify(name)} (settings: ${Object.keys(schema).join(", ") || "none"}), got ${describe((given as Record<string, unknown>)[name])}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(schema)) out[name] = s.read(o, name, (given as Record<string, unknown> | undefined)?.[name]);
  return Object.freeze(out) as Readonly<S>;
}
