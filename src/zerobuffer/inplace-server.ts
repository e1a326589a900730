/**
 * The server of the protocol 2 in-place duplex: owns the buffer, hands each request to the
 * handler as a mutable view and publishes the response in the same bytes.
 * @module
 */
import { ClosedError, InvalidArgumentError, SequenceError } from "../errors.js";
import type { Semaphore } from "../native.js";
import { InvalidFrameSizeError } from "./errors.js";
import { F2, FRAME_HEADER_V2, frameTotalV2, METADATA_OFFSET_V2, SEMS_V2, STATUS_FAILED, STATUS_OK } from "./inplace-layout.js";
import { checkName, requestName } from "./names.js";
import { align64, Header, OIEB_V2_SIZE, Q, readMetadata, readU64, writeU64 } from "./oieb.js";
import { createOwned, destroyOwned, type Owned } from "./owner.js";
import { MAX_SIZE } from "./reader.js";
import { describe, readOptions } from "../util/options.js";
import { alive, raceAbort, semWait, SLICE_MS, spinTry } from "./waits.js";

/**
 * A request as the in-place handler sees it. `data` is a **mutable** view of the shared payload:
 * change it in place; what it holds when the handler returns is the response. Valid only until
 * the handler returns (or its promise settles).
 */
export interface InPlaceRequest {
  /** The request bytes, to be transformed in place into the response. */
  readonly data: Uint8Array;
  /** The client's sequence number (from 1), preserved in the response. */
  readonly sequence: number;
}

/**
 * Handles one request in place. Return nothing to answer with all of `data`, or a length
 * (0..data.length) to answer with its first bytes. A thrown error reaches the client as a
 * HandlerError for this request only.
 */
export type InPlaceHandler = (request: InPlaceRequest) => void | number | Promise<void | number>;

/** Options of {@link InPlaceServer.create}. */
export interface InPlaceServerOptions {
  /** Payload size in bytes, rounded up to a multiple of 64 (default 1 MiB). */
  payloadSize?: number;
  /** Metadata block size, rounded up to a multiple of 64 (default 1024). */
  metadataSize?: number;
  /** How long `close()` waits for the client to consume the responses it has not yet released, ms (default 1000). */
  drainTimeout?: number;
  /** Called once per client session, after its first request, with the metadata. */
  onInit?: (metadata: Uint8Array | null) => void;
  /** Errors the server recovers from (a sequence gap, a broken ring until the next client). */
  onError?: (err: Error) => void;
  /** Busy-poll for a request this many µs before sleeping (default 0; costs a core while polling). */
  spinMicros?: number;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/**
 * The server of an in-place duplex channel (protocol 2). It owns the buffer
 * `{channel}_request` — the same name a v1 server uses, so a v1 client meets it and refuses it
 * with its version check instead of talking past it. There is no response buffer: the
 * handler changes the request where it lies, and the client reads the result from the same
 * memory, with the request's sequence number.
 *
 * ```ts
 * await using server = await InPlaceServer.create("frames", (req) => {
 *   for (let i = 0; i < req.data.length; i++) req.data[i] ^= 0xff; // transform in place
 * }, { payloadSize: 256 << 20 });
 * ```
 */
export class InPlaceServer implements AsyncDisposable {
  /** Settles when the serving loop ends (after `close()`). */
  readonly done: Promise<void>;
  private readonly header: Header;
  private readonly buffer: SharedArrayBuffer;
  private readonly view: DataView;
  private readonly payloadOffset: number;
  private readonly payloadSize: number;
  private readonly semW: Semaphore;
  private readonly semR: Semaphore;
  private readonly semP: Semaphore;
  private readonly semC: Semaphore;
  private readonly closer = new AbortController();
  private waiting: Promise<boolean> | undefined;
  private expected = 1;
  private fresh = true;
  private broken = false;
  private answered = 0;
  private consumedCount = 0;
  private sessionAnswered = 0;
  private sessionConsumedBase = 0;
  private destroyed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    /** The channel name. */
    readonly channel: string,
    private readonly owned: Owned,
    private readonly handler: InPlaceHandler,
    private readonly options: InPlaceServerOptions,
    private readonly drainTimeout: number,
    private readonly spinMicros: number,
  ) {
    this.buffer = owned.buffer;
    this.header = owned.header;
    this.payloadSize = this.header.load(Q.payloadSize);
    this.payloadOffset = OIEB_V2_SIZE + this.header.load(Q.metadataSize);
    this.view = new DataView(this.buffer, this.payloadOffset, this.payloadSize);
    this.semW = owned.sems.get("w") as Semaphore;
    this.semR = owned.sems.get("r") as Semaphore;
    this.semP = owned.sems.get("p") as Semaphore;
    this.semC = owned.sems.get("c") as Semaphore;
    this.done = this.run();
  }

