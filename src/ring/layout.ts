/**
 * The ring layout: a header followed by a power-of-two data region, in any SharedArrayBuffer.
 * Positions are 32-bit counters that only grow (modulo 2^32); a position's offset in the data
 * region is `pos & (capacity - 1)`. All header fields are 32-bit integers accessed with
 * `Atomics`. The layout is specified in docs/protocol.md.
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError, ProtocolError } from "../errors.js";
import type { QueuePolicy } from "../util/async-queue.js";
import { intOption } from "../util/options.js";

/** "PLXR" little-endian. */
export const MAGIC = 0x52584c50;
/** Ring protocol version. */
export const VERSION = 1;

/** Bytes of one header field. */
const I32 = 4;
/** Cache line size the hot fields are spread over. */
export const LINE = 64;

// ---- line 0: constant fields, written once by the creator ---------------------------------
/** Int32 index of the magic number. */
export const H_MAGIC = 0;
/** Int32 index of the version. */
export const H_VERSION = 1;
/** Int32 index of the header size in bytes (= offset of the data region). */
export const H_HEADER_BYTES = 2;
/** Int32 index of the data capacity in bytes (a power of two). */
export const H_CAPACITY = 3;
/** Int32 index of the number of reader slots. */
export const H_MAX_READERS = 4;
/** Int32 index of the writer's process id (0 for threads). */
export const H_WRITER_PID = 5;
/** Int32 index of the writer state ({@link WriterState}). */
export const H_WRITER_STATE = 6;
/** Int32 index of the reader-set epoch; bumped whenever a reader joins or leaves. */
export const H_EPOCH = 7;
// ---- line 1: written by the writer on every message ----------------------------------------
/** Int32 index of the committed write position. */
export const H_WRITE_POS = LINE / I32;
// ---- line 2: the writer's sleep flag, written by readers only to wake it -------------------
/** Int32 index of the writer's sleeping flag (1 = waiting for space). */
export const H_WRITER_SLEEPING = (2 * LINE) / I32;
/** Int32 index of the word the writer waits on with `Atomics.waitAsync` (threads). */
export const H_WRITER_WAKE = H_WRITER_SLEEPING + 1;

/** Bytes before the first reader slot. */
const SLOTS_OFFSET = 3 * LINE;
/** Bytes per reader slot: one line the reader writes per message, one it rarely writes. */
export const SLOT_BYTES = 2 * LINE;

// ---- reader slot, line A (hot: cursors) ----------------------------------------------------
/** Slot field: next unread position (the take cursor). The writer moves it only to drop for leaky readers. */
export const S_HEAD = 0;
/** Slot field: release cursor; everything before it may be overwritten. */
export const S_TAIL = 1;
/** Slot field: number of messages the writer dropped for this (leaky) reader. */
export const S_DROPPED = 2;
// ---- reader slot, line B (cold: state and sleeping) ------------------------------------------
/** Slot field: state word = {@link SlotState} | ticket << 2 (the ticket identifies the owner). */
export const S_STATE = LINE / I32;
/** Slot field: {@link Policy} code. */
export const S_POLICY = S_STATE + 1;
/** Slot field: reader process id. */
export const S_PID = S_STATE + 2;
/** Slot field: 1 while the reader sleeps and wants a wake-up. */
export const S_SLEEPING = S_STATE + 3;
/** Slot field: the word an `Atomics` reader waits on, or a `LocalEventfd` reader's wake id. */
export const S_WAKE = S_STATE + 4;
/** Slot field: how the reader is woken ({@link WakeKind}). */
export const S_WAKE_KIND = S_STATE + 5;

/** Frame header size in bytes: length, flags, sequence (low, high). */
export const FRAME_HEADER = 16;
/** Frames start on 16-byte boundaries (so payloads are 16-byte aligned). */
export const FRAME_ALIGN = 16;
/** Frame flag: wrap marker; the rest of the lap is unused. */
export const FLAG_WRAP = 1;

/** Mask of the state bits in a slot's state word; the bits above are the owner's ticket. */
export const STATE_MASK = 3;

/** State of a reader slot (low bits of the state word). */
export const enum SlotState {
  /** Unused. */
  Free = 0,
  /** Being set up by a joining reader; ignored by the writer. */
  Claimed = 1,
  /** Active: the writer respects the slot's tail. */
  Active = 2,
}

/** State of the writer. */
export const enum WriterState {
  /** Ring created, writer attached. */
  Open = 1,
  /** The writer closed gracefully: readers drain what is left, then end. */
  Closed = 2,
}

/** How a reader is woken. */
export const enum WakeKind {
  /** `Atomics.notify` on the slot's wake word (readers in the writer's process). */
  Atomics = 0,
  /** An eventfd the writer received from the reader's process (registered with `setDoorbell`). */
  Eventfd = 1,
  /**
   * An eventfd of the writer's own process (a reader in another thread), found by the wake id
   * the reader stores in `S_WAKE` (registered with `registerLocalDoorbell`).
   */
  LocalEventfd = 2,
}

