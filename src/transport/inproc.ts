/**
 * The `inproc` transport: sender and receivers in one thread. A message is handed over as a
 * view of the sender's own bytes (no copy); each receiver has a budget of `capacity` bytes
 * (counted like a ring: 16 + the payload rounded up to 16), so backpressure behaves exactly as
 * on the ring transports.
 * @module
 */
import { BackpressureError, ClosedError, FrameTooLargeError, InvalidArgumentError } from "../errors.js";
import { releasingIterator } from "../util/iterate.js";
import { frameBytes, maxPayload, ringGeometry } from "../ring/layout.js";
import { checkOptions, checkTimeout, Deadline, Sleeper, type BlockingOptions } from "../util/blocking.js";
import { receiverSettings, ringSenderSettings, type BackpressurePolicy, type Frame, type Loan, type Receiver, type ReceiverOptions, type RingSenderOptions, type Sender } from "./transport.js";

/** A message held by one receiver. */
interface Held {
  bytes: Uint8Array;
  sequence: number;
  cost: number;
  taken: boolean;
  released: boolean;
}

/** A frame over a sender's bytes. */
class InprocFrame implements Frame {
  constructor(
    readonly bytes: Uint8Array,
    readonly sequence: number,
    private readonly held: Held,
    private readonly owner: InprocReceiver,
  ) {}
  release(): void {
    this.owner.release(this.held);
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/** The sending end of an `inproc` transport. */
export class InprocSender implements Sender {
  readonly kind = "inproc" as const;
  /** @internal */ readonly attached = new Set<InprocReceiver>();
  private seq = 1;
  private closedFlag = false;
  private readonly sleeper = new Sleeper();
  /** Byte budget of each receiver. */
  readonly capacity: number;
  private readonly timeout: number;
  private waiting = false;
  private loanOpen = false;

  private constructor(opts: RingSenderOptions | undefined) {
    const set = ringSenderSettings("InprocSender.create", opts);
    this.capacity = ringGeometry({ capacity: set.capacity, maxReaders: set.maxReceivers }).capacity;
    this.timeout = set.timeout;
  }

  /** Creates a sender. */
  static create(opts: RingSenderOptions = {}): InprocSender {
    return new InprocSender(opts);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.closedFlag;
  }

  get receivers(): number {
    return this.attached.size;
  }

  trySend(data: ArrayBufferView): boolean {
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    const len = data.byteLength;
    if (!this.admit(len)) return false;
    this.deliver(data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, len));
    return true;
  }

  async send(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<void> {
    checkOptions(opts, "send");
    if (this.trySend(data)) return;
    await this.waitFor(() => this.trySend(data), opts);
  }

  /**
   * Lends `size` bytes once every blocking receiver has room for them (like a ring loan, the
   * room is taken now): `commit` then delivers at once. Other sends wait for the loan to end.
   */
  async loan(size: number, opts: BlockingOptions = {}): Promise<Loan> {
    checkOptions(opts, "loan");
    if (!Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`loan size must be a non-negative integer, got ${size}`);
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    if (!this.admit(size)) await this.waitFor(() => this.admit(size), opts);
    this.loanOpen = true;
    const bytes = new Uint8Array(size);
    let open = true;
    const end = (): void => {
      open = false;
      this.loanOpen = false;
      this.sleeper.wake();
    };
    return {
      bytes,
      commit: (length = size) => {
        if (!open) throw new ClosedError("loan already ended");
        if (!Number.isInteger(length) || length < 0 || length > size) throw new InvalidArgumentError(`commit length must be in 0..${size}`);
        end();
        if (this.closedFlag) throw new ClosedError("inproc sender closed during the loan");
        // Receivers only gained room since `admit`: a shorter commit fits too.
        this.deliver(bytes.subarray(0, length));
      },
      abort: () => {
        if (open) end();
      },
    };
  }

  /**
   * True if a `len`-byte message may go out now: every receiver has room (leaky ones drop their
   * oldest unread messages to make it). Throws for a full `fail` receiver or a closed sender.
   */
  private admit(len: number): boolean {
    if (this.closedFlag) throw new ClosedError("inproc sender is closed");
    if (len > maxPayload(this.capacity)) throw new FrameTooLargeError(`message of ${len} bytes exceeds the limit of ${maxPayload(this.capacity)} bytes`);
    const cost = frameBytes(len);
    for (const r of this.attached) {
      if (!r.hasRoom(cost)) {
        if (r.policy === "fail") throw new BackpressureError(`a receiver has no room for a ${len}-byte message (policy "fail")`);
        return false; // block, or a leaky receiver whose held messages fill its budget
      }
    }
    return true;
  }

  /** Hands `bytes` to every receiver (room was checked by `admit`). */
  private deliver(bytes: Uint8Array): void {
    const sequence = this.seq++;
    const cost = frameBytes(bytes.byteLength);
    for (const r of this.attached) r.push(bytes, sequence, cost);
  }

  /** @internal Called by receivers after a release or when they leave. */
  wake(): void {
    this.sleeper.wake();
  }

  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const r of this.attached) r.end();
    this.sleeper.wake();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async waitFor(attempt: () => boolean, opts: BlockingOptions): Promise<void> {
    if (this.waiting) throw new InvalidArgumentError("another send is already waiting for room on this sender");
    this.waiting = true;
    const deadline = new Deadline(checkTimeout(opts.timeout, this.timeout));
    try {
      for (;;) {
        const left = deadline.remaining();
        if (left === 0) deadline.check("send");
        await this.sleeper.sleep(Math.min(left, 250), opts.signal);
        if (this.closedFlag) throw new ClosedError("inproc sender closed while waiting for room");
        if (attempt()) return;
        deadline.check("send");
      }
    } finally {
      this.waiting = false;
    }
  }
}

/** The receiving end of an `inproc` transport. */
export class InprocReceiver implements Receiver {
  readonly kind = "inproc" as const;
  /** Backpressure policy. */
  readonly policy: BackpressurePolicy;
  private readonly queue: Held[] = [];
  private next = 0;
  private used = 0;
  private missed = 0;
  private ended = false;
  private closedFlag = false;
  private readonly sleeper = new Sleeper();
  private readonly timeout: number;

