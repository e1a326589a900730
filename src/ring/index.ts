/**
 * The ring protocol over any SharedArrayBuffer.
 * (Internal: not part of the public API.)
 * @module
 */
import { initRing, ringGeometry, type RingOptions } from "./layout.js";

export { RingWriter, type Loan, type RingWriterOptions } from "./writer.js";
export { RingReader, type RingReaderOptions } from "./reader.js";
export { RingView } from "./view.js";
export { AtomicsBell, AtomicsDoorbell, EventfdBell, EventfdDoorbell, type Bell, type Doorbell } from "./bell.js";
export { ringGeometry, initRing, readGeometry, maxPayload, WakeKind, H_WRITER_WAKE, type Policy, type RingOptions } from "./layout.js";

/** Allocates and initialises a ring in a plain SharedArrayBuffer (for threads of one process). */
export function createHeapRing(opts: RingOptions = {}): SharedArrayBuffer {
  const geo = ringGeometry(opts);
  const buffer = new SharedArrayBuffer(geo.byteLength);
  initRing(buffer, geo, 0);
  return buffer;
}
