/**
 * Prepares a value for packing: checks that everything in it can travel, takes every binary
 * buffer out (it travels out-of-band) and puts placeholders where MessagePack alone would lose
 * information (`-0`, `Map`). Containers on the path to a replaced value are copied (shallowly);
 * everything else is packed as it is, so a value without buffers costs one walk and no copy.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { EncodeError } from "../errors.js";
import { BufferType, MAX_DEPTH } from "./format.js";
import { BufferRef, MapEntries, NEGATIVE_ZERO } from "./msgpack.js";

/** A binary value taken out of the value, to be copied after the body. */
export interface OutOfBand {
  /** Its bytes. */
  readonly bytes: Uint8Array;
  /** What the receiver gets back. */
  readonly type: BufferType;
}

/** What {@link extract} returns. */
export interface Extracted {
  /** The value to pack (the input itself when nothing had to be replaced). */
  readonly value: unknown;
  /** The buffers, in table order. */
  readonly buffers: OutOfBand[];
}

/** The buffer type of each binary prototype. */
const BINARY_TYPES = new Map<object, BufferType>([
  [Int8Array.prototype, BufferType.Int8Array],
  [Uint8Array.prototype, BufferType.Uint8Array],
  [Uint8ClampedArray.prototype, BufferType.Uint8ClampedArray],
  [Int16Array.prototype, BufferType.Int16Array],
  [Uint16Array.prototype, BufferType.Uint16Array],
  [Int32Array.prototype, BufferType.Int32Array],
  [Uint32Array.prototype, BufferType.Uint32Array],
  [Float32Array.prototype, BufferType.Float32Array],
  [Float64Array.prototype, BufferType.Float64Array],
  [BigInt64Array.prototype, BufferType.BigInt64Array],
  [BigUint64Array.prototype, BufferType.BigUint64Array],
  [DataView.prototype, BufferType.DataView],
  [ArrayBuffer.prototype, BufferType.ArrayBuffer],
  [Buffer.prototype, BufferType.Buffer],
]);

const INT64_MIN = -(2n ** 63n);
const UINT64_END = 2n ** 64n;

/** Thrown inside the walk; collects the path on its way out, becomes an {@link EncodeError}. */
class Unsupported {
  readonly path: (string | number)[] = [];
  constructor(
    readonly reason: string,
    readonly cause?: unknown,
  ) {}
}

/** `String.prototype.isWellFormed` (ES2024; Node.js 20 has it, the TypeScript lib here does not). */
interface WellFormed {
  isWellFormed(): boolean;
  toWellFormed(): string;
}

/** What a value is to the codec, at its own level (its contents not looked at). */
const enum Kind {
  /** Travels as it is (number, string, boolean, undefined, null, bigint in range, Date). */
  Leaf,
  /** A plain object (prototype `Object.prototype` or null). */
  Plain,
  /** An `Array`. */
  Array,
  /** A typed array, `DataView`, `ArrayBuffer` or `Buffer`: travels out-of-band. */
  Binary,
  /** A `Map`. */
  Map,
  /** A `Set`. */
  Set,
}

/** The one rule of what travels, level by level: the {@link Kind} of `v`, or {@link Unsupported}. */
function kindOf(v: unknown): Kind {
  switch (typeof v) {
    case "number":
    case "string":
    case "boolean":
    case "undefined":
      return Kind.Leaf;
    case "bigint":
      if (v < INT64_MIN || v >= UINT64_END) throw new Unsupported("a bigint outside -2^63 .. 2^64-1");
      return Kind.Leaf;
    case "object":
      return v === null ? Kind.Leaf : objectKind(v);
    default:
      throw new Unsupported(`a ${typeof v}`);
  }
}

/** {@link kindOf} for an object. */
function objectKind(o: object): Kind {
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) return Kind.Plain;
  if (proto === Array.prototype) return Kind.Array;
  if (BINARY_TYPES.has(proto as object)) return Kind.Binary;
  if (proto === Date.prototype) return Kind.Leaf;
  if (proto === Map.prototype) return Kind.Map;
  if (proto === Set.prototype) return Kind.Set;
  if (o instanceof SharedArrayBuffer) throw new Unsupported("a SharedArrayBuffer (send a typed array over it instead)");
  const name = (proto as { constructor?: { name?: unknown } } | undefined)?.constructor?.name;
  throw new Unsupported(`an instance of ${typeof name === "string" && name ? name : "a class"} (only plain objects, arrays, Map, Set, Date and binary buffers travel)`);
}

/** One walk over one value. */
class Walk {
  readonly buffers: OutOfBand[] = [];
  /** The containers being walked, outermost first (cycle detection). */
  private readonly ancestors: object[] = [];
  /** The placeholder of each binary already seen (a buffer referenced twice travels once). */
  private refs: Map<object, BufferRef> | undefined;

