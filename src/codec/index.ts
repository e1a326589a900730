/**
 * The codec: value <-> frame. A frame is a fixed header, a MessagePack body and out-of-band
 * buffers, so typed arrays, `Buffer`s and `DataView`s arrive as views over the frame's memory
 * (no copy). The format is specified in docs/codec.md.
 * (Internal: not part of the public API.)
 * @module
 */
export { copyBytes, encode, encodeChunks, encodedSize, encodeInto, rawFrameLength, writeRawFrame, writeRawFrameHeader, type FramePlan } from "./encoder.js";
export { decode, decodeAt, isFlatValueFrame, rawFrameFlags } from "./decoder.js";
export { CHECK_BUDGET, checkEncodable } from "./extract.js";
export { FLAG_RAW_BUFFER } from "./format.js";
export { BufferType, FRAME_MAGIC, FRAME_VERSION, FrameKind, HEADER_BYTES as FRAME_HEADER_BYTES, MAX_DEPTH } from "./format.js";
