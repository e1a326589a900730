/**
 * Layout of a protocol 2 buffer, the in-place duplex (docs/zerobuffer.md, "Protocol 2"): a
 * 256-byte header whose first 0x60 bytes are shaped like the v1 OIEB (so a v1 peer reads
 * `oieb_size = 256`, `version = 2.0.0` and refuses), a request operation block written by the
 * client, a response operation block written by the server, the metadata block, and one payload
 * ring shared by requests and responses. Frames are 64-byte aligned with a 32-byte header.
 * (Internal: not part of the public API.)
 * @module
 */
import { align64, OIEB_V2_SIZE } from "./oieb.js";
import type { SemKind } from "./names.js";

/** Size of a protocol 2 frame header. */
export const FRAME_HEADER_V2 = 32;
/** Frames start at multiples of this (so the ring never has a tail too short for a marker). */
export const FRAME_ALIGN_V2 = 64;
/** Offset of the metadata block. */
export const METADATA_OFFSET_V2 = OIEB_V2_SIZE;

/** Byte offsets inside a frame header. */
export const F2 = {
  /** u64 request length n (> 0); 0 marks a wrap. Written by the client. */
  length: 0,
  /** u64 the client's sequence number (from 1), preserved in the response. */
  sequence: 8,
  /** u64 response length (<= n), written by the server. */
  responseLength: 16,
  /** u32 status, written by the server: {@link STATUS_OK} or {@link STATUS_FAILED}. */
  status: 24,
} as const;

/** Status of a frame whose request is not answered yet. */
export const STATUS_PENDING = 0;
/** The response is the first `response_length` bytes of the data. */
export const STATUS_OK = 1;
/** The handler failed; the data holds its UTF-8 message (`response_length` bytes). */
export const STATUS_FAILED = 2;

/**
 * The four semaphores, in creation order: `w` request ready (client posts per request, server
 * waits; also the connect doorbell), `r` space available (posted per released response; the
 * client's request writer waits on it), `p` response ready (server posts per response, client
 * waits), `c` response consumed (client posts per released response; the server counts them).
 */
export const SEMS_V2: readonly SemKind[] = ["w", "r", "p", "c"];

/** Bytes a frame of `n` data bytes occupies. */
export function frameTotalV2(n: number): number {
  return align64(FRAME_HEADER_V2 + n);
}
