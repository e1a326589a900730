/**
 * The one handshake of every Plexus connection: the client's first frame is a HELLO, the
 * server's first a WELCOME (frame.ts types 0x80 / 0x81). Both payloads open with the same
 * 16-byte preamble, then the protocol's own body:
 *
 * ```text
 * offset 0  u32 magic         the protocol ("PLXT" transport, "PLXR" request/response, "PLXQ" queue, "PLXG" control)
 *        4  u16 version       HELLO: the highest version the client speaks; WELCOME: the one chosen
 *                             (status 0), or the highest the server speaks
 *        6  u16 minVersion    the lowest version the writer speaks
 *        8  u32 capabilities  HELLO: offered; WELCOME: granted (a subset of the offer)
 *       12  u32 heartbeat     how often the writer writes when idle (ms; 0: it sends no heartbeats)
 * ```
 *
 * The WELCOME's status is the frame header's `a` word: 0..15 the connection's
 * ({@link Status}), 16 and up the protocol's. A WELCOME that refuses carries, instead of the
 * protocol body, up to 256 bytes of UTF-8 saying why (or, where the protocol says so, its body). Negotiation: the server chooses the
 * highest version both speak, and grants the capabilities it knows of those offered.
 * (Internal: not part of the public API.)
 * @module
 */
import { Buffer } from "node:buffer";
import { PlexusError, ProtocolError, ResourceExhaustedError } from "../errors.js";
import { frame, FRAME_HEADER, get32, MAX_HANDSHAKE_PAYLOAD, NetType, put32, type FrameHeader } from "./frame.js";

/** Bytes of the preamble that opens every HELLO and WELCOME payload. */
export const PREAMBLE_BYTES = 16;
/** Largest reason text a refusing WELCOME carries. */
export const MAX_REASON_BYTES = 256;

/** WELCOME status codes of the connection (the protocol's own start at 16). */
export const enum Status {
  /** Joined. */
  Ok = 0,
  /** No version both ends speak; the WELCOME names the server's range. */
  Version = 1,
  /** The HELLO was malformed (its preamble or its body). */
  Malformed = 2,
  /** The server has as many peers as it accepts. */
  Full = 3,
  /** The HELLO is of another Plexus protocol than the one this port serves. */
  WrongProtocol = 4,
}

/** What a protocol declares about its handshake. */
export interface HandshakeSpec {
  /** Name in error messages ("tcp transport", "queue", …). */
  readonly name: string;
  /** What a client calls the serving end in messages ("GraphServer", "queue server", "tcp sender", …). */
  readonly server: string;
  /** The protocol's magic: the preamble's first word. */
  readonly magic: number;
  /** Highest version this end speaks. */
  readonly version: number;
  /** Lowest version this end speaks. */
  readonly minVersion: number;
  /** Capability bits this end knows (and grants when offered). */
  readonly capabilities: number;
}

/** A decoded preamble and the protocol body after it. */
export interface Handshake {
  /** HELLO: the client's highest version; WELCOME: the chosen version (or the server's highest, refused). */
  version: number;
  /** The writer's lowest version. */
  minVersion: number;
  /** Offered (HELLO) or granted (WELCOME). */
  capabilities: number;
  /** The writer's heartbeat (ms; 0: none). */
  heartbeat: number;
  /** The protocol body (a view of the payload). */
  body: Buffer;
}

/** The four magic numbers, for telling a client that it knocked on the wrong door. */
const PROTOCOL_NAMES = new Map<number, string>([
  [0x54584c50, "the tcp transport"],
  [0x52584c50, "request/response"],
  [0x51584c50, "the queue protocol"],
  [0x47584c50, "the GraphServer control protocol"],
]);

function payload(spec: HandshakeSpec, version: number, capabilities: number, heartbeat: number, body: Uint8Array): Buffer {
  const p = Buffer.allocUnsafe(PREAMBLE_BYTES + body.length);
  put32(p, 0, spec.magic);
  p.writeUInt16LE(version, 4);
  p.writeUInt16LE(spec.minVersion, 6);
  put32(p, 8, capabilities);
  put32(p, 12, heartbeat);
  p.set(body, PREAMBLE_BYTES);
  return p;
}

