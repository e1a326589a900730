/**
 * ZeroBuffer v1 duplex channels (docs/zerobuffer-protocol.md §10): request/response over two
 * ordinary buffers, `{channel}_request` (client writes, server reads; the server owns it) and
 * `{channel}_response` (server writes, client reads; the client owns it). Correlation is
 * positional: exactly one response per request, in order, so the k-th response has sequence k.
 * @module
 */
import { ClosedError, InvalidArgumentError, SequenceError, TimeoutError } from "../errors.js";
import { checkOptions, Deadline, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { describe, readOptions } from "../util/options.js";
import { ReaderAlreadyConnectedError, ReaderDeadError, WriterAlreadyConnectedError, WriterDeadError } from "./errors.js";
import type { Frame } from "./frame.js";
import { checkName, requestName, responseName } from "./names.js";
import { Pending } from "./pending.js";
import { FRAME_HEADER_V1 } from "./oieb.js";
import { MAX_SIZE, Reader, readerSettings, type ReaderOptions } from "./reader.js";
import { alive, raceAbort, sleep } from "./waits.js";
import { Writer, type FrameBuffer } from "./writer.js";

/** A response as the client sees it: a read-only view, released like any {@link Frame}. */
export type DuplexResponse = Frame;

/**
 * How a handler answers: `respond(bytes)` writes the response (one copy), or
 * `respond.frameBuffer(size)` lends space to fill in place and `commit()`. Exactly once per
 * request.
 */
export interface Respond {
  /** Writes the response (one copy into the response ring). */
  (data: ArrayBufferView): Promise<void>;
  /** Lends space for a response of `size` bytes; fill `data`, then `commit()` before the handler ends. */
  frameBuffer(size: number): Promise<FrameBuffer>;
}

/**
 * A request handler. `request.data` is a view of the request ring, valid until the handler's
 * promise settles (the request is released afterwards). It must respond exactly once.
 */
export type DuplexHandler = (request: Frame, respond: Respond) => void | Promise<void>;

/** Options of {@link DuplexServer.create}. */
export interface DuplexServerOptions extends ReaderOptions {
  /**
   * How long a client's first request waits for the response writer to connect, ms (default
   * 5000). The server keeps trying (every 100 ms) while no client is served, so it is connected
   * before the first request of any client that created its response buffer.
   */
  connectTimeout?: number;
  /** Timeout of each response write, ms (default 5000). */
  writeTimeout?: number;
  /** Called once per client, after its first request, with the request buffer's metadata (C#/Python `on_init`). */
  onInit?: (metadata: Uint8Array | null) => void;
  /** Errors the server recovers from (a failed handler, a client that died, a sequence gap). */
  onError?: (err: Error) => void;
}

/** Retry period of the response writer's connection (the reference's 100 ms). */
const RETRY_MS = 100;

/** True while the reader of `w`'s buffer is there (it did not close, its process lives). */
function readerLive(w: Writer): boolean {
  const pid = w.readerPid;
  return pid !== 0 && alive(pid);
}

/**
 * The server side of a v1 duplex channel. It owns `{channel}_request`; for each client it
 * connects a writer to the client's `{channel}_response` as soon as the client created it
 * (trying every 100 ms while no client is served, as the reference servers do, so a client may
 * wait for the server before its first request), calls `onInit` after the client's first
 * request, then the handler for each request in order. When
 * a handler fails or does not respond, the server cannot keep positional correlation: it
 * reports the error, closes the response writer (the client's pending requests reject) and
 * ignores that client's further requests until it disconnects. A client that leaves (or dies)
 * ends its session; the next client is served the same way (a request with sequence 1 also
 * starts a new session).
 */
export class DuplexServer implements AsyncDisposable {
  /** Settles when the serving loop ends (after `close()`, or a broken request buffer). */
  readonly done: Promise<void>;
  private readonly closer = new AbortController();
  private readonly watching: Promise<void>;
  private responder: Writer | undefined;
  /** The connection attempt in progress (one at a time, shared by the watcher and a first request). */
  private attempt: Promise<void> | undefined;
  /** Why the last attempt failed (a failure that is not "no client yet" is reported once). */
  private lastFailure: Error | undefined;
  private session: "idle" | "active" | "failed" = "idle";
  private served = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    /** The channel name. */
    readonly channel: string,
    private readonly reader: Reader,
    private readonly handler: DuplexHandler,
    private readonly options: DuplexServerOptions,
    private readonly connectTimeout: number,
    private readonly writeTimeout: number,
  ) {
    this.done = this.run();
    this.watching = this.watch();
  }

  /**
   * Creates `{channel}_request` and starts serving.
   * @param channel - the channel name (the buffers add `_request` / `_response`)
   * @param handler - answers each request exactly once
   * @param options - request buffer sizes, timeouts, `onInit`, `onError`
   */
  static async create(channel: string, handler: DuplexHandler, options: DuplexServerOptions = {}): Promise<DuplexServer> {
    checkName(responseName(channel), "channel name + \"_response\"");
    if (typeof handler !== "function") throw new InvalidArgumentError(`DuplexServer.create: the handler must be a function, got ${describe(handler)}`);
    readerSettings("DuplexServer.create", options);
    const o = readOptions("DuplexServer.create", options);
    const connectTimeout = o.timeout("connectTimeout", 5000);
    const writeTimeout = o.timeout("writeTimeout", 5000);
    o.func("onInit");
    o.func("onError");
    const reader = await Reader.create(requestName(channel), options);
    return new DuplexServer(channel, reader, handler, options, connectTimeout, writeTimeout);
  }

  /** Requests answered so far (all clients). */
  get handled(): number {
    return this.served;
  }

  /** The request buffer's reader (for diagnostics). */
  get requestReader(): Reader {
    return this.reader;
  }

  /** Stops serving, disconnects from the response buffer, removes the request buffer. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closer.abort(new ClosedError(`DuplexServer "${this.channel}" is closed`));
      await this.done;
      await this.watching;
      await this.attempt;
      await this.responder?.close();
      this.responder = undefined;
      await this.reader.close();
    })();
    return this.closing;
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // an error handler that throws has nowhere to report to
    }
  }

  private async run(): Promise<void> {
    const signal = this.closer.signal;
    while (!signal.aborted) {
      let request: Frame;
      try {
        request = await this.reader.read({ timeout: Infinity, signal });
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof WriterDeadError) {
          if (!err.graceful) this.report(err);
          await this.endSession();
          continue;
        }
        if (err instanceof SequenceError) {
          // The next read returns that request. Sequence 1 is a new client that connected before
          // the server noticed the last one leave: start a new session for it.
          if (err.got === 1) await this.endSession();
          else this.report(err);
          continue;
        }
        this.report(err); // the request buffer is unusable
        return;
      }
      try {
        await this.handle(request, signal);
      } finally {
        request.release();
      }
    }
  }

  /** Ends the client's session: its response writer is closed, the watcher connects the next client's. */
  private async endSession(): Promise<void> {
    if (this.session === "idle") return; // the watcher's writer is for the client that comes next
    const w = this.responder;
    this.responder = undefined;
    this.session = "idle";
    await w?.close();
  }

  /**
   * While no client is served, keeps a writer on `{channel}_response`: connects as soon as a
   * client created it, and replaces it when that client leaves or dies before its first request.
   */
  private async watch(): Promise<void> {
    const signal = this.closer.signal;
    while (!signal.aborted) {
      const started = performance.now();
      // A client that closed its response buffer has left, even if its request writer's end was
      // not seen yet (the next client's writer connected first): its session is over.
      if (this.session === "active" && this.responder !== undefined && !readerLive(this.responder)) await this.endSession();
      if (this.session === "idle") await this.tryConnect(0);
      const left = RETRY_MS - (performance.now() - started);
      if (left > 0) await sleep(left, signal).catch(() => undefined);
    }
  }

  /**
   * One attempt to have a live response writer, waiting up to `waitMs` for the buffer (the
   * watcher looks once per period; a first request polls for it). Shared by whoever asks while
   * it runs.
   */
  private tryConnect(waitMs: number): Promise<void> {
    this.attempt ??= this.connectOnce(waitMs).finally(() => (this.attempt = undefined));
    return this.attempt;
  }

  private async connectOnce(waitMs: number): Promise<void> {
    const signal = this.closer.signal;
    const current = this.responder;
    if (current !== undefined) {
      if (readerLive(current)) return;
      this.responder = undefined; // its client closed or died: wait for the next one's buffer
      await current.close();
    }
    try {
      this.responder = await Writer.connect(responseName(this.channel), { timeout: waitMs, signal, writeTimeout: this.writeTimeout });
      this.lastFailure = undefined;
    } catch (err) {
      if (signal.aborted) return;
      const e = err instanceof Error ? err : new Error(String(err));
      const expected = e instanceof TimeoutError || e instanceof WriterAlreadyConnectedError || e instanceof ReaderDeadError || e instanceof ReaderAlreadyConnectedError;
      if (!expected && e.message !== this.lastFailure?.message) this.report(e);
      this.lastFailure = e;
    }
  }

  /** The response writer for a client's first request, waiting up to `connectTimeout` for it. */
  private async awaitResponder(request: Frame, signal: AbortSignal): Promise<Writer> {
    const deadline = new Deadline(this.connectTimeout);
    for (;;) {
      const started = performance.now();
      await this.tryConnect(Math.min(RETRY_MS, deadline.remaining()));
      const w = this.responder;
      if (w !== undefined && readerLive(w)) return w;
      if (signal.aborted) throw new ClosedError(`DuplexServer "${this.channel}" is closed`);
      if (deadline.remaining() <= 0) {
        const last = this.lastFailure;
        if (last !== undefined && !(last instanceof TimeoutError)) throw last;
        throw new TimeoutError(
          `DuplexServer "${this.channel}": no response buffer "${responseName(this.channel)}" to answer request ${request.sequence} within ${this.connectTimeout} ms`,
          last === undefined ? undefined : { cause: last },
        );
      }
      const left = Math.min(RETRY_MS - (performance.now() - started), deadline.remaining());
      if (left > 0) await sleep(left, signal);
    }
  }

  private async handle(request: Frame, signal: AbortSignal): Promise<void> {
    if (this.session === "failed") return;
    try {
      if (this.session === "idle") {
        await this.awaitResponder(request, signal);
        this.session = "active";
        this.options.onInit?.(this.reader.metadata());
      }
      const writer = this.responder as Writer;
      let calls = 0;
      let written: Promise<unknown> | undefined;
      let loan: FrameBuffer | undefined;
      const twice = (): Promise<never> => Promise.reject(new InvalidArgumentError("respond: a request gets exactly one response"));
      const respond: Respond = Object.assign(
        (data: ArrayBufferView): Promise<void> => {
          if (calls++ > 0) return twice();
          const p = writer.write(data, { signal }).then(() => undefined);
          written = p;
          return p;
        },
        {
          frameBuffer: (size: number): Promise<FrameBuffer> => {
            if (calls++ > 0) return twice();
            const p = writer.frameBuffer(size, { signal }).then((fb) => (loan = fb));
            written = p;
            return p;
          },
        },
      );
      let handlerError: unknown;
      try {
        const r = this.handler(request, respond);
        if (r !== undefined) await raceAbort(Promise.resolve(r), signal);
      } catch (err) {
        handlerError = err;
      }
      if (signal.aborted) return;
      if (written !== undefined) await written;
      if (calls === 0) {
        throw handlerError ?? new InvalidArgumentError(`DuplexServer "${this.channel}": the handler did not respond to request ${request.sequence}`);
      }
      if (loan !== undefined && writer.sequence < loan.sequence) {
        loan.cancel();
        throw handlerError ?? new InvalidArgumentError(`DuplexServer "${this.channel}": the handler did not commit its response to request ${request.sequence}`);
      }
      this.served++;
      if (handlerError !== undefined) this.report(handlerError); // it responded: correlation holds
    } catch (err) {
      if (signal.aborted) return;
      // No response: positional correlation is lost, so end this client's session loudly.
      this.report(err);
      this.session = "failed";
      const w = this.responder;
      this.responder = undefined;
      await w?.close();
    }
  }
}

