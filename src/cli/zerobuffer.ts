/**
 * `plexus zerobuffer <role> NAME [options]`: ZeroBuffer peers for interoperability tests from a
 * shell. Every role prints exactly one JSON line on stdout with an `"errors": [...]` array,
 * writes diagnostics on stderr, exits 0 only if everything it checked was right (2 for a bad
 * option value), and ignores options it does not know. Roles: `reader`, `writer`, `duplex-server`, `duplex-client`
 * (docs/zerobuffer.md, "Testing against Plexus from a shell").
 *
 * Frame `seq` (from 1) has size `sizes[(seq - 1) % sizes.length]` and byte `i` =
 * `(seq * 31 + i) & 0xff`; metadata byte `i` = `(i * 7 + 3) & 0xff`; `add1` = `(b + 1) & 0xff`,
 * `xor` = `b ^ 0xff`.
 * @module
 */
import { renameSync, writeFileSync } from "node:fs";
import { Command } from "commander";
import {
  DuplexClient,
  DuplexServer,
  InPlaceClient,
  InPlaceServer,
  Reader,
  SequenceError,
  Writer,
  type Frame,
  type HeaderSnapshot,
} from "../zerobuffer/index.js";
import { Exit } from "./common.js";

/** Most error messages one role reports (the count of the rest is added). */
const MAX_ERRORS = 50;

/** The reference peers' defaults for the sizes a caller may omit. */
const READER_METADATA_SIZE = 1024;
const DUPLEX_PAYLOAD_SIZE = 1 << 20;
const DUPLEX_METADATA_SIZE = 4096;

/** The transforms of the duplex roles. */
export type Transform = "echo" | "add1" | "xor";

/** Byte `i` of frame `seq`. */
export function patternByte(seq: number, i: number): number {
  return (seq * 31 + i) & 0xff;
}

/** Fills `target` with the content of frame `seq`. */
export function fillPattern(target: Uint8Array, seq: number): void {
  const base = (seq * 31) & 0xff;
  for (let i = 0; i < target.length; i++) target[i] = (base + i) & 0xff;
}

/** The metadata of `length` bytes. */
export function metadataPattern(length: number): Uint8Array {
  const m = new Uint8Array(length);
  for (let i = 0; i < length; i++) m[i] = (i * 7 + 3) & 0xff;
  return m;
}

/** Applies a transform to one byte. */
export function transformByte(t: Transform, b: number): number {
  if (t === "add1") return (b + 1) & 0xff;
  if (t === "xor") return b ^ 0xff;
  return b;
}

/** Index of the first byte of `data` that is not `transform(pattern(seq))`, or -1. */
function firstMismatch(data: Uint8Array, seq: number, t: Transform): number {
  const base = (seq * 31) & 0xff;
  for (let i = 0; i < data.length; i++) if (data[i] !== transformByte(t, (base + i) & 0xff)) return i;
  return -1;
}