/** A whole HELLO frame offering every capability this end knows. */
export function encodeHello(spec: HandshakeSpec, heartbeat: number, body: Uint8Array = Buffer.alloc(0), capabilities = spec.capabilities): Buffer {
  return frame(NetType.Hello, 0, 0, 0, payload(spec, spec.version, capabilities, heartbeat, body));
}

/** A whole WELCOME frame that accepts, with the negotiated version and capabilities. */
export function encodeWelcome(spec: HandshakeSpec, hello: Handshake, heartbeat: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  return frame(NetType.Welcome, 0, Status.Ok, 0, payload(spec, chooseVersion(spec, hello), hello.capabilities & spec.capabilities, heartbeat, body));
}

/**
 * A whole WELCOME frame that refuses with `status`: after the preamble, the reason in UTF-8
 * (at most 256 bytes), or the protocol's own body where its refusals carry one.
 */
export function encodeRefusal(spec: HandshakeSpec, status: number, reason: string | Uint8Array): Buffer {
  const body = typeof reason === "string" ? Buffer.from(reason.slice(0, MAX_REASON_BYTES), "utf8").subarray(0, MAX_REASON_BYTES) : reason;
  return frame(NetType.Welcome, 0, status, 0, payload(spec, spec.version, 0, 0, body));
}

/** The highest version both ends speak, or -1. */
function chooseVersion(spec: HandshakeSpec, hello: Handshake): number {
  const v = Math.min(spec.version, hello.version);
  return v >= Math.max(spec.minVersion, hello.minVersion) ? v : -1;
}

function decodePreamble(p: Buffer): Handshake {
  return { version: p.readUInt16LE(4), minVersion: p.readUInt16LE(6), capabilities: get32(p, 8), heartbeat: get32(p, 12), body: p.subarray(PREAMBLE_BYTES) };
}

/** The server's reading of a HELLO: accept it (then answer {@link encodeWelcome}) or refuse it. */
export type HelloVerdict = { ok: true; hello: Handshake; version: number } | { ok: false; status: number; reason: string };

/**
 * Reads a HELLO payload as `spec`'s server: the magic, the version range and the preamble's
 * sanity. The protocol checks its body itself (and refuses with {@link Status.Malformed}).
 */
export function readHello(spec: HandshakeSpec, p: Buffer): HelloVerdict {
  if (p.length < PREAMBLE_BYTES) return { ok: false, status: Status.Malformed, reason: `a HELLO of ${p.length} bytes` };
  const magic = get32(p, 0);
  if (magic !== spec.magic) {
    const other = PROTOCOL_NAMES.get(magic);
    return { ok: false, status: Status.WrongProtocol, reason: other !== undefined ? `this port serves ${spec.name}, not ${other}` : `this port serves ${spec.name}` };
  }
  const hello = decodePreamble(p);
  if (hello.minVersion > hello.version) return { ok: false, status: Status.Malformed, reason: `a HELLO for versions ${hello.minVersion}..${hello.version}` };
  const version = chooseVersion(spec, hello);
  if (version < 0) {
    return { ok: false, status: Status.Version, reason: `this ${spec.name} server speaks versions ${spec.minVersion}..${spec.version}, the client ${hello.minVersion}..${hello.version}` };
  }
  return { ok: true, hello, version };
}

/** How an HTTP server's answer begins. */
const HTTP = Buffer.from("HTTP/", "latin1");

/** The first three bytes of every Plexus protocol's magic ("PLX"; the fourth names the protocol). */
const PLX = [0x50, 0x4c, 0x58];

/**
 * Bytes of a server's first answer that {@link foreignAnswer} looks at: a WELCOME's header and
 * the start of its magic. Fewer than 4 are never judged (a protocol's older handshake, told
 * apart by its first word, gets its own message first).
 */
export const ANSWER_BYTES = FRAME_HEADER + PLX.length;

/**
 * What a client makes of the first bytes a server answered its HELLO with (`bytes`: all that
 * came so far), before they are read as a frame: undefined while they can be the start of a
 * WELCOME (or are fewer than 4); else the {@link ProtocolError} saying that `peer` (its
 * `host:port`) is not a Plexus server of `spec`'s protocol — "127.0.0.1:80 is not a Plexus
 * GraphServer (it answered HTTP)", or "(it answered 16 bytes that are not a Plexus handshake)".
 * A WELCOME is recognised by its header (payload length 16..4096, type 0x81, no flags, reserved
 * bytes and word `b` zero) and the "PLX" that opens every Plexus magic, as far as `bytes` go.
 */
