/**
 * A reader of a ring: zero-copy views, released in order.
 * (Internal: not part of the public API.)
 * @module
 */
import { performance } from "node:perf_hooks";
import type { Bell, Doorbell } from "./bell.js";
import {
  frameBytes,
  H_EPOCH,
  H_WRITER_STATE,
  H_WRITER_SLEEPING,
  H_WRITE_POS,
  P_DROP,
  POLICY_CODES,
  type Policy,
  S_DROPPED,
  S_HEAD,
  S_PID,
  S_POLICY,
  S_SLEEPING,
  S_STATE,
  S_TAIL,
  S_WAKE,
  S_WAKE_KIND,
  SlotState,
  slotIndex,
  WakeKind,
  WriterState,
} from "./layout.js";
import { HeldPositions } from "./held.js";
import { RingView } from "./view.js";
import { ClosedError, PeerDeadError, ResourceExhaustedError, SequenceError } from "../errors.js";
import { checkOptions, checkTimeout, Deadline, throwIfAborted, type BlockingOptions } from "../util/blocking.js";
import { BACKPRESSURE_POLICIES } from "../util/async-queue.js";
import { boolOption, enumOption, MAX_SPIN_MICROS, numberOption } from "../util/options.js";
import { Alarm } from "../util/alarm.js";
import { Anticipator, pollWindow } from "../util/anticipate.js";

/** Longest adaptive poll before sleeping (µs): the most an adaptive reader blocks its thread. */
const ADAPTIVE_MAX_US = 75;
/**
 * A sleep that ended within this many µs teaches a poll budget (1.5 times the sleep, at most
 * {@link ADAPTIVE_MAX_US}). A sleep includes this end's own wake-up (tens of µs on a VM), so the
 * bound is above the longest poll: the peer may answer at once and still have been slept on.
 */
const LEARN_SLEEP_US = 100;
/** About how long 256 polls of the write position take (ms): counted as spent before the first clock read. */
const POLL_256_MS = 0.002;
/** Spin budgets (µs) from which the first clock read waits for the first 256 polls. */
const DEFER_CLOCK_US = 20;
/** A sleeping reader re-checks at least this often (ms), whatever wakes it. */
const RECHECK_MS = 250;
/** Streams faster than this period (ms) are not anticipated: the window would cost a large share of a core. */
const ANTICIPATE_MIN_PERIOD_MS = 0.5;
/** Smallest half window (ms) of an anticipating ring reader. */
const ANTICIPATE_MIN_HALF_MS = 0.05;
/** Bounds of the lead (ms) of an anticipation window: the alarm's own wake-up, learnt. */
const LEAD_MIN_MS = 0.03;
const LEAD_MAX_MS = 0.5;

/** Options of a {@link RingReader}. */
export interface RingReaderOptions {
  /** What the writer does when this reader has no room (default `block`). */
  policy?: Policy;
  /** How the writer wakes this reader: `Atomics` (same process) or `Eventfd`. */
  wakeKind?: WakeKind;
  /** Process id recorded in the slot. */
  pid?: number;
  /** For `WakeKind.LocalEventfd`: the id the writer knows this reader's doorbell by. */
  wakeId?: number;
  /** Busy-poll this many µs before sleeping (0 = never spin; spinning costs a core). */
  spinMicros?: number;
  /**
   * Poll briefly (at most 50 µs) before sleeping when messages have been arriving within a
   * wake-up's time, so a fast stream costs the writer no wake-up system calls; backs off at
   * once when polling does not pay. Default true.
   */
  adaptiveSpin?: boolean;
  /** Default timeout of `read` in ms (default Infinity). */
  timeout?: number;
  /**
   * Learn the period of a paced stream (one message every 0.5 ms or more, regularly) and poll
   * briefly around each message's expected arrival instead of sleeping through it; a
   * high-resolution alarm ends the sleep just before. Costs the poll's share of a core (at most a
   * quarter of the period), saves the reader's wake-up. Default false.
   */
  anticipate?: boolean;
}

/**
 * Reads a ring from the position it joined at. `tryRead` returns a view of the next message
 * (or null); views stay valid until released, and are released in FIFO order (`release`,
 * `releaseAll`). While a view is held the writer cannot overwrite it.
 */
