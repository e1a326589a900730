/**
 * The single writer of a ring.
 * (Internal: not part of the public API.)
 * @module
 */
import { AtomicsDoorbell, type Bell, type Doorbell } from "./bell.js";
import {
  FLAG_WRAP,
  frameBytes,
  H_EPOCH,
  H_WRITER_SLEEPING,
  H_WRITER_STATE,
  H_WRITE_POS,
  P_BLOCK,
  P_DROP,
  P_FAIL,
  S_DROPPED,
  S_HEAD,
  S_POLICY,
  S_SLEEPING,
  S_STATE,
  S_TAIL,
  S_WAKE,
  S_WAKE_KIND,
  SlotState,
  slotIndex,
  STATE_MASK,
  WakeKind,
  WriterState,
} from "./layout.js";
import { HeldPositions } from "./held.js";
import { RingView } from "./view.js";
import { native } from "../native.js";
import { BackpressureError, ClosedError, FrameTooLargeError, InvalidArgumentError, TimeoutError } from "../errors.js";
import { checkOptions, checkTimeout, Deadline, throwIfAborted, type BlockingOptions } from "../util/blocking.js";

/** Payloads at least this large are copied by the addon's memcpy; smaller ones by `set`. */
const NATIVE_COPY_MIN = 512;
/** A waiting writer re-scans at least this often (ms), whatever wakes it. */
const RESCAN_MS = 250;

/** A region of the ring lent to the writer: fill `bytes`, then `commit()` or `abort()`. */
export interface Loan {
  /** Where to write the message (exactly the requested size). */
  readonly bytes: Uint8Array;
  /** Publishes the first `length` bytes (default: all); the loan ends. */
  commit(length?: number): void;
  /** Gives the region back unpublished; the loan ends. */
  abort(): void;
}

/** Options of a {@link RingWriter}. */
export interface RingWriterOptions {
  /** Default timeout of `write`/`loan` in ms (default 5000). */
  timeout?: number;
  /** Copy with the addon's memcpy for large payloads (default true; false for rings without the addon). */
  nativeCopy?: boolean;
}

/**
 * Writes frames into a ring. One writer per ring. `tryWrite` never waits; `write` waits (with
 * timeout and signal) while a `block` reader holds the space it needs.
 */
export class RingWriter {
  /** The ring's views. */
  readonly ring: RingView;
  private pos: number;
  private seq = 1;
  private limit: number;
  private epoch = -1;
  private active: number[] = [];
  /** Doorbells given by a handshake (`setDoorbell`), per slot. */
  private readonly external: (Doorbell | undefined)[];
  /** The doorbell of each active slot, resolved when the reader set changes. */
  private readonly doorbells: (Doorbell | undefined)[];
  /** Doorbells of readers in this process's other threads, by wake id. */
  private readonly local = new Map<number, Doorbell>();
  private loanOpen = false;
  private closedFlag = false;
  private readonly timeout: number;
  private readonly useNative: boolean;
  private waiting = false;
  /** Frames this writer's owner still uses after the readers released them ({@link pinReserved}). */
  private readonly pins = new HeldPositions();
  /** The open reservation was pinned (an abort drops that pin). */
  private pinnedOpen = false;

  /**
   * @param buffer - an initialised ring
   * @param bell - where this writer sleeps while waiting for space
   */
  constructor(
    buffer: SharedArrayBuffer,
    private readonly bell: Bell,
    opts: RingWriterOptions = {},
  ) {
    this.ring = new RingView(buffer);
    this.pos = this.ring.writePos();
    this.limit = this.pos;
    this.doorbells = new Array<Doorbell | undefined>(this.ring.maxReaders).fill(undefined);
    this.external = new Array<Doorbell | undefined>(this.ring.maxReaders).fill(undefined);
    this.timeout = checkTimeout(opts.timeout, 5000);
    this.useNative = opts.nativeCopy ?? true;
  }

  /** Sequence number the next message will carry. */
  get nextSequence(): number {
    return this.seq;
  }