export function foreignAnswer(spec: HandshakeSpec, peer: string, bytes: Uint8Array): ProtocolError | undefined {
  if (bytes.length < 4) return undefined;
  const http = Math.min(bytes.length, HTTP.length);
  if (HTTP.compare(bytes, 0, http, 0, http) === 0) {
    return http === HTTP.length ? new ProtocolError(`${peer} is not a Plexus ${spec.server} (it answered HTTP)`) : undefined;
  }
  if (canBeginWelcome(bytes)) return undefined;
  return new ProtocolError(`${peer} is not a Plexus ${spec.server} (it answered ${bytes.length} bytes that are not a Plexus handshake)`);
}

/** True if `b` (at least 4 bytes) can be the start of a WELCOME frame (see {@link foreignAnswer}). */
function canBeginWelcome(b: Uint8Array): boolean {
  const length = get32(b, 0);
  if (length < PREAMBLE_BYTES || length > MAX_HANDSHAKE_PAYLOAD) return false;
  const n = Math.min(b.length, ANSWER_BYTES);
  for (let i = 4; i < n; i++) {
    if (i === 4 ? b[i] !== NetType.Welcome : i >= FRAME_HEADER ? b[i] !== PLX[i - FRAME_HEADER] : (i < 8 || i >= 12) && b[i] !== 0) return false;
  }
  return true;
}

/**
 * Reads a WELCOME as `spec`'s client (`h` its header, `p` its payload): the magic, and for an
 * accepting WELCOME (status 0) the version chosen and the capabilities granted — anything
 * inconsistent is a {@link ProtocolError}. A refusing WELCOME is returned with its status:
 * {@link refusal} makes its error. `where` names the server in messages.
 */
export function readWelcome(spec: HandshakeSpec, h: FrameHeader, p: Buffer, where: string): Handshake & { status: number } {
  if (p.length < PREAMBLE_BYTES) throw new ProtocolError(`a WELCOME of ${p.length} bytes from ${where}`);
  const magic = get32(p, 0);
  if (magic !== spec.magic) {
    const other = PROTOCOL_NAMES.get(magic);
    throw new ProtocolError(`${where} does not speak ${spec.name}${other !== undefined ? ` (it speaks ${other})` : ""}`);
  }
  const w = decodePreamble(p);
  const status = h.a;
  if (status === Status.Ok) {
    if (w.version < spec.minVersion || w.version > spec.version) {
      throw new ProtocolError(`${where} chose ${spec.name} version ${w.version}; this end speaks ${spec.minVersion}..${spec.version}`);
    }
    if ((w.capabilities & ~spec.capabilities) !== 0) throw new ProtocolError(`${where} granted capabilities this end did not offer (0x${w.capabilities.toString(16)})`);
  }
  return { ...w, status };
}

/**
 * The typed error of a refusing WELCOME (as {@link readWelcome} returned it):
 * {@link ResourceExhaustedError} for a full server, else a {@link ProtocolError} — or what
 * `protocolStatus` makes of a status of the protocol's own (16 and up). The body is read as
 * the reason text unless `textReason` is false (a protocol whose refusals carry its own body).
 */
export function refusal(
  spec: HandshakeSpec,
  w: Handshake & { status: number },
  where: string,
  opts: { textReason?: boolean; protocolStatus?: (status: number, reason: string) => PlexusError | undefined } = {},
): PlexusError {
  const reason = opts.textReason === false ? "" : w.body.toString("utf8", 0, Math.min(w.body.length, MAX_REASON_BYTES));
  const said = reason.length > 0 ? `: ${reason}` : "";
  switch (w.status) {
    case Status.Version:
      return new ProtocolError(`${spec.name} version mismatch with ${where}: it speaks versions ${w.minVersion}..${w.version}, this end ${spec.minVersion}..${spec.version}`);
    case Status.Full:
      return new ResourceExhaustedError(`${where} has as many peers as it accepts${said}`);
    case Status.Malformed:
      return new ProtocolError(`${where} refused this end's HELLO as malformed${said}`);
    case Status.WrongProtocol:
      return new ProtocolError(`${where} does not serve ${spec.name}${said}`);
    default:
      return (w.status >= 16 ? opts.protocolStatus?.(w.status, reason) : undefined) ?? new ProtocolError(`${where} refused the handshake (status ${w.status})${said}`);
  }
}