/** What a writer does when a reader has no room for the next message. */
export type Policy = QueuePolicy;
/** Numeric codes of {@link Policy} as stored in the slot. */
export const POLICY_CODES: Record<Policy, number> = { block: 0, "drop-oldest": 1, fail: 2 };
/** Policy code: wait. */
export const P_BLOCK = 0;
/** Policy code: drop the reader's oldest unread messages. */
export const P_DROP = 1;
/** Policy code: fail the write. */
export const P_FAIL = 2;

/** Options for a new ring. */
export interface RingOptions {
  /** Data capacity in bytes; rounded up to a power of two, 4 KiB .. 1 GiB. Default 1 MiB. */
  capacity?: number;
  /** Reader slots. Default 16, at most 256. */
  maxReaders?: number;
}

/** The sizes of a ring, as read from or written to its header. */
export interface RingGeometry {
  /** Offset of the data region in the buffer. */
  headerBytes: number;
  /** Data region size (power of two). */
  capacity: number;
  /** Reader slots. */
  maxReaders: number;
}

/** Largest capacity (1 GiB) so positions compare correctly modulo 2^32. */
export const MAX_CAPACITY = 1 << 30;
/** Smallest capacity. */
export const MIN_CAPACITY = 4096;
/** Most reader slots of a ring. */
export const MAX_READERS = 256;

/** Rounds up to the next power of two. */
function pow2(n: number): number {
  let p = MIN_CAPACITY;
  while (p < n) p *= 2;
  return p;
}

/** Computes the geometry (and total byte size) for the given options. */
export function ringGeometry(opts: RingOptions = {}): RingGeometry & { byteLength: number } {
  const requested = intOption("capacity", opts.capacity, 1 << 20, 1, MAX_CAPACITY);
  const maxReaders = intOption("maxReaders", opts.maxReaders, 16, 1, MAX_READERS);
  const capacity = pow2(requested);
  const headerBytes = Math.ceil((SLOTS_OFFSET + maxReaders * SLOT_BYTES) / 4096) * 4096;
  return { headerBytes, capacity, maxReaders, byteLength: headerBytes + capacity };
}

/** Largest payload a ring of this capacity accepts: half the ring, less a header. */
export function maxPayload(capacity: number): number {
  return capacity / 2 - FRAME_HEADER;
}

/** Writes a fresh header into `buffer` (which must be zeroed and large enough). */
export function initRing(buffer: SharedArrayBuffer, geo: RingGeometry, writerPid: number): void {
  if (buffer.byteLength < geo.headerBytes + geo.capacity) {
    throw new InvalidArgumentError(`buffer of ${buffer.byteLength} bytes is too small for the ring (${geo.headerBytes + geo.capacity})`);
  }
  const h = new Int32Array(buffer, 0, geo.headerBytes / I32);
  h[H_VERSION] = VERSION;
  h[H_HEADER_BYTES] = geo.headerBytes;
  h[H_CAPACITY] = geo.capacity;
  h[H_MAX_READERS] = geo.maxReaders;
  h[H_WRITER_PID] = writerPid;
  h[H_WRITER_STATE] = WriterState.Open;
  // Magic last: a reader that sees it sees a complete header.
  Atomics.store(h, H_MAGIC, MAGIC);
}

/** Reads and checks a header; a corrupt or foreign header is a {@link ProtocolError}. */
export function readGeometry(buffer: SharedArrayBuffer): RingGeometry {
  if (buffer.byteLength < SLOTS_OFFSET + SLOT_BYTES) {
    throw new ProtocolError(`ring buffer of ${buffer.byteLength} bytes is smaller than a header`);
  }
  const h = new Int32Array(buffer, 0, SLOTS_OFFSET / I32);
  const magic = Atomics.load(h, H_MAGIC);
  if (magic !== MAGIC) throw new ProtocolError(`not a Plexus ring (magic 0x${(magic >>> 0).toString(16)})`);
  const version = h[H_VERSION];
  if (version !== VERSION) throw new ProtocolError(`unsupported ring version ${version} (this is version ${VERSION})`);
  const geo = { headerBytes: h[H_HEADER_BYTES], capacity: h[H_CAPACITY], maxReaders: h[H_MAX_READERS] };
  const expected = ringGeometry({ capacity: geo.capacity, maxReaders: geo.maxReaders });
  if (
    geo.capacity < MIN_CAPACITY ||
    geo.capacity > MAX_CAPACITY ||
    (geo.capacity & (geo.capacity - 1)) !== 0 ||
    expected.headerBytes !== geo.headerBytes ||
    buffer.byteLength < geo.headerBytes + geo.capacity
  ) {
    throw new ProtocolError(
      `corrupt ring header: capacity ${geo.capacity}, readers ${geo.maxReaders}, header ${geo.headerBytes}, buffer ${buffer.byteLength}`,
    );
  }
  return geo;
}

/** Int32 index of field `field` of reader slot `slot`. */
export function slotIndex(slot: number, field: number): number {
  return (SLOTS_OFFSET + slot * SLOT_BYTES) / I32 + field;
}

/** Bytes a payload of `length` bytes takes in the ring, header included. */
export function frameBytes(length: number): number {
  return FRAME_HEADER + ((length + FRAME_ALIGN - 1) & ~(FRAME_ALIGN - 1));
}