/** Collected problems of one run. */
class Errors {
  readonly list: string[] = [];
  private dropped = 0;
  /** A usage error was among them (exit 2). */
  misused = false;
  /** A bad option: recorded as `usage: …`, and the role exits 2. */
  usage(message: string): void {
    this.misused = true;
    this.add(`usage: ${message}`);
  }
  add(message: string): void {
    if (this.list.length < MAX_ERRORS) this.list.push(message);
    else this.dropped++;
  }
  addError(context: string, err: unknown): void {
    const e = err as { name?: string; code?: string; message?: string };
    this.add(`${context}: ${e?.name ?? "Error"}${e?.code ? ` [${e.code}]` : ""}: ${e?.message ?? String(err)}`);
  }
  toJSON(): string[] {
    return this.dropped > 0 ? [...this.list, `... and ${this.dropped} more`] : this.list;
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

function log(text: string): void {
  process.stderr.write(`zerobuffer: ${text}\n`);
}

/** Prints the role's one JSON line and sets the exit code (0 verified, 1 failed, 2 bad usage). */
function finish(result: Record<string, unknown>, errors: Errors): void {
  process.stdout.write(`${JSON.stringify({ ...result, ok: errors.empty, errors: errors.toJSON() })}\n`);
  process.exitCode = errors.empty ? Exit.Ok : errors.misused ? Exit.Usage : Exit.Failed;
}

type Raw = Record<string, string | boolean | undefined>;

/** Option readers that record usage errors instead of throwing. */
class Args {
  constructor(
    private readonly raw: Raw,
    private readonly errors: Errors,
  ) {}
  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== false;
  }
  int(key: string, flag: string, fallback?: number, min = 0): number {
    const v = this.raw[key];
    if (v === undefined || v === true || v === false) {
      if (fallback === undefined) this.errors.usage(`${flag} is required`);
      return fallback ?? 0;
    }
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) {
      this.errors.usage(`${flag} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
      return fallback ?? 0;
    }
    return n;
  }
  seconds(key: string, flag: string, fallback: number): number {
    const v = this.raw[key];
    if (v === undefined || typeof v === "boolean") return fallback * 1000;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      this.errors.usage(`${flag} must be a number of seconds, got ${JSON.stringify(v)}`);
      return fallback * 1000;
    }
    return n * 1000;
  }
  text(key: string): string | undefined {
    const v = this.raw[key];
    return typeof v === "string" ? v : undefined;
  }
  choice<T extends string>(key: string, flag: string, values: readonly T[], fallback: T): T {
    const v = this.raw[key];
    if (v === undefined || typeof v === "boolean") return fallback;
    if ((values as readonly string[]).includes(v)) return v as T;
    this.errors.usage(`${flag} must be one of ${values.join("|")}, got ${JSON.stringify(v)}`);
    return fallback;
  }
  /** `--sizes a,b,c` or `--frame-size B`. */
  sizes(required: boolean): number[] | undefined {
    const list = this.text("sizes");
    if (list !== undefined) {
      const sizes = list.split(",").map((s) => Number(s.trim()));
      if (sizes.length === 0 || sizes.some((n) => !Number.isSafeInteger(n) || n < 1)) {
        this.errors.usage(`--sizes must be a comma-separated list of integers >= 1, got ${JSON.stringify(list)}`);
        return [1];
      }
      return sizes;
    }
    if (this.has("frameSize")) return [this.int("frameSize", "--frame-size", 1, 1)];
    if (required) this.errors.usage("--sizes a,b,c or --frame-size B is required");
    return undefined;
  }
}

function sizeOf(sizes: readonly number[], seq: number): number {
  return sizes[(seq - 1) % sizes.length] as number;
}

/** Writes the ready file atomically (a temporary file renamed into place). */
function writeReady(path: string | undefined, content: Record<string, unknown>): void {
  if (path === undefined) return;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content)}\n`);
  renameSync(tmp, path);
}

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1] as number;
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Checks expected metadata; returns its length (or null when none was written). */
function checkMetadata(metadata: Uint8Array | null, args: Args, errors: Errors): number | null {
  const text = args.text("expectMetadataText");
  const bytes = args.has("expectMetadataBytes") ? args.int("expectMetadataBytes", "--expect-metadata-bytes", 0, 1) : undefined;
  if (text === undefined && bytes === undefined) return metadata?.length ?? null;
  if (metadata === null) {
    errors.add("metadata: none was written");
    return null;
  }
  if (text !== undefined) {
    const got = Buffer.from(metadata).toString("utf8");
    if (got !== text) errors.add(`metadata: expected text ${JSON.stringify(text)}, got ${JSON.stringify(got.slice(0, 200))}`);
  } else if (bytes !== undefined) {
    if (metadata.length !== bytes) errors.add(`metadata: expected ${bytes} bytes, got ${metadata.length}`);
    else {
      const want = metadataPattern(bytes);
      const i = want.findIndex((b, k) => metadata[k] !== b);
      if (i >= 0) errors.add(`metadata: byte ${i} is ${metadata[i]}, expected ${want[i]}`);
    }
  }
  return metadata.length;
}

/** `reader` role. */
async function runReader(name: string, raw: Raw): Promise<void> {
  const errors = new Errors();
  const args = new Args(raw, errors);
  const frames = args.int("frames", "--frames", undefined, 0);
  const payloadSize = args.int("payloadSize", "--payload-size", undefined, 17);
  const metadataSize = args.int("metadataSize", "--metadata-size", READER_METADATA_SIZE, 0);
  const sizes = args.sizes(false);
  const timeout = args.seconds("timeout", "--timeout", 10);
  const expectPattern = args.has("expectPattern");
  const result: Record<string, unknown> = { role: "reader", name, frames: 0, bytes: 0 };
  if (!errors.empty) return finish(result, errors);
  const started = performance.now();
  let reader: Reader | undefined;
  try {
    reader = await Reader.create(name, { payloadSize, metadataSize, timeout });
    writeReady(args.text("readyFile"), { role: "reader", name, pid: process.pid });
    log(`reader "${name}" ready (payload ${reader.payloadSize}, metadata ${reader.metadataSize})`);
    let count = 0;
    let bytes = 0;
    let metadataChecked = false;
    while (count < frames) {
      let frame: Frame;
      try {
        frame = await reader.read();
      } catch (err) {
        if (err instanceof SequenceError) {
          errors.addError(`frame ${count + 1}`, err);
          continue;
        }
        throw err;
      }
      count++;
      bytes += frame.data.length;
      if (!metadataChecked) {
        metadataChecked = true;
        result.metadataBytes = checkMetadata(reader.metadata(), args, errors);
      }
      if (sizes !== undefined && frame.data.length !== sizeOf(sizes, frame.sequence)) {
        errors.add(`frame ${frame.sequence}: ${frame.data.length} bytes, expected ${sizeOf(sizes, frame.sequence)}`);
      }
      if (expectPattern) {
        const i = firstMismatch(frame.data, frame.sequence, "echo");
        if (i >= 0) errors.add(`frame ${frame.sequence}: byte ${i} is ${frame.data[i]}, expected ${patternByte(frame.sequence, i)}`);
      }
      frame.release();
    }
    result.frames = count;
    result.bytes = bytes;
    if (frames === 0) result.metadataBytes = checkMetadata(reader.metadata(), args, errors);
    const h: HeaderSnapshot = reader.headerSnapshot();
    result.header = h;
    if (h.payloadFreeBytes !== h.payloadSize) errors.add(`header: payload_free_bytes ${h.payloadFreeBytes} != payload_size ${h.payloadSize}`);
    if (h.readPos !== h.writePos % h.payloadSize) errors.add(`header: read_pos ${h.readPos} != write_pos % payload_size (${h.writePos % h.payloadSize})`);
  } catch (err) {
    errors.addError("reader", err);
  } finally {
    await reader?.close();
  }
  result.elapsedMs = round(performance.now() - started);
  finish(result, errors);
}

/** `writer` role. */
async function runWriter(name: string, raw: Raw): Promise<void> {
  const errors = new Errors();
  const args = new Args(raw, errors);
  const frames = args.int("frames", "--frames", undefined, 0);
  const sizes = args.sizes(true) ?? [1];
  const api = args.choice("api", "--api", ["copy", "zerocopy", "mixed"] as const, "copy");
  const writeTimeout = args.seconds("writeTimeout", "--write-timeout", 5);
  const timeout = args.seconds("timeout", "--timeout", 10);
  const metadataText = args.text("metadataText");
  const metadataBytes = args.has("metadataBytes") ? args.int("metadataBytes", "--metadata-bytes", 0, 1) : undefined;
  const result: Record<string, unknown> = { role: "writer", name, api, frames: 0, bytes: 0 };
  if (!errors.empty) return finish(result, errors);
  const started = performance.now();
  let writer: Writer | undefined;
  try {
    writer = await Writer.connect(name, { timeout, writeTimeout });
    log(`writer connected to "${name}" (payload ${writer.payloadSize})`);
    if (metadataText !== undefined) writer.setMetadata(Buffer.from(metadataText, "utf8"));
    else if (metadataBytes !== undefined) writer.setMetadata(metadataPattern(metadataBytes));
    const scratch = new Uint8Array(Math.max(...sizes));
    let bytes = 0;
    for (let seq = 1; seq <= frames; seq++) {
      const size = sizeOf(sizes, seq);
      const zeroCopy = api === "zerocopy" || (api === "mixed" && seq % 2 === 0);
      let got: number;
      if (zeroCopy) {
        const fb = await writer.frameBuffer(size);
        fillPattern(fb.data, seq);
        got = fb.commit();
      } else {
        const data = scratch.subarray(0, size);
        fillPattern(data, seq);
        got = await writer.write(data);
      }
      if (got !== seq) errors.add(`frame ${seq} was written with sequence ${got}`);
      bytes += size;
      result.frames = seq;
      result.bytes = bytes;
    }
  } catch (err) {
    errors.addError(`frame ${Number(result.frames) + 1}`, err);
  } finally {
    await writer?.close();
  }
  result.elapsedMs = round(performance.now() - started);
  finish(result, errors);
}

/** `duplex-server` role (protocol 1, or the in-place protocol 2 with `--protocol 2`). */
async function runDuplexServer(name: string, raw: Raw): Promise<void> {
  const errors = new Errors();
  const args = new Args(raw, errors);
  const transform = args.choice("transform", "--transform", ["echo", "add1", "xor"] as const, "echo");
  const payloadSize = args.int("payloadSize", "--payload-size", DUPLEX_PAYLOAD_SIZE, 33);
  const metadataSize = args.int("metadataSize", "--metadata-size", DUPLEX_METADATA_SIZE, 0);
  const requests = args.int("requests", "--requests", undefined, 0);
  const timeout = args.seconds("timeout", "--timeout", 10);
  const protocol = args.choice("protocol", "--protocol", ["1", "2"] as const, "1");
  const expectPattern = args.has("expectPattern");
  const expectMetadata = args.has("expectMetadataBytes");
  const result: Record<string, unknown> = { role: "duplex-server", name, protocol: Number(protocol), transform, requests: 0 };
  if (!errors.empty) return finish(result, errors);
  const started = performance.now();
  let handled = 0;
  let inited = 0;
  let wake: (() => void) | undefined;
  const progress = (): void => {
    handled++;
    wake?.();
  };
  const checkRequest = (data: Uint8Array, sequence: number): void => {
    if (!expectPattern) return;
    const i = firstMismatch(data, sequence, "echo");
    if (i >= 0) errors.add(`request ${sequence}: byte ${i} is ${data[i]}, expected ${patternByte(sequence, i)}`);
  };
  const onInit = (metadata: Uint8Array | null): void => {
    inited++;
    if (expectMetadata) result.metadataBytes = checkMetadata(metadata, args, errors);
  };
  const onError = (err: Error): void => errors.addError("server", err);
  let server: DuplexServer | InPlaceServer | undefined;
  try {
    if (protocol === "1") {
      server = await DuplexServer.create(
        name,
        async (request, respond) => {
          checkRequest(request.data, request.sequence);
          const fb = await respond.frameBuffer(request.data.length);
          const src = request.data;
          const out = fb.data;
          if (transform === "echo") out.set(src);
          else for (let i = 0; i < src.length; i++) out[i] = transformByte(transform, src[i] as number);
          fb.commit();
          progress();
        },
        { payloadSize, metadataSize, onInit, onError, connectTimeout: timeout },
      );
    } else {
      server = await InPlaceServer.create(
        name,
        (request) => {
          checkRequest(request.data, request.sequence);
          const d = request.data;
          if (transform !== "echo") for (let i = 0; i < d.length; i++) d[i] = transformByte(transform, d[i] as number);
          progress();
        },
        { payloadSize, metadataSize, onInit, onError, drainTimeout: timeout },
      );
    }
    writeReady(args.text("readyFile"), { role: "duplex-server", name, pid: process.pid, protocol: Number(protocol) });
    log(`duplex-server "${name}" (protocol ${protocol}) ready`);
    let last = handled;
    let lastAt = performance.now();
    while (handled < requests) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, Math.min(100, timeout)));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
      if (handled !== last) {
        last = handled;
        lastAt = performance.now();
      } else if (performance.now() - lastAt > timeout) {
        errors.add(`no request for ${timeout / 1000} s after ${handled} of ${requests}`);
        break;
      }
    }
    if (expectMetadata && inited === 0 && requests > 0) errors.add("metadata: on_init was never called");
  } catch (err) {
    errors.addError("duplex-server", err);
  } finally {
    result.requests = handled;
    await server?.close();
    if (server instanceof InPlaceServer) {
      result.consumed = server.consumed;
      if (handled === requests && server.consumed < requests) errors.add(`the client released ${server.consumed} of ${requests} responses`);
    }
  }
  result.elapsedMs = round(performance.now() - started);
  finish(result, errors);
}

