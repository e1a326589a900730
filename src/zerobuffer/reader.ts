/**
 * The ZeroBuffer v1 reader: creates and owns a buffer, hands out frames as zero-copy views.
 * @module
 */
import { ClosedError, SequenceError } from "../errors.js";
import type { Semaphore } from "../native.js";
import { checkOptions, Deadline, type BlockingOptions } from "../util/blocking.js";
import { readOptions } from "../util/options.js";
import { InvalidFrameSizeError, WriterDeadError } from "./errors.js";
import { Frame, ReleaseFifo, type ReleaseTarget } from "./frame.js";
import { checkName } from "./names.js";
import { align64, FRAME_HEADER_V1, Header, OIEB_V1_SIZE, Q, readMetadata, readU64, snapshot, type HeaderSnapshot } from "./oieb.js";
import { createOwned, destroyOwned, type Owned } from "./owner.js";
import { Anticipator, pollWindow } from "../util/anticipate.js";
import { HintListener } from "./hint.js";
import { alive, linkSignals, Lock, semWait, SLICE_MS, spinTry, waitEndError } from "./waits.js";

/** Options of {@link Reader.create}. */
export interface ReaderOptions {
  /** Payload ring size in bytes, rounded up to a multiple of 64 (default 1 MiB). */
  payloadSize?: number;
  /** Metadata block size in bytes, rounded up to a multiple of 64; 0 is allowed (default 1024). */
  metadataSize?: number;
  /** Default timeout of {@link Reader.read} in ms (default 5000, as in the reference). */
  timeout?: number;
  /**
   * Busy-poll for a frame this many µs before sleeping on the semaphore (default 0). Saves the
   * waiter thread's wake-up (tens of µs) at the price of a busy core and a blocked event loop
   * while polling.
   */
  spinMicros?: number;
  /**
   * For paced streams (a camera, a fixed-rate pipeline): learn the period frames arrive at and
   * poll for the next one from just before it is due, instead of sleeping through its arrival
   * (default false). Hides the wake-up of an idle CPU (100 µs or more per wake on a VM, twice per
   * round trip). Costs at most a quarter of a core; polls in slices of 50 µs with a turn of the event
   * loop between them, so timers and I/O keep running. Off for irregular streams and those
   * faster than ~330 frames/s: those sleep as usual.
   */
  anticipate?: boolean;
}

/** Largest ring Plexus creates (1 TiB): beyond any /dev/shm, and well inside safe integers. */
export const MAX_SIZE = 2 ** 40;

/** {@link ReaderOptions} once checked, defaults filled in and sizes aligned. */
export interface ReaderSettings {
  /** Payload ring size, aligned to 64. */
  readonly payloadSize: number;
  /** Metadata block size, aligned to 64. */
  readonly metadataSize: number;
  /** Default read timeout (ms). */
  readonly timeout: number;
  /** µs to poll before sleeping. */
  readonly spinMicros: number;
  /** Learn a paced stream's period. */
  readonly anticipate: boolean;
}

/** Checks the {@link ReaderOptions} given to `where` (`Reader.create`, `DuplexServer.create`). */
export function readerSettings(where: string, opts: ReaderOptions | undefined): ReaderSettings {
  const o = readOptions(where, opts);
  return {
    payloadSize: align64(o.int("payloadSize", 1 << 20, FRAME_HEADER_V1 + 1, MAX_SIZE)),
    metadataSize: align64(o.int("metadataSize", 1024, 0, MAX_SIZE)),
    timeout: o.timeout("timeout", 5000),
    spinMicros: o.spin("spinMicros", 0),
    anticipate: o.bool("anticipate", false),
  };
}

/**
 * The reading end of a ZeroBuffer v1 buffer, and its owner (docs/zerobuffer-protocol.md §3):
 * `create` runs the stale scan, takes `/tmp/zerobuffer/NAME.lock`, creates the shared memory
 * `/NAME`, writes the header and creates the semaphores `sem-w-NAME` and `sem-r-NAME`; `close`
 * removes them all. One writer at a time connects with {@link Writer.connect}.
 *
 * ```ts
 * await using reader = await Reader.create("camera", { payloadSize: 64 << 20 });
 * for await (const frame of reader) use(frame.data, frame.sequence); // views, released by the loop
 * ```
 */
