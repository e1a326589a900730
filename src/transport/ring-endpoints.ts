/**
 * Sender and Receiver over a ring; the `thread` and `shm` transports differ only in how the
 * ring is shared, how parties wake each other and how death is noticed.
 * (Internal: not part of the public API.)
 * @module
 */
import type { RingReader } from "../ring/reader.js";
import { releasingIterator } from "../util/iterate.js";
import type { RingWriter } from "../ring/writer.js";
import { ClosedError } from "../errors.js";
import { checkOptions, type BlockingOptions } from "../util/blocking.js";
import type { Frame, Loan, Receiver, Sender, TransportKind } from "./transport.js";

/**
 * A frame in a ring: its payload is `ring.bytes[at .. at + length)`; the `bytes` view is made
 * only when asked for (the request/response layer reads frames in place, by offset). Not part of the public API.
 */
export class RingFrame implements Frame {
  private released = false;
  constructor(
    private readonly reader: RingReader,
    /** Where the payload starts in the ring's buffer. */
    readonly at: number,
    /** Payload bytes. */
    readonly length: number,
    readonly sequence: number,
    private readonly token: number,
    private view?: Uint8Array,
  ) {}
  get bytes(): Uint8Array {
    return (this.view ??= new Uint8Array(this.reader.ring.buffer, this.at, this.length));
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    this.reader.release(this.token);
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/** The frame `r` read last, found at `at`. */
function taken(r: RingReader, at: number): RingFrame {
  return new RingFrame(r, at, r.length, r.sequence, r.token);
}

/** The frame `r` read last, as the view `bytes` it returned. */
function takenView(r: RingReader, bytes: Uint8Array): RingFrame {
  return new RingFrame(r, bytes.byteOffset, bytes.length, r.sequence, r.token, bytes);
}

/** A {@link Sender} over a {@link RingWriter}. */
export class RingSender implements Sender {
  private closing: Promise<void> | undefined;

  /**
   * @param kind - transport name
   * @param writer - the ring writer
   * @param cleanup - transport-specific teardown after the writer closed
   */
  constructor(
    readonly kind: TransportKind,
    protected readonly writer: RingWriter,
    private readonly cleanup: () => void | Promise<void>,
  ) {}

  get receivers(): number {
    return this.writer.readers;
  }

  trySend(data: ArrayBufferView): boolean {
    return this.writer.tryWrite(data);
  }

  send(data: ArrayBufferView, opts?: BlockingOptions): Promise<void> {
    return this.writer.write(data, opts);
  }

  loan(size: number, opts?: BlockingOptions): Promise<Loan> {
    return this.writer.loan(size, opts);
  }

  /**
   * Reserves `size` bytes now if there is room: returns where they start in {@link ringBytes},
   * else -1. Write them, then {@link commitReserved} (or {@link abortReserved}) before anything
   * else is sent. The allocation-free form of {@link tryLoan}. @internal
   */
  tryReserve(size: number): number {
    return this.writer.tryReserve(size);
  }

  /** Publishes the reservation's first `length` bytes. @internal */
  commitReserved(length: number): void {
    this.writer.commitReserved(length);
  }

  /** Drops the reservation. @internal */
  abortReserved(): void {
    this.writer.abortReserved();
  }

  /** Pins the frame reserved now until {@link unpin} (see `RingWriter.pinReserved`). @internal */
  pinReserved(): number {
    return this.writer.pinReserved();
  }

  /** Unpins a frame {@link pinReserved} pinned. @internal */
  unpin(token: number): void {
    this.writer.unpin(token);
  }

  /** The ring's memory, for {@link tryReserve}. @internal */
  get ringBytes(): Uint8Array {
    return this.writer.ringBytes;
  }

  /** The ring's memory as 32-bit words (a reservation's offset is a multiple of 16). @internal */
  get ringWords(): Int32Array {
    return this.writer.ringWords;
  }

  /** Lends `size` bytes now if there is room, else null (no promise on the fast path). */
  tryLoan(size: number): Loan | null {
    return this.writer.tryLoan(size);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.writer.close();
      await this.cleanup();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A {@link Receiver} over a {@link RingReader}. */
export class RingReceiver implements Receiver {
  private closing: Promise<void> | undefined;

  /**
   * @param kind - transport name
   * @param reader - the ring reader
   * @param cleanup - transport-specific teardown after the reader left
   */
  constructor(
    readonly kind: TransportKind,
    protected readonly reader: RingReader,
    private readonly cleanup: () => void | Promise<void>,
  ) {}

  /** The ring's whole buffer as bytes: a {@link RingFrame}'s payload is at its `at`. @internal */
  get ringBytes(): Uint8Array {
    return this.reader.ring.bytes;
  }

  tryReceive(): RingFrame | null {
    if (this.closing) throw new ClosedError("receiver is closed");
    const r = this.reader;
    const at = r.tryReadAt();
    if (at < 0) return null;
    r.noteTaken();
    return taken(r, at);
  }

  /**
   * The next frame if one is ready or arrives while this receiver polls (its spin budget,
   * adaptive or fixed), else null: never sleeps, blocks the thread for at most that budget.
   * No promise on the fast path. @internal
   */
  trySpinReceive(): RingFrame | null {
    if (this.closing) throw new ClosedError("receiver is closed");
    const r = this.reader;
    const at = r.trySpinReadAt();
    if (at < 0) return null;
    r.noteTaken();
    return taken(r, at);
  }

  /** Like {@link receive} without polling first (after {@link trySpinReceive} returned null). @internal */
  sleepReceive(opts: BlockingOptions = {}): Promise<RingFrame | null> {
    if (this.closing) return Promise.reject(new ClosedError("receiver is closed"));
    const r = this.reader;
    return r.sleepRead(opts).then((b) => (b === null ? null : takenView(r, b)));
  }

  receive(opts: BlockingOptions = {}): Promise<Frame | null> {
    if (this.closing) return Promise.reject(new ClosedError("receiver is closed"));
    const r = this.reader;
    try {
      checkOptions(opts, "receive");
      const at = r.trySpinReadAt();
      if (at >= 0) {
        r.noteTaken();
        return Promise.resolve(taken(r, at));
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return r.sleepRead(opts).then((b) => (b === null ? null : takenView(r, b)));
  }

  takeMissed(): number {
    return this.reader.takeMissed();
  }

  /**
   * Anticipation of a paced stream (the `anticipate` option): the period learnt (ms; 0 while the
   * stream does not look paced), the messages caught by polling in their window and the windows
   * that passed without theirs. Undefined with `anticipate: false`.
   */
  get anticipation(): { periodMs: number; caught: number; missed: number } | undefined {
    return this.reader.anticipation;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.reader.releaseAll();
      this.reader.leave();
      await this.cleanup();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Iterates frames; each is released when the loop moves on; `break` closes the receiver. */
  [Symbol.asyncIterator](): AsyncIterator<Frame> {
    return releasingIterator(() => this.receive(), () => this.close());
  }
}