  /**
   * Creates the protocol 2 buffer `{channel}_request` (stale scan, lock file, shared memory,
   * header, four semaphores) and starts serving.
   * @param channel - the channel name
   * @param handler - transforms each request in place
   * @param options - sizes, `drainTimeout`, `onInit`, `onError`
   */
  static async create(channel: string, handler: InPlaceHandler, options: InPlaceServerOptions = {}): Promise<InPlaceServer> {
    const name = requestName(channel);
    checkName(name, "channel name + \"_request\"");
    if (typeof handler !== "function") throw new InvalidArgumentError(`InPlaceServer.create: the handler must be a function, got ${describe(handler)}`);
    const o = readOptions("InPlaceServer.create", options);
    const payloadSize = align64(o.int("payloadSize", 1 << 20, FRAME_HEADER_V2 + 1, MAX_SIZE));
    const metadataSize = align64(o.int("metadataSize", 1024, 0, MAX_SIZE));
    const drainTimeout = o.timeout("drainTimeout", 1000);
    const spinMicros = o.spin("spinMicros", 0);
    o.func("onInit");
    o.func("onError");
    const owned = await createOwned({ name, oiebSize: OIEB_V2_SIZE, major: 2, metadataSize, payloadSize, sems: SEMS_V2 });
    return new InPlaceServer(channel, owned, handler, options, drainTimeout, spinMicros);
  }

  /** Requests answered so far (all sessions). */
  get handled(): number {
    return this.answered;
  }

  /** Responses the clients have released so far (counted from the response-consumed semaphore). */
  get consumed(): number {
    this.countConsumed();
    return this.consumedCount;
  }

  /** Shared memory used by the channel: header + metadata + payload, in bytes. */
  get sharedBytes(): number {
    return this.buffer.byteLength;
  }

  /**
   * Stops serving; waits up to `drainTimeout` for a live client to release the responses of its
   * session; then removes the buffer (server_pid = 0, shm, four semaphores, lock file). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async doClose(): Promise<void> {
    this.closer.abort(new ClosedError(`InPlaceServer "${this.channel}" is closed`));
    const pending = this.waiting;
    if (pending !== undefined) await pending.catch(() => false);
    await this.done;
    const end = performance.now() + this.drainTimeout;
    for (;;) {
      this.countConsumed();
      const client = this.header.load(Q.writerPid);
      const left = end - performance.now();
      if (this.sessionAnswered <= this.consumedCount - this.sessionConsumedBase || client === 0 || !alive(client) || left <= 0) break;
      if (await this.semC.wait(Math.min(left, SLICE_MS))) this.consumedCount++;
    }
    this.destroyed = true;
    destroyOwned(requestName(this.channel), this.owned, SEMS_V2);
  }

  private countConsumed(): void {
    if (this.destroyed) return;
    while (this.semC.tryWait()) this.consumedCount++;
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // nowhere to report
    }
  }

  /**
   * A new client asked for a session (session_request != session_ack): drop whatever the last
   * one left (stale semaphore counts, unanswered or unconsumed frames), rewind the ring, ack.
   */
  private resetSession(): void {
    const h = this.header;
    while (this.semW.tryWait());
    while (this.semP.tryWait());
    while (this.semR.tryWait());
    this.countConsumed();
    this.sessionConsumedBase = this.consumedCount;
    this.sessionAnswered = 0;
    for (const i of [Q.requestWritePos, Q.requestWrittenCount, Q.responseReadPos, Q.responseReadCount, Q.requestReadPos, Q.requestReadCount, Q.responseWrittenCount]) h.store(i, 0);
    h.store(Q.payloadFree, this.payloadSize);
    this.expected = 1;
    this.fresh = true;
    this.broken = false;
    h.store(Q.sessionAck, h.load(Q.sessionRequest));
  }

