/**
 * The public types of `plexus/bridge` that describe options and counters (kept apart from the
 * modules that use the NATS client's own types, so that the package's declarations need that
 * package only where it is used).
 * @module
 */

/** Where and how to connect to NATS (docs/scale-out.md, *Security*). */
export interface NatsOptions {
  /** One or more server URLs of the same cluster: `nats://host:4222`, `tls://host:4222`. */
  servers: string | readonly string[];
  /** TLS: the CA that signed the servers' certificates, and a client certificate and key for servers that ask for one (PEM text). A `tls://` server URL turns TLS on with the system's CAs. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** User and password. */
  user?: string;
  /** Password of `user`. */
  pass?: string;
  /** An authentication token. */
  token?: string;
  /** An nkey seed (`SU…`): the bridge signs the server's challenge with it. */
  nkeySeed?: string;
  /** The connection's name, as the server's monitoring shows it. */
  name?: string;
}

/** The counters of pub/sub through the bridge. */
export interface TopicCounters {
  /** Messages sent to NATS. */
  sent: number;
  /** Bytes sent to NATS (envelopes included). */
  sentBytes: number;
  /** NATS messages those took (more than `sent` when messages were cut into chunks). */
  sentChunks: number;
  /** Messages received from NATS and published here. */
  received: number;
  /** Bytes received from NATS. */
  receivedBytes: number;
  /** Messages that other graphs' publishers sent and that never arrived here (sequence gaps). */
  gaps: number;
  /** Messages received twice (the second copy is dropped). */
  duplicates: number;
  /** Messages this graph sent itself, received back and dropped. */
  looped: number;
  /** Received messages that were not Plexus messages, were malformed, or could not be reassembled: dropped. */
  malformed: number;
  /** Messages dropped here: by the bridge's subscribers (`drop-oldest`), or not published in time. */
  dropped: number;
  /** Messages another bridge of this graph published (this one followed their sequence, on standby). */
  standby: number;
}

/** The counters of requests through the bridge. */
export interface ServiceCounters {
  /** Requests from other hosts answered here. */
  answered: number;
  /** Of those, answered with an error. */
  failed: number;
  /** Requests of this graph's clients forwarded to other hosts. */
  forwarded: number;
  /** Of those, that failed (no responder, timeout, the remote handler's error). */
  forwardFailed: number;
  /** Requests received that were malformed: answered with a `ProtocolError` when they had a reply subject. */
  malformed: number;
}
