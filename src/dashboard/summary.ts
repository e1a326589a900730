/**
 * Message values made printable: typed arrays and buffers shortened, numbers picked out for
 * plots. Used by `plexus echo` and the dashboard's live message view.
 * @module
 */

/** JSON text of `value` with typed arrays shown as `"<Float64Array 1024: 1, 2, 3, …>"`. */
export function summarize(value: unknown, maxItems = 8, maxLength = 2000): string {
  let text: string;
  try {
    text =
      JSON.stringify(value, (_key, v: unknown) => {
        if (ArrayBuffer.isView(v)) {
          const arr = v instanceof DataView ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : (v as unknown as ArrayLike<number | bigint>);
          const head = Array.from({ length: Math.min(maxItems, arr.length) }, (_, i) => String(arr[i]));
          return `<${v.constructor.name} ${arr.length}${head.length ? `: ${head.join(", ")}${arr.length > maxItems ? ", …" : ""}` : ""}>`;
        }
        if (v instanceof ArrayBuffer) return `<ArrayBuffer ${v.byteLength}>`;
        if (typeof v === "bigint") return `${v}n`;
        if (v instanceof Map) return Object.fromEntries(v);
        if (v instanceof Set) return [...v];
        return v;
      }) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
}

/**
 * The numbers of a message, for a plot: the value itself if it is a number, the numeric fields
 * of an object (first level, at most `max`), and the mean of numeric typed arrays.
 */
export function numbersOf(value: unknown, max = 8): Record<string, number> {
  if (typeof value === "number" && Number.isFinite(value)) return { value };
  const out: Record<string, number> = {};
  if (value === null || typeof value !== "object") return out;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array)) {
    const a = value as unknown as ArrayLike<number>;
    if (a.length > 0) out.mean = mean(a);
    return out;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (Object.keys(out).length >= max) break;
    if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
    else if (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) {
      const a = v as unknown as ArrayLike<number>;
      if (a.length > 0) out[`mean(${k})`] = mean(a);
    }
  }
  return out;
}

function mean(a: ArrayLike<number>): number {
  let sum = 0;
  const n = Math.min(a.length, 4096);
  for (let i = 0; i < n; i++) sum += a[i];
  return sum / n;
}