/** Options of {@link DuplexClient.connect}. */
export interface DuplexClientOptions extends BlockingOptions {
  /** How long to wait for the server's request buffer, ms; also the default request timeout (default 5000). */
  timeout?: number;
  /** Metadata to store in the request buffer (write-once per buffer, C++/C# `set_metadata`). */
  metadata?: ArrayBufferView;
  /** Payload size of the response buffer the client creates (default 256 MiB, as in the reference). */
  responsePayloadSize?: number;
  /** Metadata size of the response buffer (default 4096). */
  responseMetadataSize?: number;
  /** Busy-poll for a response this many µs before sleeping (default 0; see {@link ReaderOptions.spinMicros}). */
  spinMicros?: number;
  /** Poll for the responses of a paced request stream when they are due (default false; see {@link ReaderOptions.anticipate}). */
  anticipate?: boolean;
}

/**
 * A request being built in place: fill `data`, then `commit()` sends it and resolves with the
 * response. `cancel()` (or `using` without commit) sends nothing.
 */
export interface RequestBuffer extends Disposable {
  /** Where to write the request: a view of the request ring. */
  readonly data: Uint8Array;
  /** The sequence number the request will get. */
  readonly sequence: number;
  /** Sends the request; resolves with its response. */
  commit(opts?: BlockingOptions): Promise<DuplexResponse>;
  /** Sends nothing; idempotent. */
  cancel(): void;
}