export class RingReader {
  /** The ring's views. */
  readonly ring: RingView;
  /** The reader's slot. */
  readonly slot: number;
  /** The slot's state word while this reader owns it (state bits and the owner's ticket). */
  readonly stateWord: number;
  /** Sequence number of the message `tryRead` returned last. */
  sequence = 0;
  /** Position token of the message `tryRead` returned last (pass to `release`). */
  token = 0;
  private head: number;
  private expected = -1;
  private readonly leaky: boolean;
  /** Start positions of the frames taken and not yet released. */
  private readonly taken = new HeldPositions();
  /** The write position last loaded (reloaded only when the reader catches up with it). */
  private wp: number;
  private missedSeen = 0;
  private readonly spin: number;
  private readonly adaptive: boolean;
  /** µs to poll before the next sleep (adaptive spinning), 0 = sleep at once. */
  private adaptiveBudget = 0;
  private failures = 0;
  private backoff = 0;
  private readonly timeout: number;
  private writerDoorbell: Doorbell | undefined;
  private dead: Error | undefined;
  private left = false;
  /** Learns the period of a paced stream (`anticipate`). */
  private readonly anticipator: Anticipator | undefined;
  /** Ends a sleep as an anticipation window opens (made on first use). */
  private alarm: Alarm | undefined;
  /** When the armed alarm is due (`performance.now()` ms). */
  private alarmDue = 0;
  /** How long a wake-up of this thread takes (ms), learnt from the alarm. */
  private wakeMs = 0.05;
  /** The alarm ended the last sleep. */
  private alarmFired = false;
  /** No alarm could be made: sleep without anticipating. */
  private noAlarm = false;
  private readonly iHead: number;
  private readonly iTail: number;
  private readonly iSleeping: number;

  /**
   * Joins `buffer` (claims a free slot and starts at the current write position).
   * @param bell - where this reader sleeps, or a factory given the slot's wake word
   * @param writerDoorbell - wakes the writer after releases (may be set later)
   */
  private readonly bell: Bell;

  constructor(
    buffer: SharedArrayBuffer,
    bell: Bell | ((words: Int32Array, wakeIndex: number) => Bell),
    writerDoorbell: Doorbell | undefined,
    opts: RingReaderOptions = {},
  ) {
    const policy = enumOption("backpressure", opts.policy, BACKPRESSURE_POLICIES, "block");
    this.ring = new RingView(buffer);
    this.writerDoorbell = writerDoorbell;
    this.leaky = POLICY_CODES[policy] === P_DROP;
    this.spin = numberOption("spinMicros", opts.spinMicros, 0, 0, MAX_SPIN_MICROS);
    this.adaptive = boolOption("adaptiveSpin", opts.adaptiveSpin, true);
    this.timeout = checkTimeout(opts.timeout, Infinity);
    this.anticipator = boolOption("anticipate", opts.anticipate, false)
      ? new Anticipator({ minPeriodMs: ANTICIPATE_MIN_PERIOD_MS, minHalfMs: ANTICIPATE_MIN_HALF_MS, leadMs: 0.1, confirm: 0.25 })
      : undefined;
    const w = this.ring.words;
    const ticket = 1 + Math.floor(Math.random() * 0x1ffffffe);
    let slot = -1;
    for (let s = 0; s < this.ring.maxReaders && slot < 0; s++) {
      if (Atomics.compareExchange(w, slotIndex(s, S_STATE), SlotState.Free, (ticket << 2) | SlotState.Claimed) === SlotState.Free) slot = s;
    }
    if (slot < 0) throw new ResourceExhaustedError(`all ${this.ring.maxReaders} reader slots of the ring are taken`);
    this.slot = slot;
    this.iHead = slotIndex(slot, S_HEAD);
    this.iTail = slotIndex(slot, S_TAIL);
    this.iSleeping = slotIndex(slot, S_SLEEPING);
    this.bell = typeof bell === "function" ? bell(w, slotIndex(slot, S_WAKE)) : bell;
    Atomics.store(w, slotIndex(slot, S_POLICY), POLICY_CODES[policy]);
    Atomics.store(w, slotIndex(slot, S_PID), opts.pid ?? 0);
    Atomics.store(w, slotIndex(slot, S_WAKE_KIND), opts.wakeKind ?? WakeKind.Atomics);
    if (opts.wakeKind === WakeKind.LocalEventfd) Atomics.store(w, slotIndex(slot, S_WAKE), opts.wakeId ?? 0);
    Atomics.store(w, this.iSleeping, 0);
    Atomics.store(w, slotIndex(slot, S_DROPPED), 0);
    // Start at the write position, become active, then start again at the (possibly moved)
    // write position: the writer re-scans readers when the epoch changes, so from here on it
    // cannot pass this reader's tail.
    this.head = this.startAt(this.ring.writePos());
    this.stateWord = (ticket << 2) | SlotState.Active;
    Atomics.store(w, slotIndex(slot, S_STATE), this.stateWord);
    Atomics.add(w, H_EPOCH, 1);
    this.head = this.startAt(this.ring.writePos());
    this.wp = this.head;
    this.wakeWriter();
  }