  /** Number of active readers. */
  get readers(): number {
    this.refresh();
    return this.active.length;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Registers how to wake the reader in `slot` (eventfd readers in other processes). */
  setDoorbell(slot: number, doorbell: Doorbell | undefined): void {
    this.external[slot] = doorbell;
    this.doorbells[slot] = doorbell;
  }

  /** Registers the doorbell of a reader in another thread, by the wake id it stores in its slot. */
  registerLocalDoorbell(wakeId: number, doorbell: Doorbell | undefined): void {
    if (doorbell) this.local.set(wakeId, doorbell);
    else this.local.delete(wakeId);
    this.epoch = -1; // resolve the slots' doorbells again
  }

  /**
   * Frees the slot of a reader that died, if `stateWord` (the reader's {@link RingReader.stateWord})
   * still owns it; the writer stops waiting for that reader.
   */
  evict(slot: number, stateWord: number): void {
    const w = this.ring.words;
    if (Atomics.compareExchange(w, slotIndex(slot, S_STATE), stateWord, SlotState.Free) === stateWord) {
      Atomics.add(w, H_EPOCH, 1);
      this.external[slot] = this.doorbells[slot] = undefined;
    }
    this.bell.interrupt();
  }

  /** Wakes a pending `write`/`loan` so it re-checks (after a reader left or died). */
  interrupt(): void {
    this.bell.interrupt();
  }

  /**
   * Writes `data` as one message if every `block` reader has room; returns false otherwise.
   * Drops the oldest unread messages of `drop-oldest` readers that lack room, and throws
   * `BackpressureError` if a `fail` reader lacks room (then nobody gets the message).
   */
  tryWrite(data: ArrayBufferView): boolean {
    const len = data.byteLength;
    const off = this.reserve(len);
    if (off < 0) return false;
    const at = this.ring.base + off + 16;
    if (len >= NATIVE_COPY_MIN && this.useNative) {
      native().copy(this.ring.buffer, at, data);
    } else if (len > 0) {
      const src = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, len);
      this.ring.bytes.set(src, at);
    }
    this.publish(len);
    return true;
  }

  /** Like {@link tryWrite} but waits for room (default timeout from the options). */
  async write(data: ArrayBufferView, opts: BlockingOptions = {}): Promise<void> {
    checkOptions(opts, "write");
    if (this.tryWrite(data)) return;
    await this.waitFor(() => this.tryWrite(data), opts);
  }

  /** Lends `size` bytes in the ring if there is room now, else null. */
  tryLoan(size: number): Loan | null {
    const at = this.tryReserve(size);
    if (at < 0) return null;
    const bytes = new Uint8Array(this.ring.buffer, at, size);
    let open = true;
    return {
      bytes,
      commit: (length = size) => {
        if (!open) throw new ClosedError("loan already ended");
        if (!Number.isInteger(length) || length < 0 || length > size) {
          throw new InvalidArgumentError(`commit length must be an integer in 0..${size}, got ${length}`);
        }
        open = false;
        this.commitReserved(length);
      },
      abort: () => {
        if (!open) return;
        open = false;
        this.abortReserved();
      },
    };
  }

  /**
   * The allocation-free form of {@link tryLoan}: reserves `size` bytes if there is room now and
   * returns their offset in {@link ringBytes}, else -1. Then {@link commitReserved} or
   * {@link abortReserved}, before any other write.
   */
  tryReserve(size: number): number {
    const off = this.reserve(size);
    if (off < 0) return -1;
    this.loanOpen = true;
    return this.ring.base + off + 16;
  }

  /** Publishes the first `length` bytes of the reservation (`length` <= the size reserved). */
  commitReserved(length: number): void {
    if (!this.loanOpen) throw new ClosedError("no reservation to commit");
    this.loanOpen = false;
    this.pinnedOpen = false;
    if (this.closedFlag) throw new ClosedError("ring writer closed during the loan");
    this.publish(length);
  }

  /**
   * Pins the frame reserved now (by {@link tryReserve} or a loan, before its commit): its memory
   * is not written again, whatever the readers release, until {@link unpin} with the returned
   * token. For a writer that reads its own frames back after the readers are done with them
   * (the in-place answers of request/response). The token is never negative (the frame's ring
   * position as an unsigned 32-bit number), so -1 can stand for "nothing pinned".
   */
  pinReserved(): number {
    if (!this.loanOpen) throw new ClosedError("no reservation to pin");
    const pos = this.pos;
    if (!this.pinnedOpen) this.pins.add(pos);
    this.pinnedOpen = true;
    return pos >>> 0;
  }

  /** Unpins the frame {@link pinReserved} returned `token` for (any order; idempotent). */
  unpin(token: number): void {
    // The limit is recomputed by the next write that needs more room; one waiting for room now re-checks.
    if (this.pins.remove(token | 0) && this.waiting) this.bell.interrupt();
  }

  /** Drops the reservation. */
  abortReserved(): void {
    this.loanOpen = false;
    if (this.pinnedOpen) this.pins.remove(this.pos); // nothing was written there
    this.pinnedOpen = false;
  }

