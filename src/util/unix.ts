/**
 * Reading the small control messages Plexus exchanges over non-blocking Unix sockets (joins,
 * hints), with their passed descriptors.
 * (Internal: not part of the public API.)
 * @module
 */
import { native, PollEvent, type Received } from "../native.js";

/**
 * One `recvmsg` of at most `maxBytes` on a watched socket after a poll event: the message, null
 * when nothing is pending and the peer is still there, or — on a failed read or a hang-up — an
 * end-of-stream (`data.length === 0`). The caller owns the descriptors received.
 */
export function receiveMessage(fd: number, maxBytes: number, events: number): Received | null {
  let msg: Received | null;
  try {
    msg = native().recvFds(fd, maxBytes);
  } catch {
    msg = { data: new Uint8Array(0), fds: [] };
  }
  if (msg === null && events & PollEvent.Disconnect) return { data: new Uint8Array(0), fds: [] };
  return msg;
}
