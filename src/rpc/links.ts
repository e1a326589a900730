/**
 * A client's links to the servers of its service, of two kinds: a **local** link calls a server
 * of the client's own thread (the value itself, no bytes), a **channel** link talks to a server
 * over shm or tcp (a {@link Channel}). Both kinds have the one {@link Link} shape (made only by
 * {@link newLink}), so the client's request path sees a single object shape.
 * (Internal: not part of the public API.)
 * @module
 */
import { decode } from "../codec/index.js";
import { errorFromWire, ProtocolError, RemoteError, SystemError } from "../errors.js";
import { hostName, self } from "../graph/identity.js";
import type { ServerInfo } from "../graph/registry.js";
import type { GraphRef } from "../graph/ref.js";
import type { Channel } from "./channel.js";
import type { InPlaceResponse } from "./client.js";
import { openShm, openTcp, type OpenOptions } from "./handshake.js";
import type { Server } from "./server.js";
import { decodeOwned, FLAG_RAW, get32, isPassThrough, RPC_HEADER, RpcType, type Body } from "./wire.js";

/** How the answer of a pending request is delivered. */
export const enum Mode {
  /** A decoded value (copied out of the ring if it holds buffers). */
  Value,
  /** In-place service, `request()`: the bytes, copied out. */
  Copy,
  /** In-place service, `requestInPlace()`: a view of the shared memory. */
  InPlace,
}

/** One server a client is linked to. */
export interface Link {
  readonly server: ServerInfo;
  /** Requests sent here and not answered. */
  inFlight: number;
  /** shm or tcp channel; undefined for a server of this thread. */
  readonly channel: Channel | undefined;
  /** The server itself, when it lives in this thread. */
  readonly local: Server | undefined;
  /** Removed from the graph: no new requests; closed once its requests are answered. */
  draining: boolean;
}

/** Server `s` as messages name it: its service, its process and host ("the server of "echo" (pid 4121 on box)"). */
export function serverName(s: ServerInfo): string {
  return `the server of ${JSON.stringify(s.service)} (pid ${s.endpoints.pid} on ${hostName(s.endpoints.host)})`;
}

/** Finds servers of this thread by id (for inproc requests). */
export type ServerLookup = (id: string) => Server | undefined;

/** A link of either kind (one object shape for both). */
function newLink(server: ServerInfo, channel: Channel | undefined, local: Server | undefined): Link {
  return { server, inFlight: 0, channel, local, draining: false };
}

/**
 * Opens the fastest link to `s` that both ends allow (`forced`: only that transport): a local
 * link to a server of this thread, else a channel over shm on this host, else over tcp;
 * undefined if none fits. A channel link's handlers are not set yet.
 */
export async function openLink(s: ServerInfo, forced: "inproc" | "shm" | "tcp" | undefined, lookup: ServerLookup, open: OpenOptions): Promise<Link | undefined> {
  const me = self();
  const sameThread = s.endpoints.host === me.host && s.endpoints.pid === me.pid && s.endpoints.threadId === me.threadId;
  if (sameThread && (forced === undefined || forced === "inproc")) {
    const server = lookup(s.id);
    if (server) return newLink(s, undefined, server);
  }
  let channel: Channel | undefined;
  const tcp = s.endpoints.tcp !== undefined && (forced === undefined || forced === "tcp");
  if (s.endpoints.host === me.host && s.endpoints.shm && (forced === undefined || forced === "shm")) {
    try {
      channel = await openShm(s.endpoints.shm.socket, open);
    } catch (err) {
      // No shared memory to be had (a full /dev/shm here or at the server, no segments left):
      // fall back to TCP as pub/sub does, unless shm was asked for.
      if (!(err instanceof SystemError) || !tcp || forced === "shm") throw err;
      process.emitWarning(`plexus: no shared memory for a request/response link to ${JSON.stringify(s.service)} (${err.message}); it falls back to TCP`, { code: "PLEXUS_NO_SHM" });
    }
  }
  if (channel === undefined && tcp) channel = await openTcp(s.endpoints.tcp!, open);
  return channel === undefined ? undefined : newLink(s, channel, undefined);
}

/** Tells the GraphServer about a new channel's segment: it unlinks the ring if this process dies before closing it. */
export async function remember(graph: GraphRef, ch: Channel): Promise<void> {
  const segment = ch.segment;
  if (segment !== undefined) await graph.client.request("segment.add", { name: segment }).catch(() => {});
}

/** Tells the GraphServer a closed channel's segment is gone (bookkeeping only). */
export function forget(graph: GraphRef, ch: Channel): void {
  const segment = ch.segment;
  if (segment !== undefined) void graph.client.request("segment.remove", { name: segment }).catch(() => {});
}

/** A request written in place by the caller's `fill`. */
export class Filler {
  constructor(
    readonly size: number,
    readonly fill: (bytes: Uint8Array) => void,
  ) {}

