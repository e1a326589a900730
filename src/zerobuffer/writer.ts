/**
 * The ZeroBuffer v1 writer: connects to a buffer a reader owns and writes frames into its ring.
 * @module
 */
import { ClosedError, FrameTooLargeError, InvalidArgumentError } from "../errors.js";
import { native, type Semaphore } from "../native.js";
import { checkOptions, Deadline, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";
import { connectWriter, type Connected } from "./connect.js";
import { BufferFullError, InvalidFrameSizeError, ReaderDeadError } from "./errors.js";
import { checkName } from "./names.js";
import { HintSender } from "./hint.js";
import { FRAME_HEADER_V1, Header, OIEB_V1_SIZE, Q, writeMetadata, writeU64 } from "./oieb.js";
import { alive, linkSignals, Lock, semWait, SLICE_MS, waitEndError } from "./waits.js";

/** Options of {@link Writer.connect}. */
export interface WriterOptions extends BlockingOptions {
  /** How long `connect` waits for the buffer to become ready, ms (default 5000). */
  timeout?: number;
  /** Default timeout of `write` / `frameBuffer` in ms (default 5000, the reference's write timeout). */
  writeTimeout?: number;
}

/** Payloads at least this large are copied by the addon's memcpy (faster than a typed-array copy into shared memory). */
const NATIVE_COPY_MIN = 512;

/** Where a frame goes: `offset` of its header; a wrap first at `wrapAt` (-1: none) wasting `tail` bytes. @internal */
export interface Plan {
  /** Offset of the frame header in the ring. */
  offset: number;
  /** Offset of the wrap (marker or zero-filled short tail), -1 for none. */
  wrapAt: number;
  /** Bytes wasted by the wrap. */
  tail: number;
  /** Free bytes needed before writing (the space rule). */
  need: number;
}

/**
 * Space lent by {@link Writer.frameBuffer}: fill `data` in place, then `commit()` (publish, no
 * copy) or `cancel()`. Until then the writer's other operations wait. A `using` declaration
 * cancels a loan that was not committed.
 */
export class FrameBuffer implements Disposable {
  private done = false;

  /** @internal */
  constructor(
    private readonly writer: Writer,
    /** @internal */ readonly plan: Plan,
    /** Where to write the frame's bytes: a view of the ring itself. */
    readonly data: Uint8Array,
    /** The sequence number the frame will get. */
    readonly sequence: number,
  ) {}

  /** Publishes the frame (all of `data`); returns its sequence number. */
  commit(): number {
    if (this.done) throw new InvalidArgumentError("FrameBuffer: already committed or cancelled");
    this.done = true;
    return this.writer.finishLoan(this, true);
  }

  /** Gives the space back without publishing anything; idempotent. */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    this.writer.finishLoan(this, false);
  }

  /** Cancels if not committed. */
  [Symbol.dispose](): void {
    this.cancel();
  }
}

/**
 * The writing end of a ZeroBuffer v1 buffer (docs/zerobuffer-protocol.md §3, §6). Frames are
 * written where the reference readers expect them: back to back, a wrap marker when the rest of
 * the ring is too small, and never a tail shorter than a frame header (the early-wrap rule of
 * §12).
 *
 * ```ts
 * await using writer = await Writer.connect("camera");
 * writer.setMetadata(new TextEncoder().encode("1920x1080 NV12"));
 * await writer.write(frameBytes);                 // one copy into shared memory
 * const fb = await writer.frameBuffer(3_110_400); // or zero-copy: fill in place...
 * render(fb.data);
 * fb.commit();                                    // ...and publish
 * ```
 */
export class Writer implements AsyncDisposable {
  /** The buffer name. */
  readonly name: string;
  /** Payload ring size, from the header. */
  readonly payloadSize: number;
  /** Metadata block size, from the header. */
  readonly metadataSize: number;

  private readonly buffer: SharedArrayBuffer;
  private readonly header: Header;
  private readonly view: DataView;
  private readonly payloadOffset: number;
  private readonly semW: Semaphore;
  private readonly semR: Semaphore;
  private readonly lock = new Lock();
  private readonly closer = new AbortController();
  private writePos: number;
  private nextSequence = 1;
  private closing: Promise<void> | undefined;
  private waiting: Promise<boolean> | undefined;
  private loan: FrameBuffer | undefined;

