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
      case "boolean":
      case "undefined":
        return v;
      case "object":
        return v === null ? v : this.object(v, depth);
      case "bigint":
        if (v < INT64_MIN || v >= UINT64_END) throw new Unsupported("a bigint outside -2^63 .. 2^64-1");
        return v;
      default:
        throw new Unsupported(`a ${typeof v}`);
    }
  }

  private object(o: object, depth: number): unknown {
    const proto: unknown = Object.getPrototypeOf(o);
    if (proto === Object.prototype || proto === null) return this.container(o, depth, this.plain);
    if (proto === Array.prototype) return this.container(o as unknown[], depth, this.array);
    const type = BINARY_TYPES.get(proto as object);
    if (type !== undefined) return this.binary(o, type);
    if (proto === Date.prototype) return o;
    if (proto === Map.prototype) return this.container(o as Map<unknown, unknown>, depth, this.map);
    if (proto === Set.prototype) return this.container(o as Set<unknown>, depth, this.set);
    if (o instanceof SharedArrayBuffer) throw new Unsupported("a SharedArrayBuffer (send a typed array over it instead)");
    const name = (proto as { constructor?: { name?: unknown } } | undefined)?.constructor?.name;
    throw new Unsupported(`an instance of ${typeof name === "string" && name ? name : "a class"} (only plain objects, arrays, Map, Set, Date and binary buffers travel)`);
  }

  /** Walks a container's contents with `walk`, refusing cycles and excessive depth. */
  private container<T extends object>(o: T, depth: number, walk: (this: Walk, o: T, depth: number) => unknown): unknown {
    if (depth >= MAX_DEPTH) throw new Unsupported(`nesting deeper than ${MAX_DEPTH} levels`);
    const ancestors = this.ancestors;
    for (let i = 0; i < depth; i++) if (ancestors[i] === o) throw new Unsupported("a cyclic reference");
    ancestors[depth] = o;
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
    if (err instanceof Unsupported) throw new EncodeError(`cannot encode ${formatPath(err.path)}: ${err.reason}`, { cause: err.cause });
    throw new EncodeError(`cannot encode value: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