  /** The body: runs `fill` on the ring's bytes; a throw goes to `onError` (the bytes go anyway, unanswered). */
  body(onError: (err: Error) => void): Body {
    return {
      size: this.size,
      flags: FLAG_RAW,
      writeTo: (target, at) => {
        try {
          this.fill(target.subarray(at, at + this.size));
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)));
        }
      },
    };
  }
}

/** Ends request `id` with `error` or `value` (the client's). */
export type Settle = (id: number, error: Error | undefined, value?: unknown) => void;

/**
 * A local link's request: calls the server of this thread with the value itself (a `Filler`'s
 * bytes are filled first) and settles request `id` with the answer in `mode`, or the error.
 */
export function askLocal(server: Server, id: number, value: unknown, mode: Mode, settle: Settle): void {
  if (value instanceof Filler) {
    const bytes = new Uint8Array(value.size);
    try {
      value.fill(bytes);
    } catch (err) {
      settle(id, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    value = bytes;
  }
  server.call(value).then(
    (v) => settle(id, undefined, mode === Mode.InPlace ? new InPlaceAnswer(v as Uint8Array) : mode === Mode.Copy ? (v as Uint8Array).slice() : v),
    (err: unknown) => settle(id, toRemote(err)),
  );
}

/** What {@link answerOf} reads and updates of a pending request. */
export interface Asked {
  /** How its answer is delivered. */
  readonly mode: Mode;
  /** In-place over shm: where the request body was written, for the channel's `ownView` (-1: not there). */
  readonly at: number;
  /** In-place: the request body's size (the answer lies within it). */
  readonly size: number;
  /** In-place over shm: the channel's pin on that memory (-1: none); an in-place answer takes it. */
  pin: number;
}

/**
 * A channel link's answer of type `type` (a checked header, not a request) to `p`, in
 * `bytes[at .. end)`: a {@link RemoteError} for an error answer, else the value to resolve with.
 * Throws what makes the answer malformed. An in-place answer takes `p`'s pin along (it is then
 * -1), so ending `p` leaves that memory pinned until the answer is released.
 */
export function answerOf(type: RpcType, p: Asked, ch: Channel, bytes: Uint8Array, at: number, end: number): unknown {
  if (type === RpcType.Error) {
    const e = decode(bytes.subarray(at + RPC_HEADER, end)) as { code?: unknown; name?: unknown; message?: unknown; passThrough?: unknown; remoteCode?: unknown; remoteName?: unknown } | null;
    if (e?.passThrough === true) {
      // A failure of the request itself (or a remote handler's, relayed): as the client's own.
      if (e.code === RemoteError.code && typeof e.message === "string") {
        return new RemoteError(e.message, typeof e.remoteCode === "string" ? e.remoteCode : undefined, typeof e.remoteName === "string" ? e.remoteName : undefined);
      }
      return errorFromWire(e.code, e.message);
    }
    return new RemoteError(
      typeof e?.message === "string" ? e.message : "the remote handler failed",
      typeof e?.code === "string" ? e.code : undefined,
      typeof e?.name === "string" ? e.name : undefined,
    );
  }
  const raw = (bytes[at + 5] & FLAG_RAW) !== 0;
  if (type === RpcType.Response) {
    if (p.mode === Mode.Value) {
      if (raw) throw new ProtocolError("raw answer to an encoded request");
      return decodeOwned(bytes, at + RPC_HEADER, end);
    }
    if (!raw) throw new ProtocolError("encoded answer to an in-place request");
    const copy = bytes.slice(at + RPC_HEADER, end);
    return p.mode === Mode.Copy ? copy : new InPlaceAnswer(copy);
  }
  const aux = get32(bytes, at + 12);
  const length = end - at === RPC_HEADER + 4 ? get32(bytes, at + RPC_HEADER) : -1;
  const out = p.at < 0 || length < 0 || aux + length > p.size ? undefined : ch.ownView(p.at + aux, length);
  if (out === undefined) throw new ProtocolError("in-place answer outside the request");
  if (p.mode === Mode.Copy) return out.slice();
  const pin = p.pin;
  p.pin = -1;
  return new InPlaceAnswer(out, ch, pin);
}

/** An in-place answer; `release` (which works detached too) unpins its memory in `ch`'s request ring. */
class InPlaceAnswer implements InPlaceResponse {
  readonly release: () => void;
  constructor(
    readonly bytes: Uint8Array,
    ch?: Channel,
    pin = -1,
  ) {
    let released = false;
    this.release = () => {
      if (released) return;
      released = true;
      ch?.unpin(pin);
    };
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

/** A handler error of a server in this thread, as a client sees it. */
function toRemote(err: unknown): Error {
  if (isPassThrough(err)) return err as Error;
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  return new RemoteError(
    typeof e?.message === "string" ? e.message : String(err),
    typeof e?.code === "string" ? e.code : undefined,
    typeof e?.name === "string" ? e.name : undefined,
    { cause: err },
  );
}
