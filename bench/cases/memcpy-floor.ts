/**
 * thr floor (an upper bound): native memcpy of each message into consecutive slots of a
 * shared-memory segment, one process, no reader.
 * @module
 */
import { randomBytes } from "node:crypto";
import { native } from "../../src/native.js";
import { registerCase, type Resource } from "../harness.js";
import { now, streamed } from "../measure.js";
import { THR_SIZES } from "../sizes.js";

/** Name of the thr row's floor. */
export const MEMCPY_FLOOR = "memcpy floor";

const MiB = 1024 * 1024;

/** A mapped (already unlinked) segment and the message copied into it. */
export interface Target extends Resource {
  /** The shared-memory segment copied into. */
  segment: SharedArrayBuffer;
  /** The message (`messageBytes` of 0xa5). */
  source: Uint8Array;
}

/** A segment of max(8 MiB, 2 x `messageBytes`) to copy a message into (also used by the paced row's floor). */
export function openTarget(messageBytes: number): Target {
  const addon = native();
  const size = Math.max(8 * MiB, 2 * messageBytes);
  const name = `/plexus-bench-${process.pid}-${randomBytes(6).toString("hex")}`;
  const segment = addon.segmentCreate(name, size, 0o600);
  addon.segmentUnlink(name);
  return { segment, source: new Uint8Array(messageBytes).fill(0xa5), close: () => addon.segmentRetire(segment) };
}

for (const size of THR_SIZES) {
  registerCase({
    row: "thr",
    name: MEMCPY_FLOOR,
    variant: size.label,
    kind: "throughput",
    messageBytes: size.bytes,
    quick: size.quick,
    method: "native().copy into shm, one process, no reader",
    async run(ctx) {
      const { segment, source } = await ctx.keep("segment", () => Promise.resolve(openTarget(size.bytes)));
      const copy = native().copy;
      const end = segment.byteLength - size.bytes;
      let offset = 0;
      const t0 = now();
      for (let i = 0; i < ctx.count; i++) {
        copy(segment, offset, source);
        offset += size.bytes;
        if (offset > end) offset = 0;
      }
      return streamed(ctx.count, size.bytes, t0);
    },
  });
}