  /** @internal */
  constructor(
    private readonly sender: InprocSender,
    opts: ReceiverOptions,
  ) {
    const set = receiverSettings("connectInproc", opts);
    this.policy = set.backpressure;
    this.timeout = set.timeout;
    this.ended = sender.closed;
  }

  /** @internal True if `cost` more bytes fit (a leaky receiver makes room by dropping unread messages). */
  hasRoom(cost: number): boolean {
    if (this.used + cost <= this.sender.capacity) return true;
    if (this.policy !== "drop-oldest") return false;
    // Drop unread messages (never taken ones) from the oldest until it fits.
    for (let i = this.next; i < this.queue.length && this.used + cost > this.sender.capacity; ) {
      const h = this.queue[i];
      if (h.taken) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.used -= h.cost;
      this.missed++;
    }
    return this.used + cost <= this.sender.capacity;
  }

  /** @internal */
  push(bytes: Uint8Array, sequence: number, cost: number): void {
    this.queue.push({ bytes, sequence, cost, taken: false, released: false });
    this.used += cost;
    this.sleeper.wake();
  }

  /** @internal The sender closed: deliver the rest, then end. */
  end(): void {
    this.ended = true;
    this.sleeper.wake();
  }

  /** @internal */
  release(h: Held): void {
    if (h.released) return;
    h.released = true;
    // Space is freed in FIFO order, like the ring.
    while (this.queue.length > 0 && this.queue[0].released) {
      const done = this.queue.shift() as Held;
      this.used -= done.cost;
      this.next--;
    }
    this.sender.wake();
  }

  tryReceive(): Frame | null {
    if (this.closedFlag) throw new ClosedError("receiver is closed");
    const h = this.queue[this.next];
    if (h === undefined) return null;
    this.next++;
    h.taken = true;
    return new InprocFrame(h.bytes, h.sequence, h, this);
  }

  async receive(opts: BlockingOptions = {}): Promise<Frame | null> {
    if (this.closedFlag) throw new ClosedError("receiver is closed");
    checkOptions(opts, "receive");
    const deadline = new Deadline(checkTimeout(opts.timeout, this.timeout));
    for (;;) {
      const f = this.tryReceive();
      if (f !== null) return f;
      if (this.ended) return null;
      await this.sleeper.sleep(Math.min(deadline.remaining(), 250), opts.signal);
      if (this.closedFlag) throw new ClosedError("receiver is closed");
      deadline.check("receive");
    }
  }

  takeMissed(): number {
    const n = this.missed;
    this.missed = 0;
    return n;
  }

  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.queue.length = 0;
    this.used = 0;
    this.next = 0;
    this.sender.attached.delete(this);
    this.sleeper.wake();
    this.sender.wake();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<Frame> {
    return releasingIterator(() => this.receive(), () => this.close());
  }
}

/** Attaches a receiver to an {@link InprocSender} of this thread. */
export function connectInproc(sender: InprocSender, opts: ReceiverOptions = {}): Receiver {
  if (!(sender instanceof InprocSender)) throw new InvalidArgumentError("not an InprocSender");
  const r = new InprocReceiver(sender, opts);
  if (!sender.closed) sender.attached.add(r);
  return r;
}