/**
 * The client side of a v1 duplex channel. `connect` opens a writer to `{channel}_request`
 * (waiting until the server created it, C++/C# order) and then creates `{channel}_response`.
 * Many requests may be in flight; responses come back in order and each resolves its request.
 * A response is a view of the response ring: release it (FIFO) when done.
 */
export class DuplexClient implements AsyncDisposable {
  private readonly pending: Pending[] = [];
  private pumping = false;
  private pause = new AbortController();
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    /** The channel name. */
    readonly channel: string,
    private readonly writer: Writer,
    private readonly reader: Reader,
    private readonly timeout: number,
  ) {}

  /**
   * Connects to a server's channel.
   * @param channel - the channel name
   * @param options - connect/request `timeout`, `signal`, `metadata`, response buffer sizes
   */
  static async connect(channel: string, options: DuplexClientOptions = {}): Promise<DuplexClient> {
    checkName(responseName(channel), "channel name + \"_response\"");
    const o = readOptions("DuplexClient.connect", options);
    const timeout = o.timeout("timeout", 5000);
    const signal = o.signal("signal");
    const metadata = o.bytes("metadata");
    const response: ReaderOptions = {
      payloadSize: o.int("responsePayloadSize", 256 << 20, FRAME_HEADER_V1 + 1, MAX_SIZE),
      metadataSize: o.int("responseMetadataSize", 4096, 0, MAX_SIZE),
      spinMicros: o.spin("spinMicros", 0),
      anticipate: o.bool("anticipate", false),
    };
    throwIfAborted(signal, `DuplexClient "${channel}" connect`);
    const writer = await Writer.connect(requestName(channel), { timeout, ...(signal ? { signal } : {}) });
    try {
      if (metadata !== undefined) writer.setMetadata(metadata);
      const reader = await Reader.create(responseName(channel), response);
      return new DuplexClient(channel, writer, reader, timeout);
    } catch (err) {
      await writer.close();
      throw err;
    }
  }

  /**
   * True while the server reads the request buffer and has its writer on the response buffer
   * (the reference's `is_server_connected`). The server connects as soon as the client created
   * its response buffer, so a client may wait for this before its first request.
   */
  get serverConnected(): boolean {
    if (this.closing !== undefined) return false;
    const server = this.writer.readerPid;
    const responder = this.reader.writerPid;
    return server !== 0 && responder !== 0 && alive(server) && alive(responder);
  }

  /** Requests sent (or being sent) whose response has not arrived. */
  get inFlight(): number {
    return this.pending.length;
  }

  /**
   * Sends `data` (one copy) and resolves with the response. Rejects with TimeoutError when
   * `timeout` (default: the client's) passes (a late response is then released unseen),
   * WriterDeadError when the server stops answering, and the errors of {@link Writer.write}.
   */
  async request(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<DuplexResponse> {
    checkOptions(opts, `DuplexClient "${this.channel}" request`);
    this.checkUsable();
    const timeout = opts.timeout ?? this.timeout;
    const deadline = new Deadline(timeout);
    const entry = new Pending();
    this.pending.push(entry);
    try {
      entry.sequence = await this.writer.write(data, { timeout, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      this.drop(entry);
      throw err;
    }
    return this.awaitResponse(entry, deadline, opts.signal);
  }

  /** Lends space in the request ring for a request of `size` bytes (zero-copy). */
  async frameBuffer(size: number, opts: BlockingOptions = {}): Promise<RequestBuffer> {
    checkOptions(opts, `DuplexClient "${this.channel}" frameBuffer`);
    this.checkUsable();
    const timeout = opts.timeout ?? this.timeout;
    const entry = new Pending();
    this.pending.push(entry);
    let fb: FrameBuffer;
    try {
      fb = await this.writer.frameBuffer(size, opts);
    } catch (err) {
      this.drop(entry);
      throw err;
    }
    let done = false;
    const cancel = (): void => {
      if (done) return;
      done = true;
      fb.cancel();
      this.drop(entry);
    };
    return {
      data: fb.data,
      sequence: fb.sequence,
      commit: (copts: BlockingOptions = {}) => {
        if (done) return Promise.reject(new InvalidArgumentError("RequestBuffer: already committed or cancelled"));
        done = true;
        try {
          entry.sequence = fb.commit();
        } catch (err) {
          this.drop(entry);
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        return this.awaitResponse(entry, new Deadline(copts.timeout ?? timeout), copts.signal);
      },
      cancel,
      [Symbol.dispose]: cancel,
    };
  }

  /** Rejects pending requests, disconnects the request writer (the server sees the client leave) and removes the response buffer. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const err = new ClosedError(`DuplexClient "${this.channel}" is closed`);
      for (const p of this.pending.splice(0)) p.reject(err);
      this.pause.abort(err);
      await this.writer.close();
      await this.reader.close();
    })();
    return this.closing;
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private checkUsable(): void {
    if (this.closing !== undefined) throw new ClosedError(`DuplexClient "${this.channel}" is closed`);
    if (this.broken !== undefined) throw this.broken;
  }

  private drop(entry: Pending): void {
    const i = this.pending.indexOf(entry);
    if (i >= 0) this.pending.splice(i, 1);
    this.maybePause();
  }

  private awaitResponse(entry: Pending, deadline: Deadline, signal: AbortSignal | undefined): Promise<DuplexResponse> {
    this.startPump();
    return entry.wait(deadline, signal, `DuplexClient "${this.channel}" request`, () => this.maybePause());
  }

  /** Stops the pump's wait when no live request is left (so an idle client keeps no wait pending). */
  private maybePause(): void {
    if (this.pending.every((p) => p.abandoned)) {
      this.pause.abort();
      this.pause = new AbortController();
    }
  }

  private startPump(): void {
    if (this.pumping || this.closing !== undefined) return;
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.closing === undefined && this.broken === undefined && this.pending.some((p) => !p.abandoned)) this.startPump();
    });
  }

  private async pump(): Promise<void> {
    while (this.closing === undefined && this.pending.some((p) => !p.abandoned)) {
      const signal = this.pause.signal;
      let frame: Frame;
      try {
        frame = await this.reader.read({ timeout: Infinity, signal });
      } catch (err) {
        if (signal.aborted || this.closing !== undefined) return;
        if (err instanceof SequenceError) continue; // reported by the sequence check below on the next frame
        const e = err instanceof Error ? err : new Error(String(err));
        this.broken = e;
        for (const p of this.pending.splice(0)) p.reject(e);
        return;
      }
      const entry = this.pending.shift();
      if (entry === undefined) {
        frame.release(); // a response nobody asked for
        continue;
      }
      if (entry.sequence !== 0 && frame.sequence !== entry.sequence) {
        frame.release();
        entry.reject(new SequenceError(entry.sequence, frame.sequence));
      } else if (entry.abandoned) frame.release();
      else entry.resolve(frame);
    }
  }
}
