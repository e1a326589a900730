/**
 * The Plexus transports the suite drives through the public Sender/Receiver API, as one shape:
 * how to make a sender and how to attach a receiver. Used by the suite (bench/links/plexus-link.ts)
 * and by its peer process (bench/procs/plexus-peer.ts).
 * @module
 */
import { connectShm, connectTcp, ShmSender, TcpSender, type Receiver, type Sender, type ShmAddress, type TcpAddress } from "../src/index.js";

/** Receiver options the cases vary. */
export interface AttachOptions {
  /** Busy-poll before sleeping (µs). */
  spinMicros: number;
  /** Adaptive polling before sleeping. */
  adaptiveSpin: boolean;
}

/** A transport, as the suite uses it. */
export interface TransportKit {
  /** Transport name, also the peer's first argument. */
  readonly name: "shm" | "tcp";
  /** A sender with a `capacity`-byte ring or window; `address` is plain data for the peer. */
  sender(capacity: number, timeout: number): Promise<{ sender: Sender; address: unknown; close(): Promise<void> | void }>;
  /** Attaches a receiver to `address`. */
  attach(address: unknown, opts: AttachOptions): Promise<Receiver>;
}

const shm: TransportKit = {
  name: "shm",
  async sender(capacity, timeout) {
    const s = ShmSender.create({ capacity, timeout });
    return { sender: s, address: s.address, close: () => s.close() };
  },
  attach: (address, opts) => connectShm(address as ShmAddress, opts),
};

const tcp: TransportKit = {
  name: "tcp",
  async sender(capacity, timeout) {
    const s = await TcpSender.create({ capacity, timeout });
    return { sender: s, address: s.address, close: () => s.destroy() };
  },
  attach: (address) => connectTcp(address as TcpAddress),
};

/** The kits by name. */
export const KITS = { shm, tcp } as const;