  /** Sets the doorbell that wakes the writer (once the handshake delivered it). */
  setWriterDoorbell(doorbell: Doorbell): void {
    this.writerDoorbell = doorbell;
  }

  /** Messages the writer dropped for this (leaky) reader since the last call. */
  takeMissed(): number {
    const total = Atomics.load(this.ring.words, slotIndex(this.slot, S_DROPPED));
    const n = (total - this.missedSeen) | 0;
    this.missedSeen = total;
    return n;
  }

  /** Number of views taken and not yet released. */
  get held(): number {
    return this.taken.size;
  }

  /** True when the writer closed the ring gracefully. */
  get writerClosed(): boolean {
    return Atomics.load(this.ring.words, H_WRITER_STATE) === WriterState.Closed;
  }

  /** True if a message is ready. */
  get readable(): boolean {
    return this.ring.writePos() !== (this.leaky ? Atomics.load(this.ring.words, this.iHead) : this.head);
  }

  /** Payload bytes of the message `tryReadAt` (or `tryRead`) returned last. */
  length = 0;

  /**
   * The next message as a read-only-by-contract view into the ring, or null if none is
   * committed yet. `sequence` and `token` describe it.
   */
  tryRead(): Uint8Array | null {
    const at = this.tryReadAt();
    return at < 0 ? null : new Uint8Array(this.ring.buffer, at, this.length);
  }

  /**
   * Like {@link tryRead} without making a view: where the next message's payload starts in the
   * ring's buffer (`ring.bytes`), its size in {@link length}; -1 if none is committed yet.
   */
  tryReadAt(): number {
    if (this.left) throw new ClosedError("ring reader has left");
    const ring = this.ring;
    const w = ring.words;
    for (;;) {
      const h = this.leaky ? Atomics.load(w, this.iHead) : this.head;
      if (((this.wp - h) | 0) <= 0) {
        // Caught up with the last known write position (a leaky reader's head may even have
        // been moved past it by the writer): load it again.
        this.wp = Atomics.load(w, H_WRITE_POS);
        if (h === this.wp) return -1;
      }
      const start = ring.frameStart(h);
      const len = ring.frameLength(start);
      const seq = ring.frameSequence(start);
      const end = (start + frameBytes(len)) | 0;
      if (this.leaky) {
        // The writer may drop frames we have not taken: take this one with a CAS.
        if (Atomics.compareExchange(w, this.iHead, h, end) !== h) continue;
        if (this.expected >= 0 && seq < this.expected) throw new SequenceError(this.expected, seq);
      } else {
        this.head = end;
        if (this.expected >= 0 && seq !== this.expected) throw new SequenceError(this.expected, seq);
      }
      this.expected = seq + 1;
      this.sequence = seq;
      this.token = start;
      this.length = len;
      this.taken.add(start);
      return ring.base + (start & ring.mask) + 16;
    }
  }

  /**
   * The next message if one is ready or arrives while spinning (`spinMicros`), else null.
   * Never sleeps; blocks the thread for at most the spin budget.
   */
  trySpinRead(): Uint8Array | null {
    const at = this.trySpinReadAt();
    return at < 0 ? null : new Uint8Array(this.ring.buffer, at, this.length);
  }

  /** {@link trySpinRead} without making a view: as {@link tryReadAt}. */
  trySpinReadAt(): number {
    const v = this.tryReadAt();
    if (v >= 0) return v;
    let budget = this.spin;
    let adaptive = false;
    let probe = false;
    if (budget === 0 && this.adaptive) {
      if (this.backoff > 0) {
        this.backoff--;
        return -1;
      }
      // Without a budget learnt from short sleeps, probe at the bound: a peer that is polling
      // too answers within it, and from then on neither end sleeps (a sleep measures the
      // peer's wake-up as well, so two sleeping ends would never learn it by themselves).
      // A probe that does not pay backs off like a failed poll.
      probe = this.adaptiveBudget === 0;
      budget = probe ? ADAPTIVE_MAX_US : this.adaptiveBudget;
      adaptive = true;
    }
    if (budget === 0) return -1;
    const started = probe ? performance.now() : 0;
    const w = this.pollFor(budget);
    if (w >= 0) {
      if (adaptive) this.failures = 0;
      // A probe that paid: poll about as long as it took next time (at least 10 µs).
      if (probe) this.adaptiveBudget = Math.min(ADAPTIVE_MAX_US, Math.max(10, Math.ceil((performance.now() - started) * 1500)));
      return w;
    }
    if (adaptive) {
      // Spinning did not pay: try again only after 2, 4, 8 ... 1024 reads (a busy peer on the
      // same core cannot write while we spin).
      this.failures = Math.min(this.failures + 1, 10);
      this.backoff = 1 << this.failures;
      this.adaptiveBudget = 0;
    }
    return -1;
  }