  private constructor(
    name: string,
    connected: Connected,
    private readonly writeTimeout: number,
    private readonly hint: HintSender | undefined,
  ) {
    this.name = name;
    this.buffer = connected.buffer;
    this.header = connected.header;
    this.metadataSize = connected.metadataSize;
    this.payloadSize = connected.payloadSize;
    this.payloadOffset = OIEB_V1_SIZE + this.metadataSize;
    this.view = new DataView(this.buffer, this.payloadOffset, this.payloadSize);
    this.semW = connected.sems.get("w") as Semaphore;
    this.semR = connected.sems.get("r") as Semaphore;
    // A previous writer's ring state carries over; C++ and Python may have left write_pos == payload_size.
    this.writePos = Math.min(this.header.load(Q.writePos), this.payloadSize);
  }

  /**
   * Connects to the buffer `name`, waiting (bounded by `timeout`, `signal`) until its reader has
   * created it completely. Rejects with WriterAlreadyConnectedError if a live writer is
   * connected, ProtocolVersionError for a protocol 2 buffer, ReaderDeadError if the buffer's
   * reader is dead at the deadline, TimeoutError if no buffer appeared.
   * @param name - the buffer name
   * @param options - connect `timeout` and `signal`, default `writeTimeout`
   */
  static async connect(name: string, options: WriterOptions = {}): Promise<Writer> {
    checkName(name);
    const o = readOptions("Writer.connect", options);
    const timeout = o.timeout("timeout", 5000);
    const writeTimeout = o.timeout("writeTimeout", 5000);
    const signal = o.signal("signal");
    throwIfAborted(signal, `Writer "${name}" connect`);
    const connected = await connectWriter({ name, major: 1, sems: ["w", "r"], role: "Writer" }, timeout, signal);
    return new Writer(name, connected, writeTimeout, HintSender.connect(name));
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** True if the buffer already holds metadata (it is write-once). */
  get metadataWritten(): boolean {
    return this.header.load(Q.metadataWritten) > 0;
  }

  /** The reader's pid from the header (0 once it closed). */
  get readerPid(): number {
    return this.header.load(Q.readerPid);
  }

  /** Sequence number of the last frame written (0 before the first). */
  get sequence(): number {
    return this.nextSequence - 1;
  }

  /**
   * Writes the metadata block, once per buffer (§5); do it before the first frame. Throws
   * MetadataAlreadyWrittenError if any writer wrote it before, FrameTooLargeError if `8 + n`
   * exceeds the block, InvalidArgumentError for 0 bytes.
   */
  setMetadata(data: ArrayBufferView): void {
    this.checkOpen();
    writeMetadata(this.header, this.buffer, OIEB_V1_SIZE, data);
  }

  /**
   * Writes one frame (one copy into the ring) and resolves with its sequence number. Waits
   * while the reader holds the space it needs; rejects with BufferFullError when the `timeout`
   * (default: `writeTimeout`) passes or the frame can never fit where the ring stands (a stall),
   * ReaderDeadError when the reader closed or died (noticed within {@link SLICE_MS} ms),
   * InvalidFrameSizeError for 0 bytes, FrameTooLargeError when `16 + n > payload_size`.
   */
  async write(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<number> {
    checkOptions(opts, `Writer "${this.name}" write`);
    this.checkOpen();
    if (!ArrayBuffer.isView(data)) throw new InvalidArgumentError("write: data must be an ArrayBufferView (Uint8Array, Buffer, ...)");
    const n = data.byteLength;
    const total = this.checkFrameSize(n);
    const timeout = opts.timeout ?? this.writeTimeout;
    const deadline = new Deadline(timeout);
    if (!this.lock.tryAcquire()) await this.lock.acquire(timeout, opts.signal, `Writer "${this.name}" write`);
    try {
      const plan = await this.reserve(total, deadline, timeout, opts.signal);
      this.copyIn(plan.offset + FRAME_HEADER_V1, data);
      return this.commitPlan(plan, n);
    } finally {
      this.lock.release();
    }
  }

  /**
   * Writes one frame now if there is room without waiting; returns its sequence number, or 0
   * when it would have to wait (or another operation is in progress). Throws like `write`.
   */
  tryWrite(data: ArrayBufferView): number {
    this.checkOpen();
    if (!ArrayBuffer.isView(data)) throw new InvalidArgumentError("tryWrite: data must be an ArrayBufferView (Uint8Array, Buffer, ...)");
    const n = data.byteLength;
    const total = this.checkFrameSize(n);
    if (!this.lock.tryAcquire()) return 0;
    try {
      const plan = this.plan(total);
      this.checkReader();
      if (this.free() < plan.need) return 0;
      this.copyIn(plan.offset + FRAME_HEADER_V1, data);
      return this.commitPlan(plan, n);
    } finally {
      this.lock.release();
    }
  }

  /**
   * Lends the space for a frame of `size` bytes (zero-copy): fill `data`, then `commit()`.
   * Waits and rejects like {@link write}. Other writes wait until the loan ends.
   */
  async frameBuffer(size: number, opts: BlockingOptions = {}): Promise<FrameBuffer> {
    checkOptions(opts, `Writer "${this.name}" frameBuffer`);
    this.checkOpen();
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`frameBuffer: size must be a non-negative integer, got ${String(size)}`);
    const total = this.checkFrameSize(size);
    const timeout = opts.timeout ?? this.writeTimeout;
    const deadline = new Deadline(timeout);
    if (!this.lock.tryAcquire()) await this.lock.acquire(timeout, opts.signal, `Writer "${this.name}" frameBuffer`);
    try {
      const plan = await this.reserve(total, deadline, timeout, opts.signal);
      const data = new Uint8Array(this.buffer, this.payloadOffset + plan.offset + FRAME_HEADER_V1, size);
      this.loan = new FrameBuffer(this, plan, data, this.nextSequence);
      return this.loan;
    } catch (err) {
      this.lock.release();
      throw err;
    }
  }

  /** @internal Ends a loan: commit publishes it. */
  finishLoan(fb: FrameBuffer, commit: boolean): number {
    if (this.loan !== fb) return 0;
    this.loan = undefined;
    try {
      if (!commit) return 0;
      this.checkOpen();
      this.checkReader();
      return this.commitPlan(fb.plan, fb.data.length);
    } finally {
      this.lock.release();
    }
  }

  /**
   * Disconnects (§8): writer_pid = 0, handles closed, nothing unlinked. The reader still gets
   * every frame written, then WriterDeadError (graceful). Pending operations reject with
   * ClosedError. Idempotent.
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
    const closed = new ClosedError(`Writer "${this.name}" is closed`);
    this.closer.abort(closed);
    this.lock.failAll(closed);
    const pending = this.waiting;
    if (pending !== undefined) await pending.catch(() => false);
    this.header.cas(Q.writerPid, process.pid, 0);
    this.hint?.close();
    this.semW.close();
    this.semR.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`Writer "${this.name}" is closed`);
  }

  /** Validates a data length; returns the frame's total size. */
  private checkFrameSize(n: number): number {
    if (n === 0) throw new InvalidFrameSizeError("a frame must have at least 1 byte (a 0-byte frame would read as a wrap marker)");
    const total = FRAME_HEADER_V1 + n;
    if (total > this.payloadSize) throw new FrameTooLargeError(`a frame of ${n} bytes needs ${total} bytes, the ring has ${this.payloadSize}`);
    return total;
  }

  private free(): number {
    return this.header.load(Q.payloadFree);
  }

  /** ReaderDeadError if the reader closed (reader_pid = 0). */
  private checkReader(): void {
    if (this.header.load(Q.readerPid) === 0) throw new ReaderDeadError(`the reader of buffer "${this.name}" closed`);
  }

  /** Where a frame of `total` bytes goes (§6 step 1, with §12's early wrap and stall). */
  private plan(total: number): Plan {
    const size = this.payloadSize;
    const wp = this.writePos;
    const tail = size - wp;
    if (tail >= total) {
      const rest = tail - total;
      // Never leave 0 < tail < 16: wrap before this frame instead, unless that would stall.
      if (rest > 0 && rest < FRAME_HEADER_V1 && tail + total <= size) return { offset: 0, wrapAt: wp, tail, need: tail + total };
      return { offset: wp, wrapAt: -1, tail: 0, need: total };
    }
    if (tail + total > size) {
      throw new BufferFullError(
        `a frame of ${total - FRAME_HEADER_V1} bytes can never fit: ${tail} bytes are left at the end of the ${size}-byte ring and wrapping needs ${tail + total} free bytes (a stall)`,
      );
    }
    return { offset: 0, wrapAt: wp, tail, need: tail + total };
  }

  /** Plans and waits for room (holding the lock). */
  private async reserve(total: number, deadline: Deadline, timeout: number, userSignal: AbortSignal | undefined): Promise<Plan> {
    const plan = this.plan(total);
    this.checkReader();
    if (this.free() >= plan.need) return plan;
    const { signal, dispose } = linkSignals(userSignal, this.closer.signal);
    let checked = performance.now();
    try {
      for (;;) {
        const left = deadline.remaining();
        if (signal.aborted) throw waitEndError(this.closed, userSignal, `Writer "${this.name}" write`);
        if (left <= 0) {
          this.checkReaderAlive();
          throw new BufferFullError(`no room for a frame of ${total - FRAME_HEADER_V1} bytes within ${timeout} ms (needs ${plan.need} free bytes, ${this.free()} free)`);
        }
        this.waiting = semWait(this.semR, Math.min(left, SLICE_MS), signal);
        await this.waiting;
        this.waiting = undefined;
        if (this.closed) throw new ClosedError(`Writer "${this.name}" is closed`);
        if (this.free() >= plan.need) {
          this.checkReader();
          return plan;
        }
        const now = performance.now();
        if (now - checked >= SLICE_MS) {
          checked = now;
          this.checkReaderAlive();
        }
      }
    } finally {
      dispose();
    }
  }

  /** ReaderDeadError if the reader closed or its process died. */
  private checkReaderAlive(): void {
    this.checkReader();
    const pid = this.header.load(Q.readerPid);
    if (!alive(pid)) throw new ReaderDeadError(`the reader of buffer "${this.name}" (pid ${pid}) died`);
  }

  private copyIn(offset: number, data: ArrayBufferView): void {
    const n = data.byteLength;
    if (n >= NATIVE_COPY_MIN) native().copy(this.buffer, this.payloadOffset + offset, data);
    else new Uint8Array(this.buffer, this.payloadOffset + offset, n).set(new Uint8Array(data.buffer, data.byteOffset, n));
  }

  /** Writes the wrap (if any) and the header, advances, accounts and posts (§6 steps 3-6). */
  private commitPlan(plan: Plan, n: number): number {
    const view = this.view;
    if (plan.wrapAt >= 0) {
      if (plan.tail >= FRAME_HEADER_V1) {
        writeU64(view, plan.wrapAt, 0);
        writeU64(view, plan.wrapAt + 8, 0);
        this.header.add(Q.writtenCount, 1); // only real markers are counted
      } else if (plan.tail > 0) {
        // A short tail left by a stall-avoiding in-place write (or an earlier writer): zeros
        // decode as a marker in C++ readers.
        new Uint8Array(this.buffer, this.payloadOffset + plan.wrapAt, plan.tail).fill(0);
      }
      if (plan.tail > 0) this.header.sub(Q.payloadFree, plan.tail);
      this.writePos = 0;
      this.header.store(Q.writePos, 0);
    }
    const sequence = this.nextSequence++;
    writeU64(view, plan.offset, n);
    writeU64(view, plan.offset + 8, sequence);
    const total = FRAME_HEADER_V1 + n;
    let wp = plan.offset + total;
    if (wp >= this.payloadSize) wp -= this.payloadSize; // after an exact fit, store write_pos % payload_size
    this.writePos = wp;
    this.header.store(Q.writePos, wp);
    this.header.sub(Q.payloadFree, total);
    this.header.add(Q.writtenCount, 1);
    this.semW.post();
    this.hint?.signal(); // a Plexus reader wakes on this instead of through its semaphore thread
    return sequence;
  }
}
