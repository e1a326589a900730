/**
 * The one place where options are checked. Every factory (`node.publisher()`, `queue.server()`,
 * `TcpSender.create()`, ZeroBuffer's `Reader.create()`, ...) reads its options through an
 * {@link Options} reader when the handle is made, so that a wrong type or value is refused
 * there and then with an `InvalidArgumentError` of one form:
 *
 *     node.subscriber: option "backpressure" must be one of "block", "drop-oldest", "fail", got "nope"
 *
 * naming the factory, the option, what it accepts and the value given. Unknown option names are
 * left alone (TypeScript catches them); `undefined` always means "the default".
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

/** The longest timer Node accepts (ms): the bound of every duration option. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The widest `spinMicros` (µs): one second of polling. */
export const MAX_SPIN_MICROS = 1_000_000;

/** A value as an error message shows it: strings quoted, numbers as written, other things by kind. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "symbol":
      return value.toString();
    case "function":
      return "a function";
    case "boolean":
    case "undefined":
      return String(value);
    default: {
      if (value === null) return "null";
      if (Array.isArray(value)) return "an array";
      const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
      if (typeof name !== "string" || name === "" || name === "Object") return "an object";
      return `${/^[AEIO]/.test(name) ? "an" : "a"} ${name}`; // "a Uint8Array", "an AbortSignal"
    }
  }
}

/**
 * The error for option `name` of `where` (a factory such as `node.subscriber`; "" for none):
 * `<where>: option "<name>" must be <accepted>, got <value>`.
 */
export function optionError(where: string, name: string, accepted: string, value: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`${where === "" ? "" : `${where}: `}option "${name}" must be ${accepted}, got ${describe(value)}`);
}

/** An integer in `min..max` (`value` undefined: `fallback`). */
export function intOption(name: string, value: unknown, fallback: number, min: number, max: number, where = ""): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw optionError(where, name, `an integer in ${min}..${max}`, v);
  return v;
}

/** A finite number in `min..max`, fractions allowed (`value` undefined: `fallback`). */
export function numberOption(name: string, value: unknown, fallback: number, min: number, max: number, where = ""): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) throw optionError(where, name, `a number in ${min}..${max}`, v);
  return v;
}

/** A duration: a positive number of milliseconds, at most {@link MAX_TIMER_MS} (`value` undefined: `fallback`). */
export function msOption(name: string, value: unknown, fallback: number, where = ""): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > MAX_TIMER_MS) {
    throw optionError(where, name, `a positive number of milliseconds (at most ${MAX_TIMER_MS})`, v);
  }
  return v;
}

/** A timeout: a non-negative number of milliseconds, or `Infinity` for none (`value` undefined: `fallback`). */
export function timeoutOption(name: string, value: unknown, fallback: number, where = ""): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) throw optionError(where, name, "a non-negative number of milliseconds (or Infinity)", v);
  return v;
}

/** One of `choices` (`value` undefined: `fallback`). */
export function enumOption<C extends string>(name: string, value: unknown, choices: readonly C[], fallback: C, where = ""): C {
  const v = value ?? fallback;
  if (typeof v !== "string" || !(choices as readonly string[]).includes(v)) throw optionError(where, name, `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`, v);
  return v as C;
}

/** A boolean (`value` undefined: `fallback`). */
export function boolOption(name: string, value: unknown, fallback: boolean, where = ""): boolean {
  const v = value ?? fallback;
  if (typeof v !== "boolean") throw optionError(where, name, "true or false", v);
  return v;
}

/** The option names of `T` (string keys). */
type Key<T> = keyof T & string;
/** The type of option `K` of `T`, without `undefined`. */
type Value<T, K extends keyof T> = Exclude<T[K], undefined>;

/**
 * Reads the options of one factory call, checking each as it is read. Made by {@link readOptions};
 * the factory reads every option it takes, so all are checked before anything is opened.
 *
 * ```ts
 * const o = readOptions("node.subscriber", opts);
 * const depth = o.int("queue", 16, 1, 2 ** 31 - 1);
 * const policy = o.oneOf("backpressure", BACKPRESSURE_POLICIES, "block");
 * ```
 */
export class Options<T extends object> {
  /** @internal use {@link readOptions} */
  constructor(
    /** The factory, as the user calls it (`node.subscriber`, `queue.server`, ...). */
    readonly where: string,
    private readonly values: T,
    /** Prefix of the names of a nested section (`tcp.`). */
    private readonly prefix = "",
  ) {}

  /** The raw value of option `name`. */
  private get(name: string): unknown {
    return (this.values as Record<string, unknown>)[name];
  }

  /** A list of strings (empty when unset). */
  strings(name: Key<T>): string[] {
    const v = this.get(name);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw this.error(name, "a list of strings", v);
    return [...(v as string[])];
  }

  /** The error for option `name`, for checks of its own (see {@link optionError}). */
  error(name: Key<T>, accepted: string, value: unknown = this.get(name)): InvalidArgumentError {
    return optionError(this.where, this.prefix + name, accepted, value);
  }

  /** An integer in `min..max`; undefined gives `fallback` (which may be undefined: then the option stays unset). */
  int(name: Key<T>, fallback: number, min: number, max: number): number;
  int(name: Key<T>, fallback: undefined, min: number, max: number): number | undefined;
  int(name: Key<T>, fallback: number | undefined, min: number, max: number): number | undefined {
    const v = this.get(name);
    if (v === undefined && fallback === undefined) return undefined;
    return intOption(this.prefix + name, v, fallback as number, min, max, this.where);
  }