  private async run(): Promise<void> {
    const signal = this.closer.signal;
    const h = this.header;
    while (!signal.aborted) {
      let got = this.semW.tryWait() || (this.spinMicros > 0 && spinTry(this.semW, this.spinMicros));
      if (!got) {
        this.waiting = semWait(this.semW, SLICE_MS, signal);
        got = await this.waiting;
        this.waiting = undefined;
        if (signal.aborted) {
          if (got) this.semW.post();
          return;
        }
      }
      if (h.load(Q.sessionRequest) !== h.load(Q.sessionAck)) {
        this.resetSession();
        continue;
      }
      this.countConsumed();
      if (!got || this.broken) continue;
      // A count with no committed request behind it (a session doorbell that arrived after the
      // rewind drained the semaphore) must not make the server read a frame still being written.
      if (h.load(Q.requestWrittenCount) <= h.load(Q.requestReadCount)) continue;
      try {
        const r = this.serveOne();
        if (r !== undefined) await raceAbort(r, signal);
      } catch (err) {
        this.report(err);
      }
    }
  }

  /** Answers the request at request_read_pos; returns a promise only for an async handler. */
  private serveOne(): Promise<void> | undefined {
    const h = this.header;
    const size = this.payloadSize;
    const view = this.view;
    let pos = h.load(Q.requestReadPos);
    let n = readU64(view, pos + F2.length);
    if (n === 0) {
      // A wrap marker: the request is at 0 (one post for both).
      pos = 0;
      h.store(Q.requestReadPos, 0);
      h.add(Q.requestReadCount, 1);
      n = readU64(view, F2.length);
    }
    const total = frameTotalV2(n);
    if (n === 0 || n > size - FRAME_HEADER_V2 || pos + total > size) {
      this.broken = true; // until the next client session rewinds the ring
      throw new InvalidFrameSizeError(`in-place channel "${this.channel}": a request of ${n} bytes at offset ${pos} does not fit a ring of ${size} bytes`);
    }
    const sequence = readU64(view, pos + F2.sequence);
    if (sequence !== this.expected) this.report(new SequenceError(this.expected, sequence));
    this.expected = sequence + 1;
    const data = new Uint8Array(this.buffer, this.payloadOffset + pos + FRAME_HEADER_V2, n);
    if (this.fresh) {
      this.fresh = false;
      try {
        this.options.onInit?.(readMetadata(h, this.buffer, METADATA_OFFSET_V2));
      } catch (err) {
        this.report(err);
      }
    }
    let result: unknown;
    try {
      result = this.handler({ data, sequence });
    } catch (err) {
      this.publish(pos, total, data, err, true);
      return undefined;
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (v) => this.publish(pos, total, data, v, false),
        (err: unknown) => this.publish(pos, total, data, err, true),
      );
    }
    this.publish(pos, total, data, result, false);
    return undefined;
  }

  /** Writes response length and status, advances, posts response-ready. */
  private publish(pos: number, total: number, data: Uint8Array, value: unknown, failed: boolean): void {
    if (this.destroyed) return;
    const h = this.header;
    let status = STATUS_OK;
    let length = data.length;
    if (!failed && value !== undefined) {
      if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= data.length) length = value;
      else {
        failed = true;
        value = new InvalidArgumentError(`the handler returned ${String(value)}; expected nothing or a length from 0 to ${data.length}`);
      }
    }
    if (failed) {
      status = STATUS_FAILED;
      const text = value instanceof Error ? `${value.name}: ${value.message}` : String(value);
      const bytes = new TextEncoder().encode(text);
      length = Math.min(bytes.length, data.length);
      data.set(bytes.subarray(0, length));
      this.report(value);
    }
    writeU64(this.view, pos + F2.responseLength, length);
    this.view.setUint32(pos + F2.status, status, true);
    let next = pos + total;
    if (next >= this.payloadSize) next -= this.payloadSize;
    h.store(Q.requestReadPos, next);
    h.add(Q.requestReadCount, 1);
    h.add(Q.responseWrittenCount, 1);
    this.answered++;
    this.sessionAnswered++;
    this.semP.post();
  }
}