/** `duplex-client` role. */
async function runDuplexClient(name: string, raw: Raw): Promise<void> {
  const errors = new Errors();
  const args = new Args(raw, errors);
  const requests = args.int("requests", "--requests", undefined, 0);
  const sizes = args.sizes(true) ?? [1];
  const transform = args.choice("transform", "--transform", ["echo", "add1", "xor"] as const, "echo");
  const window = args.int("window", "--window", 1, 1);
  const api = args.choice("api", "--api", ["copy", "zerocopy"] as const, "copy");
  const timeout = args.seconds("timeout", "--timeout", 10);
  const protocol = args.choice("protocol", "--protocol", ["1", "2"] as const, "1");
  const responsePayloadSize = args.int("responsePayloadSize", "--response-payload-size", 256 << 20, 17);
  const metadataBytes = args.has("metadataBytes") ? args.int("metadataBytes", "--metadata-bytes", 0, 1) : undefined;
  const result: Record<string, unknown> = { role: "duplex-client", name, protocol: Number(protocol), transform, api, window, requests: 0 };
  if (!errors.empty) return finish(result, errors);
  const started = performance.now();
  const metadata = metadataBytes === undefined ? undefined : metadataPattern(metadataBytes);
  const rtts: number[] = [];
  let client: DuplexClient | InPlaceClient | undefined;
  try {
    client =
      protocol === "1"
        ? await DuplexClient.connect(name, { timeout, responsePayloadSize, ...(metadata ? { metadata } : {}) })
        : await InPlaceClient.connect(name, { timeout, ...(metadata ? { metadata } : {}) });
    log(`duplex-client connected to "${name}" (protocol ${protocol})`);
    const c = client;
    let next = 1;
    let done = 0;
    let failed = false;
    const one = async (): Promise<void> => {
      while (!failed && next <= requests) {
        const seq = next++;
        const size = sizeOf(sizes, seq);
        const t0 = performance.now();
        let response: Frame;
        if (api === "zerocopy") {
          const rb = await c.frameBuffer(size, { timeout });
          if (rb.sequence !== seq) errors.add(`request ${seq} got sequence ${rb.sequence}`);
          fillPattern(rb.data, seq);
          response = await rb.commit({ timeout });
        } else {
          const data = new Uint8Array(size);
          fillPattern(data, seq);
          response = await c.request(data, { timeout });
        }
        rtts.push((performance.now() - t0) * 1000);
        if (response.sequence !== seq) errors.add(`response to request ${seq} has sequence ${response.sequence}`);
        if (response.data.length !== size) errors.add(`response ${seq}: ${response.data.length} bytes, expected ${size}`);
        else {
          const i = firstMismatch(response.data, seq, transform);
          if (i >= 0) errors.add(`response ${seq}: byte ${i} is ${response.data[i]}, expected ${transformByte(transform, patternByte(seq, i))}`);
        }
        response.release();
        done++;
      }
    };
    const workers = Array.from({ length: Math.min(window, Math.max(1, requests)) }, () =>
      one().catch((err: unknown) => {
        failed = true;
        errors.addError(`request ${done + 1}`, err);
      }),
    );
    await Promise.all(workers);
    result.requests = done;
  } catch (err) {
    errors.addError("duplex-client", err);
  } finally {
    await client?.close();
  }
  const sorted = rtts.sort((a, b) => a - b);
  result.rtt_us = {
    count: sorted.length,
    min: round(sorted[0] ?? 0),
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    max: round(sorted[sorted.length - 1] ?? 0),
    mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
  };
  result.elapsedMs = round(performance.now() - started);
  finish(result, errors);
}