  /** A finite number in `min..max`; undefined gives `fallback` (undefined: stays unset). */
  number(name: Key<T>, fallback: number, min: number, max: number): number;
  number(name: Key<T>, fallback: undefined, min: number, max: number): number | undefined;
  number(name: Key<T>, fallback: number | undefined, min: number, max: number): number | undefined {
    const v = this.get(name);
    if (v === undefined && fallback === undefined) return undefined;
    return numberOption(this.prefix + name, v, fallback as number, min, max, this.where);
  }

  /** `spinMicros`: a number of µs in 0..{@link MAX_SPIN_MICROS}; undefined gives `fallback` (undefined: stays unset). */
  spin(name: Key<T>, fallback: number): number;
  spin(name: Key<T>, fallback: undefined): number | undefined;
  spin(name: Key<T>, fallback: number | undefined): number | undefined {
    return this.number(name, fallback as number, 0, MAX_SPIN_MICROS);
  }

  /** A duration: a positive number of ms, at most {@link MAX_TIMER_MS}. */
  ms(name: Key<T>, fallback: number): number {
    return msOption(this.prefix + name, this.get(name), fallback, this.where);
  }

  /** A timeout: a non-negative number of ms, or `Infinity`. */
  timeout(name: Key<T>, fallback: number): number {
    return timeoutOption(this.prefix + name, this.get(name), fallback, this.where);
  }

  /** One of `choices`. */
  oneOf<K extends Key<T>, C extends Value<T, K> & string>(name: K, choices: readonly C[], fallback: C): C;
  oneOf<K extends Key<T>, C extends Value<T, K> & string>(name: K, choices: readonly C[], fallback: undefined): C | undefined;
  oneOf<K extends Key<T>, C extends Value<T, K> & string>(name: K, choices: readonly C[], fallback: C | undefined): C | undefined {
    const v = this.get(name);
    if (v === undefined && fallback === undefined) return undefined;
    return enumOption(this.prefix + name, v, choices, fallback as C, this.where);
  }

  /** `true` or `false`. */
  bool(name: Key<T>, fallback: boolean): boolean {
    return boolOption(this.prefix + name, this.get(name), fallback, this.where);
  }

  /** A string of at least `minLength` characters, or undefined. */
  string<K extends Key<T>>(name: K, minLength = 0): Value<T, K> | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length < minLength) {
      throw this.error(name, minLength === 0 ? "a string" : minLength === 1 ? "a non-empty string" : `a string of at least ${minLength} characters`);
    }
    return v as Value<T, K>;
  }

  /** A function, or undefined. */
  func<K extends Key<T>>(name: K): Value<T, K> | undefined {
    const v = this.get(name);
    if (v !== undefined && typeof v !== "function") throw this.error(name, "a function");
    return v as Value<T, K> | undefined;
  }

  /** An object (`tls` settings and the like: its fields are the library's to check), or undefined. */
  object<K extends Key<T>>(name: K, what = "an object"): Value<T, K> | undefined {
    const v = this.get(name);
    if (v !== undefined && (v === null || typeof v !== "object" || Array.isArray(v))) throw this.error(name, what);
    return v as Value<T, K> | undefined;
  }

  /** An `AbortSignal`, or undefined. */
  signal(name: Key<T>): AbortSignal | undefined {
    const v = this.get(name);
    if (v !== undefined && !(v instanceof AbortSignal)) throw this.error(name, "an AbortSignal");
    return v as AbortSignal | undefined;
  }

  /** Bytes (any `ArrayBufferView`: `Uint8Array`, `Buffer`, ...), or undefined. */
  bytes(name: Key<T>): ArrayBufferView | undefined {
    const v = this.get(name);
    if (v !== undefined && !ArrayBuffer.isView(v)) throw this.error(name, "an ArrayBufferView (Uint8Array, Buffer, ...)");
    return v as ArrayBufferView | undefined;
  }

  /**
   * A nested section such as `tcp: false | { host, port, ... }`: `false` when it is `false`,
   * else a reader of its options (of `{}` when undefined), named `<name>.<option>`.
   */
  section<K extends Key<T>>(name: K, fields: string): Options<Extract<Value<T, K>, object>> | false {
    const v = this.get(name);
    if (v === false) return false;
    if (v !== undefined && (v === null || typeof v !== "object" || Array.isArray(v))) throw this.error(name, `false or an object { ${fields} }`);
    return new Options(this.where, (v ?? {}) as Extract<Value<T, K>, object>, `${this.prefix}${name}.`);
  }
}

/**
 * The reader of the options `opts` given to the factory `where` (as the user calls it:
 * `node.subscriber`, `TcpSender.create`, ...). `opts` must be an object or undefined.
 */
export function readOptions<T extends object>(where: string, opts: T | undefined): Options<T> {
  if (opts !== undefined && (opts === null || typeof opts !== "object" || Array.isArray(opts))) {
    throw new InvalidArgumentError(`${where}: the options must be an object, got ${describe(opts)}`);
  }
  return new Options(where, opts ?? ({} as T));
}