  /** Makes `v` encodable: the same value, or a copy with placeholders. */
  value(v: unknown, depth: number): unknown {
    switch (typeof v) {
      case "number":
        return v === 0 && 1 / v < 0 ? NEGATIVE_ZERO : v;
      case "string":
        return (v as unknown as WellFormed).isWellFormed() ? v : (v as unknown as WellFormed).toWellFormed();
      case "object":
        return v === null ? v : this.object(v, depth);
      default:
        kindOf(v); // throws for what does not travel
        return v;
    }
  }

  private object(o: object, depth: number): unknown {
    switch (objectKind(o)) {
      case Kind.Plain:
        return this.container(o, depth, this.plain);
      case Kind.Array:
        return this.container(o as unknown[], depth, this.array);
      case Kind.Binary:
        return this.binary(o, BINARY_TYPES.get(Object.getPrototypeOf(o) as object) as BufferType);
      case Kind.Map:
        return this.container(o as Map<unknown, unknown>, depth, this.map);
      case Kind.Set:
        return this.container(o as Set<unknown>, depth, this.set);
      default:
        return o; // a Date
    }
  }

  /** Walks a container's contents with `walk`, refusing cycles and excessive depth. */
  private container<T extends object>(o: T, depth: number, walk: (this: Walk, o: T, depth: number) => unknown): unknown {
    enter(this.ancestors, o, depth);
    return walk.call(this, o, depth + 1);
  }

  private plain(o: object, depth: number): unknown {
    const src = o as Record<string, unknown>;
    const keys = Object.keys(src);
    let copy: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key === "__proto__") throw inside(new Unsupported(`an own property named "__proto__" (it cannot be restored safely)`), key);
      let child: unknown;
      let out: unknown;
      try {
        child = src[key];
        out = this.value(child, depth);
      } catch (err) {
        throw inside(err, key);
      }
      let name = key;
      if (!(key as unknown as WellFormed).isWellFormed()) name = (key as unknown as WellFormed).toWellFormed();
      if (out !== child || name !== key) {
        copy ??= copyKeys(src, keys, i);
        copy[name] = out;
      } else if (copy !== undefined) copy[key] = child;
    }
    return copy ?? o;
  }

  private array(a: unknown[], depth: number): unknown {
    let copy: unknown[] | undefined;
    for (let i = 0; i < a.length; i++) {
      let child: unknown;
      let out: unknown;
      try {
        child = a[i];
        out = this.value(child, depth);
      } catch (err) {
        throw inside(err, i);
      }
      if (out !== child) {
        copy ??= a.slice();
        copy[i] = out;
      }
    }
    return copy ?? a;
  }

  private map(m: Map<unknown, unknown>, depth: number): unknown {
    const flat: unknown[] = [];
    let i = 0;
    for (const [k, v] of m) {
      try {
        flat.push(this.value(k, depth), this.value(v, depth));
      } catch (err) {
        throw inside(err, `<entry ${i}>`);
      }
      i++;
    }
    return new MapEntries(flat);
  }

  private set(s: Set<unknown>, depth: number): unknown {
    let changed = false;
    const items: unknown[] = [];
    let i = 0;
    for (const item of s) {
      let out: unknown;
      try {
        out = this.value(item, depth);
      } catch (err) {
        throw inside(err, `<element ${i}>`);
      }
      if (out !== item) changed = true;
      items.push(out);
      i++;
    }
    return changed ? new Set(items) : s;
  }

  private binary(o: object, type: BufferType): BufferRef {
    const refs = (this.refs ??= new Map());
    let ref = refs.get(o);
    if (ref === undefined) {
      const bytes = type === BufferType.ArrayBuffer ? new Uint8Array(o as ArrayBuffer) : viewBytes(o as ArrayBufferView);
      ref = new BufferRef(this.buffers.length);
      this.buffers.push({ bytes, type });
      refs.set(o, ref);
    }
    return ref;
  }
}

/** Enters container `o` at `depth`: refuses excessive depth and a container inside itself (`ancestors` holds the path). */
function enter(ancestors: object[], o: object, depth: number): void {
  if (depth >= MAX_DEPTH) throw new Unsupported(`nesting deeper than ${MAX_DEPTH} levels`);
  for (let i = 0; i < depth; i++) if (ancestors[i] === o) throw new Unsupported("a cyclic reference");
  ancestors[depth] = o;
}

/** Ends a {@link Check} whose budget is spent. */
const SPENT = Symbol("spent");

/**
 * The walk of {@link checkEncodable}: the rules of {@link Walk} ({@link kindOf}, {@link enter},
 * the `__proto__` key), without packing or copying anything, for at most `budget` values.
 */