export class Reader implements AsyncIterable<Frame>, AsyncDisposable, ReleaseTarget {
  /** The buffer name. */
  readonly name: string;
  /** Payload ring size (aligned). */
  readonly payloadSize: number;
  /** Metadata block size (aligned). */
  readonly metadataSize: number;

  private readonly buffer: SharedArrayBuffer;
  private readonly header: Header;
  private readonly view: DataView;
  private readonly payloadOffset: number;
  private readonly semW: Semaphore;
  private readonly semR: Semaphore;
  private readonly held = new ReleaseFifo();
  private readonly lock = new Lock();
  private readonly closer = new AbortController();
  private readPos = 0;
  private expected = 1;
  private signalled = false;
  private writerSeen = false;
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;
  private waiting: Promise<boolean> | undefined;
  private readonly anticipator: Anticipator | undefined;
  /** The wake hint a Plexus writer signals (docs/zerobuffer.md, "Wake hint"). */
  private readonly hint: HintListener | undefined;
  private readonly credit = (total: number, isFrame: boolean): void => {
    this.header.add(Q.payloadFree, total);
    if (isFrame) this.semR.post(); // false on EOVERFLOW: ignored (§12)
  };

  private constructor(
    name: string,
    private readonly owned: Owned,
    private readonly timeout: number,
    private readonly spinMicros: number,
    anticipate: boolean,
  ) {
    this.name = name;
    this.anticipator = anticipate ? new Anticipator() : undefined;
    this.hint = HintListener.open(name, () => this.header.load(Q.writerPid));
    this.buffer = owned.buffer;
    this.header = owned.header;
    this.metadataSize = this.header.load(Q.metadataSize);
    this.payloadSize = this.header.load(Q.payloadSize);
    this.payloadOffset = OIEB_V1_SIZE + this.metadataSize;
    this.view = new DataView(this.buffer, this.payloadOffset, this.payloadSize);
    this.semW = owned.sems.get("w") as Semaphore;
    this.semR = owned.sems.get("r") as Semaphore;
  }

