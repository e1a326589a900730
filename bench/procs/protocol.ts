/**
 * Messages on the IPC channel between the suite and its peer processes.
 * @module
 */

/** A request from the suite. `op: "exit"` (id 0) asks the peer to clean up and exit. */
export interface ParentMessage {
  /** Request id, echoed in the answer; 0 for "exit". */
  id: number;
  /** Operation name, peer specific. */
  op: string;
  /** Operation arguments. */
  args: unknown;
}

/** Sent once when the peer is ready to be used. */
export interface ReadyMessage {
  /** Discriminant. */
  type: "ready";
  /** What the suite needs to connect (a path, a port). */
  info: Record<string, unknown>;
}

/** The answer to a {@link ParentMessage}. */
export type ReplyMessage =
  | { type: "reply"; id: number; ok: true; result: unknown }
  | { type: "reply"; id: number; ok: false; error: string };

/** Anything a peer sends. */
export type ChildMessage = ReadyMessage | ReplyMessage;