  /** The ring's whole memory (what {@link tryReserve} offsets index). */
  get ringBytes(): Uint8Array {
    return this.ring.bytes;
  }

  /** The same memory as 32-bit words (a reservation's offset is a multiple of 16). */
  get ringWords(): Int32Array {
    return this.ring.words;
  }

  /** Like {@link tryLoan} but waits for room. */
  async loan(size: number, opts: BlockingOptions = {}): Promise<Loan> {
    checkOptions(opts, "loan");
    let loan = this.tryLoan(size);
    if (loan) return loan;
    await this.waitFor(() => (loan = this.tryLoan(size)) !== null, opts);
    return loan as unknown as Loan;
  }

  /** Ends the ring gracefully: readers receive what was written, then the end. Idempotent. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    Atomics.store(this.ring.words, H_WRITER_STATE, WriterState.Closed);
    this.refresh();
    for (const slot of this.active) this.wake(slot, true);
    this.bell.interrupt();
  }

  // ---- internals ------------------------------------------------------------------------

  /** Reserves room for a `len`-byte payload; returns its frame's offset in the data region, or -1. */
  private reserve(len: number): number {
    if (this.closedFlag) throw new ClosedError("ring writer is closed");
    if (this.loanOpen) throw new InvalidArgumentError("a loan is open: commit or abort it first");
    const ring = this.ring;
    if (!(len >= 0 && len <= ring.maxPayload)) {
      if (!Number.isInteger(len) || len < 0) throw new InvalidArgumentError(`message size must be a non-negative integer, got ${len}`);
      throw new FrameTooLargeError(`message of ${len} bytes exceeds the ring's limit of ${ring.maxPayload} bytes (capacity ${ring.capacity} / 2 - 16)`);
    }
    const total = frameBytes(len);
    const pos = this.pos;
    const off = pos & ring.mask;
    const room = ring.capacity - off;
    const needed = total <= room ? total : room + total;
    if (((this.limit - pos - needed) | 0) < 0 || Atomics.load(ring.words, H_EPOCH) !== this.epoch) {
      if (!this.scan(pos, needed)) return -1;
    }
    if (total <= room) return off;
    // Wrap: a marker covers the rest of this lap; the frame starts the next one.
    const i = (ring.base + off) >> 2;
    ring.words[i] = room - 16;
    ring.words[i + 1] = FLAG_WRAP;
    this.pos = (pos + room) | 0;
    return 0;
  }

  /** Writes the header of the reserved frame and publishes it. */
  private publish(len: number): void {
    const ring = this.ring;
    const w = ring.words;
    const pos = this.pos;
    const i = (ring.base + (pos & ring.mask)) >> 2;
    const seq = this.seq;
    w[i] = len;
    w[i + 1] = 0;
    w[i + 2] = seq | 0;
    w[i + 3] = (seq / 0x100000000) | 0;
    this.seq = seq + 1;
    this.pos = (pos + frameBytes(len)) | 0;
    Atomics.store(w, H_WRITE_POS, this.pos);
    const active = this.active;
    for (let k = 0; k < active.length; k++) {
      const slot = active[k];
      if (Atomics.load(w, slotIndex(slot, S_SLEEPING)) !== 0) this.wake(slot, false);
    }
  }

  /** Wakes the reader in `slot` if it sleeps (or unconditionally with `always`). */
  private wake(slot: number, always: boolean): void {
    const w = this.ring.words;
    if (Atomics.exchange(w, slotIndex(slot, S_SLEEPING), 0) !== 0 || always) this.doorbells[slot]?.ring();
  }

  /** Rebuilds the list of active slots when the reader set changed. */
  private refresh(): void {
    const w = this.ring.words;
    const epoch = Atomics.load(w, H_EPOCH);
    if (epoch === this.epoch) return;
    this.epoch = epoch;
    const active: number[] = [];
    for (let s = 0; s < this.ring.maxReaders; s++) {
      if ((Atomics.load(w, slotIndex(s, S_STATE)) & STATE_MASK) !== SlotState.Active) continue;
      active.push(s);
      this.doorbells[s] = this.resolveDoorbell(s);
    }
    this.active = active;
  }

  /** How to wake the reader in `slot`, from its wake kind. */
  private resolveDoorbell(slot: number): Doorbell | undefined {
    const w = this.ring.words;
    switch (Atomics.load(w, slotIndex(slot, S_WAKE_KIND))) {
      case WakeKind.Atomics:
        return this.doorbells[slot] instanceof AtomicsDoorbell ? this.doorbells[slot] : new AtomicsDoorbell(w, slotIndex(slot, S_WAKE));
      case WakeKind.LocalEventfd:
        return this.local.get(Atomics.load(w, slotIndex(slot, S_WAKE)));
      default:
        return this.external[slot];
    }
  }