  /**
   * Creates the buffer `name` and becomes its reader. Rejects with ReaderAlreadyConnectedError
   * if a live reader owns it (its lock file is held, or its segment names a live reader).
   * @param name - the buffer name: one path component, at most 240 bytes
   * @param options - sizes and the default read timeout
   */
  static async create(name: string, options: ReaderOptions = {}): Promise<Reader> {
    checkName(name);
    const { payloadSize, metadataSize, timeout, spinMicros, anticipate } = readerSettings("Reader.create", options);
    const owned = await createOwned({ name, oiebSize: OIEB_V1_SIZE, major: 1, metadataSize, payloadSize, sems: ["w", "r"] });
    return new Reader(name, owned, timeout, spinMicros, anticipate);
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** The writer's pid from the header (0 when no writer is connected). */
  get writerPid(): number {
    return this.header.load(Q.writerPid);
  }

  /**
   * With `anticipate`: the period learnt (ms; 0 while the stream does not look paced), the
   * frames caught by polling in their window, and the windows that passed without their frame.
   * Undefined without `anticipate`.
   */
  get anticipation(): { periodMs: number; caught: number; missed: number } | undefined {
    const a = this.anticipator;
    return a === undefined ? undefined : { periodMs: a.periodMs, caught: a.caught, missed: a.missed };
  }

  /** Every header field, read now. */
  headerSnapshot(): HeaderSnapshot {
    return snapshot(this.header);
  }

  /**
   * The metadata the writer stored (a view of the shared memory; do not change it), or null if
   * none was written. Throws ProtocolError for an invalid length prefix.
   */
  metadata(): Uint8Array | null {
    if (this.closed) throw new ClosedError(`Reader "${this.name}" is closed`);
    return readMetadata(this.header, this.buffer, OIEB_V1_SIZE);
  }

  /** The next frame if one is committed, else null; never waits. */
  tryRead(): Frame | null {
    if (this.closed) throw new ClosedError(`Reader "${this.name}" is closed`);
    if (this.broken) throw this.broken;
    if (this.lock.busy) return null;
    if (this.signalled || this.semW.tryWait()) return this.take();
    return null;
  }

  /**
   * Waits for the next frame. Rejects with WriterDeadError once the writer is gone and every
   * frame it committed was read (`graceful` when it closed, i.e. writer_pid = 0 and no count
   * left on sem-w; otherwise its process died), SequenceError when a sequence number is not the
   * expected one (the next read returns that frame), InvalidFrameSizeError for an impossible
   * header (the reader is unusable afterwards), TimeoutError, AbortError or ClosedError.
   * A dead writer is noticed within {@link SLICE_MS} ms.
   * @param opts - `timeout` (default: the reader's), `signal`
   */
  async read(opts: BlockingOptions = {}): Promise<Frame> {
    checkOptions(opts, `Reader "${this.name}" read`);
    if (this.closed) throw new ClosedError(`Reader "${this.name}" is closed`);
    if (this.broken) throw this.broken;
    const timeout = opts.timeout ?? this.timeout;
    const deadline = new Deadline(timeout);
    if (!this.lock.tryAcquire()) await this.lock.acquire(timeout, opts.signal, `Reader "${this.name}" read`);
    const { signal, dispose } = linkSignals(opts.signal, this.closer.signal);
    let spun = this.spinMicros === 0;
    try {
      for (;;) {
        if (this.closed) throw new ClosedError(`Reader "${this.name}" is closed`);
        if (this.broken) throw this.broken;
        if (this.signalled || this.semW.tryWait()) return this.take();
        this.checkWriter();
        if (this.signalled) continue;
        if (!spun) {
          spun = true;
          if (spinTry(this.semW, Math.min(this.spinMicros, deadline.remaining() * 1000))) return this.take();
          continue;
        }
        const left = deadline.remaining();
        if (left <= 0 || signal.aborted) throw waitEndError(this.closed, opts.signal, `Reader "${this.name}" read`);
        let slice = Math.min(left, SLICE_MS);
        const anticipator = this.anticipator;
        const window = anticipator?.window();
        if (anticipator !== undefined && window !== undefined) {
          const now = performance.now();
          if (now >= window[0] && now < window[1]) {
            // The next frame of a paced stream is due: poll for it instead of sleeping through it,
            // in short slices with a turn of the event loop between them (timers and I/O run:
            // the frame may well be sent by this very process).
            const end = Math.min(window[1], now + deadline.remaining());
            if (await pollWindow(end, (us) => spinTry(this.semW, us), () => signal.aborted || this.closed)) {
              anticipator.caught++;
              return this.take();
            }
            if (performance.now() >= window[1]) anticipator.miss(); // not one cut short by a deadline, abort or close
            continue;
          }
          if (now < window[0]) slice = Math.min(slice, window[0] - now); // wake up as the window opens
          else anticipator.miss();
        }
        if (this.hint?.active && window === undefined) {
          // A Plexus writer signals our eventfd after each post: wait on it in the event loop
          // (one wake-up instead of the waiter thread's two); the loop then takes the count.
          // Not before an anticipation window: the event loop's timers are only ms-precise,
          // the semaphore's timed wait opens the window on time.
          this.waiting = this.hint.sleep(slice, signal).then(() => false);
        } else {
          this.waiting = semWait(this.semW, slice, signal);
        }
        const got = await this.waiting;
        this.waiting = undefined;
        if (got) {
          if (this.closed) {
            this.semW.post(); // give the count back: the frame stays unread
            throw new ClosedError(`Reader "${this.name}" is closed`);
          }
          this.signalled = true;
        }
      }
    } finally {
      dispose();
      this.lock.release();
    }
  }

  /**
   * Frames as an async iterable with a per-frame `timeout` (default: none) and `signal`. Each
   * turn of the loop releases the previous frame; leaving the loop releases the last one. The
   * iteration ends when the writer closes gracefully after its last frame, or when the reader is
   * closed; a writer that dies ends it with WriterDeadError.
   */
  async *frames(opts: BlockingOptions = {}): AsyncGenerator<Frame, void, undefined> {
    let previous: Frame | undefined;
    try {
      for (;;) {
        previous?.release();
        previous = undefined;
        let frame: Frame;
        try {
          frame = await this.read({ timeout: opts.timeout ?? Infinity, ...(opts.signal ? { signal: opts.signal } : {}) });
        } catch (err) {
          if (err instanceof WriterDeadError && err.graceful) return;
          if (err instanceof ClosedError && this.closed) return;
          throw err;
        }
        previous = frame;
        yield frame;
      }
    } finally {
      previous?.release();
    }
  }

  /** `for await (const frame of reader)`: {@link frames} without a timeout. */
  [Symbol.asyncIterator](): AsyncGenerator<Frame, void, undefined> {
    return this.frames();
  }

  /** @internal Credits released frames at the head of the FIFO. */
  releaseFrames(): void {
    if (this.closed) return;
    this.held.drain(this.credit);
  }

  /**
   * Closes the reader and removes the buffer (§8): reader_pid = 0, then unlinks the shared
   * memory, both semaphores and the lock file. A pending read rejects with ClosedError. Views
   * of frames still held stay readable (the mapping lives while they do). Idempotent.
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
    this.header.store(Q.readerPid, 0);
    this.closer.abort(new ClosedError(`Reader "${this.name}" is closed`));
    this.lock.failAll(new ClosedError(`Reader "${this.name}" is closed`));
    const pending = this.waiting;
    if (pending !== undefined) await pending.catch(() => false);
    this.hint?.close();
    destroyOwned(this.name, this.owned, ["w", "r"]);
  }

  /** Throws WriterDeadError when the writer is gone and nothing is left to read. */
  private checkWriter(): void {
    const pid = this.header.load(Q.writerPid);
    if (pid !== 0) {
      this.writerSeen = true;
      if (alive(pid)) return;
    } else if (!this.writerSeen) return;
    // Gone: committed frames were posted before writer_pid changed, so one more try decides.
    if (this.semW.tryWait()) {
      this.signalled = true;
      return;
    }
    this.writerSeen = false;
    this.expected = 1; // a new writer starts at 1 again
    if (pid === 0) throw new WriterDeadError(`the writer of buffer "${this.name}" closed`, { graceful: true });
    throw new WriterDeadError(`the writer of buffer "${this.name}" (pid ${pid}) died`, { graceful: false });
  }

  /** Decodes the frame a sem-w count announced (§6 reader algorithm, with §12's robustness). */
  private take(): Frame {
    this.signalled = false;
    this.anticipator?.arrived(performance.now());
    const size = this.payloadSize;
    const view = this.view;
    let pos = this.readPos;
    if (size - pos < FRAME_HEADER_V1) {
      // A short tail (0 < tail < 16) or write_pos == payload_size: an implicit wrap, not counted.
      if (size - pos > 0) this.held.push(size - pos, undefined);
      pos = 0;
      this.setReadPos(0);
    }
    let n = readU64(view, pos);
    if (n === 0) {
      // A wrap marker: the rest of the ring is unused; the frame is at 0 (one post for both).
      this.held.push(size - pos, undefined);
      pos = 0;
      this.setReadPos(0);
      this.header.add(Q.readCount, 1);
      n = readU64(view, 0);
      if (n === 0) return this.fail(new InvalidFrameSizeError(`buffer "${this.name}": a wrap marker is followed by another one at offset 0`));
    }
    this.held.drain(this.credit);
    if (n > size - FRAME_HEADER_V1 || pos + FRAME_HEADER_V1 + n > size) {
      return this.fail(new InvalidFrameSizeError(`buffer "${this.name}": a frame of ${n} bytes at offset ${pos} does not fit a ring of ${size} bytes`));
    }
    const sequence = readU64(view, pos + 8);
    if (sequence !== this.expected) {
      const expected = this.expected;
      this.expected = sequence;
      this.signalled = true; // the next read returns this frame
      throw new SequenceError(expected, sequence);
    }
    const total = FRAME_HEADER_V1 + n;
    const frame = new Frame(this, new Uint8Array(this.buffer, this.payloadOffset + pos + FRAME_HEADER_V1, n), sequence, total);
    pos += total;
    if (pos >= size) pos -= size;
    this.setReadPos(pos);
    this.header.add(Q.readCount, 1);
    this.expected = sequence + 1;
    this.writerSeen = true;
    this.held.push(total, frame);
    return frame;
  }

  private setReadPos(pos: number): void {
    this.readPos = pos;
    this.header.store(Q.readPos, pos);
  }

  private fail(err: Error): never {
    this.broken = err;
    throw err;
  }
}
