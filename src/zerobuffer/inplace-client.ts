/**
 * The client of the protocol 2 in-place duplex: writes requests into the shared payload and
 * reads the server's responses from the same bytes.
 * @module
 */
import { ClosedError, FrameTooLargeError, InvalidArgumentError, ProtocolError, SequenceError, TimeoutError } from "../errors.js";
import { native, type Semaphore } from "../native.js";
import { checkOptions, Deadline, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";
import { connectWriter, type Connected } from "./connect.js";
import { BufferFullError, HandlerError, InvalidFrameSizeError, ReaderDeadError } from "./errors.js";
import { Frame, ReleaseFifo, type ReleaseTarget } from "./frame.js";
import { F2, FRAME_HEADER_V2, frameTotalV2, METADATA_OFFSET_V2, SEMS_V2, STATUS_FAILED, STATUS_OK } from "./inplace-layout.js";
import { checkName, requestName } from "./names.js";
import { Header, OIEB_V2_SIZE, Q, readU64, writeMetadata, writeU64 } from "./oieb.js";
import { Pending } from "./pending.js";
import { alive, linkSignals, Lock, semWait, sleep, SLICE_MS, spinTry, waitEndError } from "./waits.js";

/** Options of {@link InPlaceClient.connect}. */
export interface InPlaceClientOptions extends BlockingOptions {
  /** How long to wait for the server's buffer and its session acknowledgement, ms; also the default request timeout (default 5000). */
  timeout?: number;
  /** Metadata to store in the buffer (write-once per buffer), passed to the server's `onInit`. */
  metadata?: ArrayBufferView;
  /** Busy-poll for a response this many µs before sleeping (default 0; costs a core while polling). */
  spinMicros?: number;
}

/** A response of the in-place duplex: the request's own bytes, as the handler left them. Release it (FIFO). */
export type InPlaceResponse = Frame;

/**
 * A request being built in place: fill `data`, then `commit()` sends it and resolves with the
 * response — which lies in the very same bytes. `cancel()` sends nothing.
 */
export interface InPlaceRequestBuffer extends Disposable {
  /** Where to write the request: a view of the shared payload. */
  readonly data: Uint8Array;
  /** The sequence number the request will get. */
  readonly sequence: number;
  /** Sends the request; resolves with the response (a view of the same memory as `data`). */
  commit(opts?: BlockingOptions): Promise<InPlaceResponse>;
  /** Sends nothing; idempotent. */
  cancel(): void;
}

/** Payloads at least this large are copied by the addon's memcpy. */
const NATIVE_COPY_MIN = 512;

interface Plan {
  offset: number;
  wrapAt: number;
  tail: number;
  need: number;
}

/**
 * The client of an in-place duplex channel (protocol 2). `connect` waits for the server's
 * buffer, claims the client slot (a live client is refused with WriterAlreadyConnectedError),
 * and starts a session: the server rewinds the ring and acknowledges. Requests are written
 * into the shared payload (one copy with `request`, none with `frameBuffer`); the server
 * transforms them in place; the response resolves the request as a view of the same memory.
 * Many requests may be in flight; release responses (FIFO) to give their space back.
 *
 * ```ts
 * await using client = await InPlaceClient.connect("frames");
 * const req = await client.frameBuffer(3_110_416);
 * capture(req.data);                    // fill in place
 * using res = await req.commit();       // res.data is req.data, transformed by the server
 * ```
 */
export class InPlaceClient implements AsyncDisposable, ReleaseTarget {
  private readonly buffer: SharedArrayBuffer;
  private readonly header: Header;
  private readonly view: DataView;
  private readonly payloadOffset: number;
  /** Payload size of the shared ring. */
  readonly payloadSize: number;
  private readonly semW: Semaphore;
  private readonly semR: Semaphore;
  private readonly semP: Semaphore;
  private readonly semC: Semaphore;
  private readonly lock = new Lock();
  private readonly closer = new AbortController();
  private readonly held = new ReleaseFifo();
  private readonly pending: Pending[] = [];
  private writePos = 0;
  private nextSequence = 1;
  private readPos = 0;
  private pumping = false;
  private pause = new AbortController();
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;
  private writeWait: Promise<boolean> | undefined;
  private readWait: Promise<boolean> | undefined;
  private readonly credit = (total: number, isFrame: boolean): void => {
    this.header.add(Q.payloadFree, total);
    if (isFrame) {
      this.semR.post(); // space available (EOVERFLOW ignored)
      this.semC.post(); // response consumed
    }
  };

  private constructor(
    /** The channel name. */
    readonly channel: string,
    connected: Connected,
    private readonly timeout: number,
    private readonly spinMicros: number,
  ) {
    this.buffer = connected.buffer;
    this.header = connected.header;
    this.payloadSize = connected.payloadSize;
    this.payloadOffset = OIEB_V2_SIZE + connected.metadataSize;
    this.view = new DataView(this.buffer, this.payloadOffset, this.payloadSize);
    this.semW = connected.sems.get("w") as Semaphore;
    this.semR = connected.sems.get("r") as Semaphore;
    this.semP = connected.sems.get("p") as Semaphore;
    this.semC = connected.sems.get("c") as Semaphore;
  }

  /**
   * Connects to the in-place channel `channel`. Rejects with ProtocolVersionError if the
   * channel's request buffer is a protocol 1 buffer (a v1 DuplexServer), WriterAlreadyConnectedError
   * if another live client is connected, ReaderDeadError / TimeoutError if no live server
   * acknowledges in time, MetadataAlreadyWrittenError if metadata is given and the buffer has some.
   * @param channel - the channel name
   * @param options - `timeout`, `signal`, `metadata`
   */
  static async connect(channel: string, options: InPlaceClientOptions = {}): Promise<InPlaceClient> {
    const name = requestName(channel);
    checkName(name, "channel name + \"_request\"");
    const o = readOptions("InPlaceClient.connect", options);
    const timeout = o.timeout("timeout", 5000);
    const spinMicros = o.spin("spinMicros", 0);
    const metadata = o.bytes("metadata");
    throwIfAborted(o.signal("signal"), `InPlaceClient "${channel}" connect`);
    const deadline = new Deadline(timeout);
    const c = await connectWriter({ name, major: 2, sems: SEMS_V2, role: "InPlaceClient" }, timeout, options.signal);
    try {
      const h = c.header;
      const session = h.load(Q.sessionRequest) + 1;
      h.store(Q.sessionRequest, session);
      (c.sems.get("w") as Semaphore).post(); // doorbell: the server rewinds the ring and acks
      let backoff = 1;
      while (h.load(Q.sessionAck) !== session) {
        const server = h.load(Q.readerPid);
        if (server === 0 || !alive(server)) throw new ReaderDeadError(`the server of in-place channel "${channel}" is gone`);
        const left = deadline.remaining();
        if (left <= 0) throw new TimeoutError(`InPlaceClient "${channel}": the server did not acknowledge the session within ${timeout} ms`);
        await sleep(Math.min(backoff, left), options.signal);
        backoff = Math.min(backoff * 2, 20);
      }
      if (metadata !== undefined) writeMetadata(h, c.buffer, METADATA_OFFSET_V2, metadata);
      return new InPlaceClient(channel, c, timeout, spinMicros);
    } catch (err) {
      for (const sem of c.sems.values()) sem.close();
      c.header.cas(Q.writerPid, process.pid, 0);
      throw err;
    }
  }

  /** Requests sent (or being sent) whose response has not arrived. */
  get inFlight(): number {
    return this.pending.length;
  }

  /** Shared memory used by the channel: header + metadata + payload, in bytes. */
  get sharedBytes(): number {
    return this.buffer.byteLength;
  }

  /**
   * Copies `data` into the shared payload as a request and resolves with the response (a view
   * of the same bytes). Rejects with HandlerError if the server's handler failed,
   * TimeoutError / AbortError (a late response is then released unseen), BufferFullError,
   * ReaderDeadError when the server is gone, FrameTooLargeError, InvalidFrameSizeError.
   */
  async request(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<InPlaceResponse> {
    checkOptions(opts, `InPlaceClient "${this.channel}" request`);
    this.checkUsable();
    if (!ArrayBuffer.isView(data)) throw new InvalidArgumentError("request: data must be an ArrayBufferView (Uint8Array, Buffer, ...)");
    const n = data.byteLength;
    this.checkFrameSize(n);
    const timeout = opts.timeout ?? this.timeout;
    const deadline = new Deadline(timeout);
    const entry = new Pending();
    if (!this.lock.tryAcquire()) await this.lock.acquire(timeout, opts.signal, `InPlaceClient "${this.channel}" request`);
    this.pending.push(entry); // in lock order, which is the order requests reach the ring
    try {
      try {
        const plan = await this.reserve(n, deadline, timeout, opts.signal);
        const at = this.payloadOffset + plan.offset + FRAME_HEADER_V2;
        if (n >= NATIVE_COPY_MIN) native().copy(this.buffer, at, data);
        else new Uint8Array(this.buffer, at, n).set(new Uint8Array(data.buffer, data.byteOffset, n));
        entry.sequence = this.commitPlan(plan, n);
      } finally {
        this.lock.release();
      }
    } catch (err) {
      this.drop(entry);
      throw err;
    }
    return this.awaitResponse(entry, deadline, opts.signal);
  }

  /** Lends space in the shared payload for a request of `size` bytes (zero-copy). Other requests wait until it is committed or cancelled. */
  async frameBuffer(size: number, opts: BlockingOptions = {}): Promise<InPlaceRequestBuffer> {
    checkOptions(opts, `InPlaceClient "${this.channel}" frameBuffer`);
    this.checkUsable();
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`frameBuffer: size must be a non-negative integer, got ${String(size)}`);
    this.checkFrameSize(size);
    const timeout = opts.timeout ?? this.timeout;
    const deadline = new Deadline(timeout);
    if (!this.lock.tryAcquire()) await this.lock.acquire(timeout, opts.signal, `InPlaceClient "${this.channel}" frameBuffer`);
    let plan: Plan;
    try {
      plan = await this.reserve(size, deadline, timeout, opts.signal);
    } catch (err) {
      this.lock.release();
      throw err;
    }
    const data = new Uint8Array(this.buffer, this.payloadOffset + plan.offset + FRAME_HEADER_V2, size);
    let done = false;
    const cancel = (): void => {
      if (done) return;
      done = true;
      this.lock.release();
    };
    return {
      data,
      sequence: this.nextSequence,
      commit: (copts: BlockingOptions = {}): Promise<InPlaceResponse> => {
        if (done) return Promise.reject(new InvalidArgumentError("InPlaceRequestBuffer: already committed or cancelled"));
        done = true;
        const entry = new Pending();
        try {
          this.checkUsable();
          this.pending.push(entry);
          entry.sequence = this.commitPlan(plan, size);
        } catch (err) {
          this.drop(entry);
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        } finally {
          this.lock.release();
        }
        return this.awaitResponse(entry, new Deadline(copts.timeout ?? timeout), copts.signal);
      },
      cancel,
      [Symbol.dispose]: cancel,
    };
  }

  /** @internal Credits released responses at the head of the FIFO (space available + response consumed). */
  releaseFrames(): void {
    if (this.closing !== undefined) return;
    this.held.drain(this.credit);
  }

  /** Rejects pending requests and leaves the channel (client_pid = 0); the server stays. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const err = new ClosedError(`InPlaceClient "${this.channel}" is closed`);
      for (const p of this.pending.splice(0)) p.reject(err);
      this.closer.abort(err);
      this.pause.abort(err);
      this.lock.failAll(err);
      await Promise.all([this.writeWait?.catch(() => false), this.readWait?.catch(() => false)]);
      this.header.cas(Q.writerPid, process.pid, 0);
      for (const sem of [this.semW, this.semR, this.semP, this.semC]) sem.close();
    })();
    return this.closing;
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private checkUsable(): void {
    if (this.closing !== undefined) throw new ClosedError(`InPlaceClient "${this.channel}" is closed`);
    if (this.broken !== undefined) throw this.broken;
  }

  private checkFrameSize(n: number): number {
    if (n === 0) throw new InvalidFrameSizeError("a request must have at least 1 byte");
    const total = frameTotalV2(n);
    if (total > this.payloadSize) throw new FrameTooLargeError(`a request of ${n} bytes needs ${total} bytes, the ring has ${this.payloadSize}`);
    return total;
  }

  private serverAlive(): boolean {
    const pid = this.header.load(Q.readerPid);
    return pid !== 0 && alive(pid);
  }

  private plan(total: number, n: number): Plan {
    const size = this.payloadSize;
    const wp = this.writePos;
    const tail = size - wp;
    if (tail >= total) return { offset: wp, wrapAt: -1, tail: 0, need: total };
    if (tail + total > size) {
      throw new BufferFullError(
        `a request of ${n} bytes can never fit: ${tail} bytes are left at the end of the ${size}-byte ring and wrapping needs ${tail + total} (a stall)`,
      );
    }
    return { offset: 0, wrapAt: wp, tail, need: tail + total };
  }

  private async reserve(n: number, deadline: Deadline, timeout: number, userSignal: AbortSignal | undefined): Promise<Plan> {
    const total = frameTotalV2(n);
    const plan = this.plan(total, n);
    if (this.header.load(Q.readerPid) === 0) throw new ReaderDeadError(`the server of in-place channel "${this.channel}" closed`);
    const free = (): number => this.header.load(Q.payloadFree);
    if (free() >= plan.need) return plan;
    const { signal, dispose } = linkSignals(userSignal, this.closer.signal);
    try {
      for (;;) {
        if (signal.aborted) throw waitEndError(this.closing !== undefined, userSignal, `InPlaceClient "${this.channel}" request`);
        if (!this.serverAlive()) throw new ReaderDeadError(`the server of in-place channel "${this.channel}" is gone`);
        const left = deadline.remaining();
        if (left <= 0) throw new BufferFullError(`no room for a request of ${n} bytes within ${timeout} ms: release responses`);
        this.writeWait = semWait(this.semR, Math.min(left, SLICE_MS), signal);
        await this.writeWait;
        this.writeWait = undefined;
        if (this.closing !== undefined) throw new ClosedError(`InPlaceClient "${this.channel}" is closed`);
        if (free() >= plan.need) return plan;
      }
    } finally {
      dispose();
    }
  }

  /** Writes the wrap marker (if any) and the request header, accounts and rings request-ready. */
  private commitPlan(plan: Plan, n: number): number {
    const view = this.view;
    const h = this.header;
    if (plan.wrapAt >= 0) {
      writeU64(view, plan.wrapAt + F2.length, 0);
      writeU64(view, plan.wrapAt + F2.sequence, 0);
      h.add(Q.requestWrittenCount, 1);
      h.sub(Q.payloadFree, plan.tail);
    }
    const sequence = this.nextSequence++;
    writeU64(view, plan.offset + F2.length, n);
    writeU64(view, plan.offset + F2.sequence, sequence);
    writeU64(view, plan.offset + F2.responseLength, 0);
    view.setUint32(plan.offset + F2.status, 0, true);
    const total = frameTotalV2(n);
    let wp = plan.offset + total;
    if (wp >= this.payloadSize) wp -= this.payloadSize;
    this.writePos = wp;
    h.store(Q.requestWritePos, wp);
    h.sub(Q.payloadFree, total);
    h.add(Q.requestWrittenCount, 1);
    this.semW.post();
    this.startPump();
    return sequence;
  }

  private drop(entry: Pending): void {
    const i = this.pending.indexOf(entry);
    if (i >= 0) this.pending.splice(i, 1);
    this.maybePause();
  }

  private awaitResponse(entry: Pending, deadline: Deadline, signal: AbortSignal | undefined): Promise<InPlaceResponse> {
    this.startPump();
    return entry.wait(deadline, signal, `InPlaceClient "${this.channel}" request`, () => this.maybePause());
  }

  private maybePause(): void {
    if (this.pending.every((p) => p.abandoned)) {
      this.pause.abort();
      this.pause = new AbortController();
    }
  }

  private startPump(): void {
    if (this.pumping || this.closing !== undefined || this.broken !== undefined) return;
    if (!this.pending.some((p) => !p.abandoned)) return;
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.closing === undefined && this.broken === undefined && this.pending.some((p) => !p.abandoned)) this.startPump();
    });
  }

  private failAll(err: Error): void {
    this.broken = err;
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  private async pump(): Promise<void> {
    while (this.closing === undefined && this.broken === undefined && this.pending.some((p) => !p.abandoned)) {
      let got = this.semP.tryWait() || (this.spinMicros > 0 && spinTry(this.semP, this.spinMicros));
      if (!got) {
        const signal = this.pause.signal;
        this.readWait = semWait(this.semP, SLICE_MS, signal);
        got = await this.readWait;
        this.readWait = undefined;
        if (this.closing !== undefined) return;
        if (signal.aborted) {
          if (got) this.semP.post(); // keep the count for the next pump
          return;
        }
      }
      if (!got) {
        if (!this.serverAlive() && !this.semP.tryWait()) {
          this.failAll(new ReaderDeadError(`the server of in-place channel "${this.channel}" is gone`));
          return;
        }
        continue;
      }
      try {
        this.takeResponse();
      } catch (err) {
        this.failAll(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  }

  /** Reads the response at response_read_pos and settles the oldest pending request with it. */
  private takeResponse(): void {
    const size = this.payloadSize;
    const view = this.view;
    const h = this.header;
    let pos = this.readPos;
    let n = readU64(view, pos + F2.length);
    if (n === 0) {
      this.held.push(size - pos, undefined);
      pos = 0;
      h.add(Q.responseReadCount, 1);
      n = readU64(view, F2.length);
    }
    const total = frameTotalV2(n);
    if (n === 0 || n > size - FRAME_HEADER_V2 || pos + total > size) {
      throw new InvalidFrameSizeError(`in-place channel "${this.channel}": a response of ${n} bytes at offset ${pos} does not fit a ring of ${size} bytes`);
    }
    const sequence = readU64(view, pos + F2.sequence);
    const length = Math.min(readU64(view, pos + F2.responseLength), n);
    const status = view.getUint32(pos + F2.status, true);
    let next = pos + total;
    if (next >= size) next -= size;
    this.readPos = next;
    h.store(Q.responseReadPos, next);
    h.add(Q.responseReadCount, 1);
    const frame = new Frame(this, new Uint8Array(this.buffer, this.payloadOffset + pos + FRAME_HEADER_V2, length), sequence, total);
    this.held.push(total, frame);
    this.held.drain(this.credit);
    const entry = this.pending.shift();
    if (entry === undefined) {
      frame.release();
      return;
    }
    if (entry.sequence !== 0 && sequence !== entry.sequence) {
      frame.release();
      entry.reject(new SequenceError(entry.sequence, sequence));
    } else if (status === STATUS_FAILED) {
      const text = Buffer.from(frame.data).toString("utf8");
      frame.release();
      entry.reject(new HandlerError(sequence, `the server's handler failed on request ${sequence}: ${text}`));
    } else if (status !== STATUS_OK) {
      frame.release();
      entry.reject(new ProtocolError(`in-place channel "${this.channel}": response ${sequence} has status ${status}`));
    } else if (entry.abandoned) frame.release();
    else entry.resolve(frame);
  }
}