  /**
   * Recomputes how far the writer may go (the slowest reader's tail + capacity). Returns false
   * if a `block` reader lacks room for `needed` bytes at `pos`.
   */
  private scan(pos: number, needed: number): boolean {
    this.refresh();
    const ring = this.ring;
    const w = ring.words;
    const want = (pos + needed) | 0;
    let limit = (pos + ring.capacity) | 0;
    let blocked = false;
    let leaky: number[] | undefined;
    for (const slot of this.active) {
      if ((Atomics.load(w, slotIndex(slot, S_STATE)) & STATE_MASK) !== SlotState.Active) continue;
      const tail = Atomics.load(w, slotIndex(slot, S_TAIL));
      if (((want - tail) | 0) > ring.capacity) {
        const policy = Atomics.load(w, slotIndex(slot, S_POLICY));
        if (policy === P_FAIL) {
          throw new BackpressureError(`reader ${slot} has no room for a ${needed}-byte frame (policy "fail")`);
        }
        if (policy === P_DROP) (leaky ??= []).push(slot);
        else blocked = true;
      }
      const end = (tail + ring.capacity) | 0;
      if (((end - limit) | 0) < 0) limit = end;
    }
    if (this.pins.size > 0) {
      // The writer's own pinned frames hold it back like a `block` reader's tail.
      const pinned = this.pins.oldest;
      if (((want - pinned) | 0) > ring.capacity) blocked = true;
      const end = (pinned + ring.capacity) | 0;
      if (((end - limit) | 0) < 0) limit = end;
    }
    // Drop for leaky readers only when the write can go ahead: never lose messages for nothing.
    if (!blocked && leaky) {
      for (const slot of leaky) {
        if (!this.drop(slot, (want - ring.capacity) | 0)) blocked = true;
      }
      if (!blocked) return this.scan(pos, needed);
    }
    this.limit = limit;
    return !blocked && ((limit - want) | 0) >= 0;
  }

  /**
   * Drops the oldest unread frames of a leaky reader until its cursor reaches `need`. Only
   * frames the reader has not taken can be dropped; returns false if it holds some.
   */
  private drop(slot: number, need: number): boolean {
    const w = this.ring.words;
    const hi = slotIndex(slot, S_HEAD);
    const ti = slotIndex(slot, S_TAIL);
    for (let attempt = 0; attempt < 4; attempt++) {
      const head = Atomics.load(w, hi);
      if (Atomics.load(w, ti) !== head) return false; // the reader holds frames
      let p = head;
      let frames = 0;
      while (((p - need) | 0) < 0 && p !== this.pos) {
        const start = this.ring.frameStart(p);
        p = (start + frameBytes(this.ring.frameLength(start))) | 0;
        frames++;
      }
      if (Atomics.compareExchange(w, hi, head, p) === head) {
        Atomics.compareExchange(w, ti, head, p);
        Atomics.add(w, slotIndex(slot, S_DROPPED), frames);
        return true;
      }
    }
    return false;
  }

  /** Sleeps on the writer's bell until `attempt()` succeeds, the deadline passes or the signal aborts. */
  private async waitFor(attempt: () => boolean, opts: BlockingOptions): Promise<void> {
    throwIfAborted(opts.signal, "write");
    if (this.waiting) throw new InvalidArgumentError("another write is already waiting for room on this ring");
    this.waiting = true;
    const deadline = new Deadline(checkTimeout(opts.timeout, this.timeout));
    const w = this.ring.words;
    try {
      for (;;) {
        const token = this.bell.token();
        Atomics.store(w, H_WRITER_SLEEPING, 1);
        if (attempt()) return;
        const left = deadline.remaining();
        if (left === 0) throw new TimeoutError(`write waited ${checkTimeout(opts.timeout, this.timeout)} ms for a slow reader`);
        await this.bell.sleep(token, Math.min(left, RESCAN_MS), opts.signal);
        if (this.closedFlag) throw new ClosedError("ring writer closed while waiting for room");
        this.epoch = -1; // re-scan: readers may have left
      }
    } finally {
      Atomics.store(w, H_WRITER_SLEEPING, 0);
      this.waiting = false;
    }
  }
}

/** The policy codes, re-exported for transports. */
export { P_BLOCK, P_DROP, P_FAIL };
