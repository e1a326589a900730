/**
 * The suite's end of a Plexus transport to a peer process: a ping-pong over two senders, or a
 * stream to a sink that touches every message.
 * @module
 */
import type { Frame, Receiver, Sender } from "../../src/index.js";
import type { CaseScope, Resource, ThroughputSample } from "../harness.js";
import { now, streamed } from "../measure.js";
import { Peer } from "../peer.js";
import type { AttachOptions, TransportKit } from "../transport-kit.js";

/** Releases a received frame; a null frame means the peer closed its sender. */
function release(f: Frame | null): void {
  if (f === null) throw new Error("the echo peer closed its sender");
  f.release();
}

/** Ping on our sender, pong on the peer's. */
export class PlexusEcho implements Resource {
  private constructor(
    private readonly tx: Sender,
    private readonly rx: Receiver,
    private readonly payload: Uint8Array,
  ) {}

  /** Starts the echo peer and connects both ways. */
  static async open(scope: CaseScope, kit: TransportKit, size: number, opts: AttachOptions): Promise<PlexusEcho> {
    const { sender, address, close } = await kit.sender(1 << 20, 5000);
    scope.defer(close);
    const args = [kit.name, "echo", JSON.stringify(address), String(opts.spinMicros), opts.adaptiveSpin ? "1" : "0"];
    const peer = await Peer.start(scope, "plexus-peer.js", { args });
    const rx = await kit.attach(peer.info.address, opts);
    scope.defer(() => rx.close());
    return new PlexusEcho(sender, rx, new Uint8Array(size).fill(0xa5));
  }

  /** One round trip (no async function on the fast path: one promise hop less). */
  roundTrip(): Promise<void> {
    const sent = this.tx.trySend(this.payload) ? undefined : this.tx.send(this.payload);
    if (sent) return sent.then(() => this.receive());
    return this.receive();
  }

  private receive(): Promise<void> {
    return this.rx.receive({ timeout: 10_000 }).then(release);
  }

  close(): void {}
}

/** A stream to a sink peer. */
export class PlexusStream implements Resource {
  private sent = 0;

  private constructor(
    private readonly tx: Sender,
    private readonly peer: Peer,
    private readonly payload: Uint8Array,
  ) {}

  /** Starts the sink with a ring (or window) of max(8 MiB, 4 messages). */
  static async open(scope: CaseScope, kit: TransportKit, size: number): Promise<PlexusStream> {
    const { sender, address, close } = await kit.sender(Math.max(8 << 20, 4 * (size + 64)), 30_000);
    scope.defer(close);
    const peer = await Peer.start(scope, "plexus-peer.js", { args: [kit.name, "sink", JSON.stringify(address), "0", "1"] });
    return new PlexusStream(sender, peer, new Uint8Array(size).fill(0xa5));
  }

  /** Sends `count` messages back to back and waits until the sink touched them all. */
  async stream(count: number): Promise<ThroughputSample> {
    this.sent += count;
    const done = this.peer.call("waitFor", this.sent, 120_000);
    const t0 = now();
    const tx = this.tx;
    const payload = this.payload;
    for (let i = 0; i < count; i++) if (!tx.trySend(payload)) await tx.send(payload);
    await done;
    return streamed(count, payload.length, t0);
  }

  close(): void {}
}