  /**
   * Busy-polls the write position for at most `budget` µs: where the next message starts, as
   * {@link tryReadAt}, or -1. Looks at the clock only every 256 polls. For budgets of
   * DEFER_CLOCK_US and more the first clock read comes after the first 256 polls (a clock read
   * costs as much as a few dozen polls, and a peer answering at once is there before that);
   * shorter budgets, and leaky readers (whose polls cost more), read it up front.
   */
  private pollFor(budget: number): number {
    let until = budget >= DEFER_CLOCK_US && !this.leaky ? Infinity : performance.now() + budget / 1000;
    const words = this.ring.words;
    for (let i = 1; ; i++) {
      if (Atomics.load(words, H_WRITE_POS) !== this.head || this.leaky) {
        const w = this.tryReadAt();
        if (w >= 0) return w;
      }
      if ((i & 255) === 0) {
        const t = performance.now();
        if (until === Infinity) until = t + budget / 1000 - POLL_256_MS;
        if (t >= until) return -1;
      }
    }
  }

  /**
   * Waits for the next message. Resolves null when the writer closed the ring and everything
   * was read; rejects with `PeerDeadError` (after the remaining messages) if the writer died.
   */
  read(opts: BlockingOptions = {}): Promise<Uint8Array | null> {
    try {
      checkOptions(opts, "read");
      const v = this.trySpinRead();
      if (v !== null) {
        this.noteTaken();
        return Promise.resolve(v);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.sleepRead(opts);
  }

  /**
   * The slow path of {@link read}: sleep until the writer wakes this reader — or, for a paced
   * stream (`anticipate`), until the next message's window opens, then poll through it.
   */
  async sleepRead(opts: BlockingOptions): Promise<Uint8Array | null> {
    throwIfAborted(opts.signal, "read");
    const deadline = new Deadline(checkTimeout(opts.timeout, this.timeout));
    const w = this.ring.words;
    const a = this.anticipator;
    let woken = false;
    for (;;) {
      let v: Uint8Array | null;
      if (this.dead) {
        v = this.tryRead();
        if (v !== null) return v;
        throw this.dead;
      }
      const token = this.bell.token();
      Atomics.store(w, this.iSleeping, 1);
      v = this.tryRead();
      if (v !== null || this.writerClosed) {
        Atomics.store(w, this.iSleeping, 0);
        if (v !== null) {
          // Seen now, after a wake-up if this reader slept: it came about a wake-up earlier.
          a?.arrived(performance.now() - (woken ? this.wakeMs : 0));
          return v;
        }
        return this.tryRead();
      }
      const sleepMs = Math.min(deadline.remaining(), RECHECK_MS);
      const window = a?.window();
      if (a !== undefined && window !== undefined) {
        const now = performance.now();
        if (now >= window[0] && now < window[1]) {
          // The next message of a paced stream is due: poll for it rather than sleep through it
          // (the writer need not ring while this reader is not flagged as sleeping).
          Atomics.store(w, this.iSleeping, 0);
          const end = Math.min(window[1], now + deadline.remaining());
          const signal = opts.signal;
          let at = -1;
          const stop = (): boolean => this.dead !== undefined || this.left || this.writerClosed || signal?.aborted === true;
          if (await pollWindow(end, (us) => (at = this.pollFor(us)) >= 0, stop)) {
            a.caught++;
            a.arrived(performance.now());
            return new Uint8Array(this.ring.buffer, at, this.length);
          }
          // Only a window that passed is spent; one cut short (a deadline, an abort, a close)
          // is still open for the next read.
          if (performance.now() >= window[1]) a.miss();
          if (this.left) throw new ClosedError("ring reader has left");
          throwIfAborted(signal, "read");
          deadline.check("read");
          continue;
        }
        if (now >= window[1]) a.miss();
      }
      const slept = performance.now();
      this.alarmFired = false;
      try {
        if (window !== undefined && window[0] > slept && window[0] - slept < sleepMs) this.armAlarm(window[0], slept); // wake up as the window opens
        await this.bell.sleep(token, sleepMs, opts.signal);
      } finally {
        Atomics.store(w, this.iSleeping, 0);
        this.alarm?.clear();
      }
      // Woken by the writer (not by the alarm): what is there now came a wake-up earlier.
      woken = !this.alarmFired;
      if (this.adaptive) {
        // Woken soon after going to sleep: messages come faster than a wake-up costs the
        // writer (a kernel wake-up, tens of µs on a VM). Next time, poll about that long first.
        const us = (performance.now() - slept) * 1000;
        if (us < LEARN_SLEEP_US && this.readable) this.adaptiveBudget = Math.min(ADAPTIVE_MAX_US, Math.max(this.adaptiveBudget, Math.ceil(us * 1.5)));
      }
      if (this.left) throw new ClosedError("ring reader has left");
      deadline.check("read");
    }
  }

  /**
   * With `anticipate`: the period learnt (ms; 0 while the stream does not look paced), and how
   * many messages were caught by polling in their window and how many windows passed without
   * theirs. Undefined without `anticipate`.
   */
  get anticipation(): { periodMs: number; caught: number; missed: number } | undefined {
    const a = this.anticipator;
    return a && { periodMs: a.periodMs, caught: a.caught, missed: a.missed };
  }

  /**
   * Ends the coming sleep at `due` (a window opens): arms the alarm, learning how late it wakes.
   * Without an alarm (no descriptor left for one) the reader sleeps as without `anticipate`.
   */
  private armAlarm(due: number, now: number): void {
    const a = this.anticipator;
    if (a === undefined || this.noAlarm) return;
    if (this.alarm === undefined) {
      try {
        this.alarm = new Alarm(() => {
          // How late the alarm woke this thread — a wake-up's time: the window's lead covers it
          // next time (a wake-up delayed by a busy machine counts as at most the largest lead).
          const late = Math.min(Math.max(performance.now() - this.alarmDue, 0), LEAD_MAX_MS);
          this.wakeMs += (late - this.wakeMs) / 8;
          a.learnLead(Math.min(LEAD_MAX_MS, Math.max(LEAD_MIN_MS, this.wakeMs * 1.25 + 0.01)));
          this.alarmFired = true;
          this.bell.interrupt();
        });
      } catch {
        this.noAlarm = true; // e.g. out of file descriptors: anticipate no more, sleep instead
        return;
      }
    }
    this.alarmDue = due;
    this.alarm.set(due - now);
  }

  /**
   * A message was taken without waiting (by `tryRead`, a poll, or a read that found it there):
   * tells the anticipation, so that a consumer late by a period does not make the stream look
   * irregular. Called by the receivers' fast paths.
   */
  noteTaken(): void {
    this.anticipator?.taken(performance.now());
  }

  /** Releases the message with position `token` (any order; space is freed in FIFO order). */
  release(token?: number): void {
    if (this.taken.remove(token)) this.advance();
  }

  /** Releases every held message. */
  releaseAll(): void {
    if (this.taken.size === 0) return;
    this.taken.clear();
    this.advance();
  }

  /** Marks the writer dead: reads drain what is committed, then reject with `err`. */
  markWriterDead(err: Error = new PeerDeadError("the ring's writer died")): void {
    this.dead = err;
    this.bell.interrupt();
  }

  /** Leaves the ring: frees the slot (releasing everything) and wakes the writer. Idempotent. */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.alarm?.close();
    const w = this.ring.words;
    if (Atomics.compareExchange(w, slotIndex(this.slot, S_STATE), this.stateWord, SlotState.Free) === this.stateWord) {
      Atomics.add(w, H_EPOCH, 1);
    }
    this.wakeWriter(true);
    this.bell.interrupt();
  }

  private startAt(pos: number): number {
    const w = this.ring.words;
    Atomics.store(w, this.iHead, pos);
    Atomics.store(w, this.iTail, pos);
    return pos;
  }

  /** Moves the tail to the oldest still-held frame (or the head) and wakes a waiting writer. */
  private advance(): void {
    if (this.left) return;
    const w = this.ring.words;
    let tail: number;
    if (this.taken.size === 0) {
      tail = this.leaky ? Atomics.load(w, this.iHead) : this.head;
    } else {
      tail = this.taken.oldest;
    }
    Atomics.store(w, this.iTail, tail);
    this.wakeWriter();
  }

  private wakeWriter(always = false): void {
    const w = this.ring.words;
    if (always || Atomics.load(w, H_WRITER_SLEEPING) !== 0) {
      if (Atomics.exchange(w, H_WRITER_SLEEPING, 0) !== 0 || always) this.writerDoorbell?.ring();
    }
  }
}
