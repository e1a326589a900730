/**
 * How a writer (or an in-place client) connects to a buffer someone else owns
 * (docs/zerobuffer-protocol.md §3, "Connecting a writer"): poll until the shm exists, its
 * header is complete (`oieb_size != 0`, `reader_pid != 0`), the reader is alive and every
 * semaphore file exists; refuse another protocol version; claim `writer_pid` with a
 * compare-and-swap; open the semaphores.
 * (Internal: not part of the public API.)
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { ProtocolError, SystemError, TimeoutError } from "../errors.js";
import { native, type Semaphore } from "../native.js";
import { Deadline, throwIfAborted } from "../util/blocking.js";
import { ProtocolVersionError, ReaderDeadError, WriterAlreadyConnectedError } from "./errors.js";
import { semFile, semName, shmFile, shmName, type SemKind } from "./names.js";
import { Header, OIEB_V1_SIZE, OIEB_V2_SIZE, Q } from "./oieb.js";
import { alive, sleep } from "./waits.js";

/** What to connect to. */
export interface ConnectSpec {
  /** Buffer name (checked by the caller). */
  name: string;
  /** Protocol major version the caller speaks (1 or 2). */
  major: 1 | 2;
  /** Semaphores that must exist and are opened, in order. */
  sems: readonly SemKind[];
  /** What the caller is, for messages ("Writer", "InPlaceClient"). */
  role: string;
}

/** A connected buffer. */
export interface Connected {
  /** The mapping. */
  buffer: SharedArrayBuffer;
  /** Its header. */
  header: Header;
  /** `metadata_size` from the header. */
  metadataSize: number;
  /** `payload_size` from the header. */
  payloadSize: number;
  /** Open semaphores by kind. */
  sems: Map<SemKind, Semaphore>;
}

const PROTOCOL_HINT: Record<number, string> = {
  1: "a protocol 1 buffer (plain ZeroBuffer ring, DuplexServer); connect with Writer or DuplexClient",
  2: "a protocol 2 buffer (Plexus in-place duplex); connect with InPlaceClient",
};

/**
 * Refuses a complete header of another protocol: the header size tells protocol 1 (128) from
 * protocol 2 (256); then the major version must match too (C++ and C# writers check it).
 */
function checkVersion(view: DataView, spec: ConnectSpec): void {
  const oiebSize = view.getUint32(0, true);
  const major = view.getUint8(4);
  if (oiebSize !== OIEB_V1_SIZE && oiebSize !== OIEB_V2_SIZE) {
    throw new ProtocolError(`buffer "${spec.name}" has an invalid OIEB: oieb_size ${oiebSize}, expected ${spec.major === 1 ? OIEB_V1_SIZE : OIEB_V2_SIZE}`);
  }
  const found = oiebSize === OIEB_V2_SIZE ? 2 : 1;
  if (found !== spec.major) {
    throw new ProtocolVersionError(spec.major, found, `buffer "${spec.name}" is ${PROTOCOL_HINT[found]}; ${spec.role} speaks protocol ${spec.major}`);
  }
  if (major !== spec.major) {
    throw new ProtocolVersionError(spec.major, major, `buffer "${spec.name}" has version ${major}.x in its header; ${spec.role} speaks protocol ${spec.major}`);
  }
}

/**
 * Waits until the buffer is ready (see the module text), bounded by `timeoutMs` and `signal`.
 * Throws ProtocolVersionError / ProtocolError at once for another protocol or a broken header,
 * ReaderDeadError at the deadline if the buffer's reader is dead, else TimeoutError.
 */
export async function waitReady(spec: ConnectSpec, timeoutMs: number, signal: AbortSignal | undefined): Promise<SharedArrayBuffer> {
  const deadline = new Deadline(timeoutMs);
  let buffer: SharedArrayBuffer | undefined;
  let ino = -1;
  let backoff = 1;
  for (;;) {
    throwIfAborted(signal, `${spec.role}.connect`);
    let reason = `buffer "${spec.name}" does not exist`;
    let deadReader = false;
    const st = statSync(shmFile(spec.name), { throwIfNoEntry: false });
    if (st === undefined) buffer = undefined;
    else {
      if (buffer === undefined || st.ino !== ino) {
        try {
          buffer = native().segmentOpen(shmName(spec.name));
          ino = st.ino;
        } catch (err) {
          if (!(err instanceof SystemError) || err.errnoName !== "ENOENT") throw err;
          buffer = undefined;
        }
      }
      if (buffer !== undefined && buffer.byteLength >= OIEB_V1_SIZE) {
        const view = new DataView(buffer);
        const oiebSize = view.getUint32(0, true);
        const readerPid = view.getUint32(0x5c, true) * 4294967296 + view.getUint32(0x58, true);
        if (oiebSize === 0 || readerPid === 0) reason = `buffer "${spec.name}" is being created or has no reader`;
        else {
          checkVersion(view, spec);
          if (!alive(readerPid)) {
            reason = `the reader of buffer "${spec.name}" (pid ${readerPid}) is dead`;
            deadReader = true;
          } else if (!spec.sems.every((k) => existsSync(semFile(k, spec.name)))) {
            reason = `the semaphores of buffer "${spec.name}" do not exist yet`;
          } else return buffer;
        }
      } else if (buffer !== undefined) reason = `buffer "${spec.name}" is being created`;
    }
    const left = deadline.remaining();
    if (left <= 0) {
      if (deadReader) throw new ReaderDeadError(`${spec.role}: ${reason}`);
      throw new TimeoutError(`${spec.role}: no ready buffer within ${timeoutMs} ms: ${reason}`);
    }
    await sleep(Math.min(backoff, left), signal);
    backoff = Math.min(backoff * 2, 25);
  }
}

/**
 * Connects as the writing side: waits for readiness, checks the layout, claims `writer_pid`
 * (refusing a live writer, accepting the replacement of a dead one), opens the semaphores.
 */
export async function connectWriter(spec: ConnectSpec, timeoutMs: number, signal: AbortSignal | undefined): Promise<Connected> {
  const buffer = await waitReady(spec, timeoutMs, signal);
  const oiebSize = spec.major === 1 ? OIEB_V1_SIZE : OIEB_V2_SIZE;
  if (buffer.byteLength < oiebSize) throw new ProtocolError(`buffer "${spec.name}" is smaller than its header`);
  const header = new Header(buffer, oiebSize);
  const metadataSize = header.load(Q.metadataSize);
  const payloadSize = header.load(Q.payloadSize);
  if (!(payloadSize > 0) || !(metadataSize >= 0) || oiebSize + metadataSize + payloadSize > buffer.byteLength) {
    throw new ProtocolError(
      `buffer "${spec.name}" has an impossible layout: metadata_size ${metadataSize}, payload_size ${payloadSize}, ${buffer.byteLength} bytes mapped`,
    );
  }
  for (;;) {
    const current = header.load(Q.writerPid);
    if (current !== 0 && alive(current)) {
      throw new WriterAlreadyConnectedError(`buffer "${spec.name}" already has a live writer (pid ${current})`);
    }
    if (header.cas(Q.writerPid, current, process.pid)) break;
  }
  const sems = new Map<SemKind, Semaphore>();
  try {
    for (const kind of spec.sems) sems.set(kind, native().semOpen(semName(kind, spec.name), false, 0, 0));
  } catch (err) {
    for (const sem of sems.values()) sem.close();
    header.cas(Q.writerPid, process.pid, 0);
    throw err;
  }
  return { buffer, header, metadataSize, payloadSize, sems };
}