/** Adds the options every role may get (unknown ones are ignored). */
function role(parent: Command, name: string, description: string): Command {
  return parent
    .command(`${name} <name>`)
    .description(description)
    .allowUnknownOption()
    .allowExcessArguments()
    .option("--timeout <seconds>", "timeout in seconds");
}

/** The `zerobuffer` command with its four roles. */
export function zerobufferCommand(): Command {
  const zb = new Command("zerobuffer").description("ZeroBuffer peers for interoperability tests (one JSON line on stdout; exit 0 if verified)");
  role(zb, "reader", "create buffer NAME, read and verify frames, check the header accounting")
    .option("--frames <n>", "frames to read")
    .option("--payload-size <bytes>", "payload ring size")
    .option("--metadata-size <bytes>", "metadata block size (default 1024)")
    .option("--sizes <list>", "expected frame sizes a,b,c (cycled by sequence)")
    .option("--frame-size <bytes>", "expected size of every frame")
    .option("--expect-pattern", "check frame content (byte i of frame seq = (seq*31+i)&0xff)")
    .option("--expect-metadata-bytes <n>", "expect n bytes of metadata, byte i = (i*7+3)&0xff")
    .option("--expect-metadata-text <text>", "expect this UTF-8 metadata")
    .option("--ready-file <path>", "file written once the buffer is ready")
    .action((name: string, opts: Raw) => runReader(name, opts));
  role(zb, "writer", "connect to buffer NAME and write frames with the test pattern")
    .option("--frames <n>", "frames to write")
    .option("--sizes <list>", "frame sizes a,b,c (cycled by sequence)")
    .option("--frame-size <bytes>", "size of every frame")
    .option("--metadata-bytes <n>", "write n bytes of metadata first")
    .option("--metadata-text <text>", "write this UTF-8 metadata first")
    .option("--api <api>", "copy | zerocopy | mixed")
    .option("--write-timeout <seconds>", "write timeout")
    .action((name: string, opts: Raw) => runWriter(name, opts));
  role(zb, "duplex-server", "serve channel NAME: answer requests with a transform")
    .option("--transform <t>", "echo | add1 | xor")
    .option("--payload-size <bytes>", "request buffer payload size (default 1 MiB)")
    .option("--metadata-size <bytes>", "request buffer metadata size (default 4096)")
    .option("--requests <n>", "requests to answer before exiting")
    .option("--expect-pattern", "check request content")
    .option("--expect-metadata-bytes <n>", "expect n bytes of client metadata")
    .option("--ready-file <path>", "file written once the channel is ready")
    .option("--protocol <1|2>", "1: ZeroBuffer v1 duplex; 2: Plexus in-place duplex")
    .action((name: string, opts: Raw) => runDuplexServer(name, opts));
  role(zb, "duplex-client", "send requests on channel NAME and verify the responses")
    .option("--requests <n>", "requests to send")
    .option("--sizes <list>", "request sizes a,b,c (cycled by sequence)")
    .option("--frame-size <bytes>", "size of every request")
    .option("--transform <t>", "echo | add1 | xor, as the server applies")
    .option("--window <k>", "requests in flight")
    .option("--metadata-bytes <n>", "metadata to set on the request buffer")
    .option("--api <api>", "copy | zerocopy")
    .option("--protocol <1|2>", "1: ZeroBuffer v1 duplex; 2: Plexus in-place duplex")
    .option("--response-payload-size <bytes>", "payload of the response buffer (protocol 1; default 256 MiB)")
    .action((name: string, opts: Raw) => runDuplexClient(name, opts));
  return zb;
}