class Check {
  private readonly ancestors: object[] = [];

  constructor(private budget: number) {}

  value(v: unknown, depth: number): void {
    if (this.budget-- <= 0) throw SPENT;
    const kind = kindOf(v);
    if (kind === Kind.Leaf || kind === Kind.Binary) return;
    const o = v as object;
    enter(this.ancestors, o, depth);
    const inner = depth + 1;
    if (kind === Kind.Plain) {
      const src = o as Record<string, unknown>;
      for (const key of Object.keys(src)) {
        if (key === "__proto__") throw inside(new Unsupported(`an own property named "__proto__" (it cannot be restored safely)`), key);
        try {
          this.value(src[key], inner); // a getter may throw: that is refused too
        } catch (err) {
          throw along(err, key);
        }
      }
    } else if (kind === Kind.Array) {
      const a = o as unknown[];
      for (let i = 0; i < a.length; i++) {
        try {
          this.value(a[i], inner);
        } catch (err) {
          throw along(err, i);
        }
      }
    } else {
      // a Map (keys and values) or a Set
      const map = kind === Kind.Map;
      let i = 0;
      for (const item of o as Iterable<unknown>) {
        try {
          if (map) {
            this.value((item as [unknown, unknown])[0], inner);
            this.value((item as [unknown, unknown])[1], inner);
          } else this.value(item, inner);
        } catch (err) {
          throw along(err, map ? `<entry ${i}>` : `<element ${i}>`);
        }
        i++;
      }
    }
  }
}

/** What a {@link Check} rethrows from a child at `step`: the end of the budget as it is, else {@link inside}. */
function along(err: unknown, step: string | number): unknown {
  return err === SPENT ? err : inside(err, step);
}

/** Values {@link checkEncodable} looks at, at most, inside the value it checks (depth first). */
export const CHECK_BUDGET = 64;

/**
 * Refuses with {@link EncodeError} — the error, and the message, the codec would give — a value
 * that cannot be encoded, without encoding it: the value itself and, inside its plain objects,
 * arrays, `Map`s and `Set`s, the first `budget` values depth first (a function, a symbol, a class
 * instance, a `SharedArrayBuffer`, a bigint out of range, a cycle, nesting deeper than
 * `MAX_DEPTH`, a `__proto__` key, a getter that throws). What lies beyond the budget is not
 * looked at. Nothing is packed or copied.
 */
export function checkEncodable(value: unknown, budget = CHECK_BUDGET): void {
  try {
    const kind = kindOf(value);
    if (kind !== Kind.Leaf && kind !== Kind.Binary) new Check(budget + 1).value(value, 0); // the value, then `budget` inside it
  } catch (err) {
    if (err !== SPENT) throw encodeError(err);
  }
}

/** The {@link EncodeError} of a failed walk. */
function encodeError(err: unknown): EncodeError {
  if (err instanceof Unsupported) return new EncodeError(`cannot encode ${formatPath(err.path)}: ${err.reason}`, { cause: err.cause });
  return new EncodeError(`cannot encode value: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** The bytes of a view, as a Uint8Array over the same memory. */
function viewBytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** A copy of `src` holding its first `n` keys (the rest are added by the caller). */
function copyKeys(src: Record<string, unknown>, keys: string[], n: number): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (let j = 0; j < n; j++) {
    const k = keys[j];
    const name = (k as unknown as WellFormed).isWellFormed() ? k : (k as unknown as WellFormed).toWellFormed();
    copy[name] = src[k];
  }
  return copy;
}

/** Adds a path step to an error thrown by a nested walk (a getter's own error is wrapped). */
function inside(err: unknown, step: string | number): Unsupported {
  const u = err instanceof Unsupported ? err : new Unsupported(`reading it threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, err);
  u.path.unshift(step);
  return u;
}

/** Formats a path like `value.samples[3].name`. */
function formatPath(path: (string | number)[]): string {
  let out = "value";
  for (const step of path) {
    if (typeof step === "number") out += `[${step}]`;
    else if (step.startsWith("<")) out += ` ${step}`;
    else if (/^[A-Za-z_$][\w$]*$/.test(step)) out += `.${step}`;
    else out += `[${JSON.stringify(step)}]`;
  }
  return out;
}

/**
 * Checks `value`, takes its binary buffers out and replaces what MessagePack alone would lose.
 * Throws {@link EncodeError} (naming the place in the value) for what cannot travel.
 */
export function extract(value: unknown): Extracted {
  const walk = new Walk();
  try {
    return { value: walk.value(value, 0), buffers: walk.buffers };
  } catch (err) {
    throw encodeError(err);
  }
}
