/**
 * lat floor: raw eventfd ping-pong between two processes from Node, through the addon. Two
 * eventfds are inherited by the child at spawn; each side waits with a `uv_poll` Watcher, drains
 * and signals the other. No payload: it measures the cost of a cross-process wake-up.
 * @module
 */
import { native } from "../../src/native.js";
import { registerCase, type CaseScope, type Resource } from "../harness.js";
import { ReplySlot, roundTrips } from "../measure.js";
import { Peer } from "../peer.js";
import { LAT_SIZES } from "../sizes.js";

/** Name of the lat row's floor; peers and Plexus cases compute their ratios against it. */
export const EVENTFD_FLOOR = "eventfd floor";

/** Bit of a Watcher callback for hang-up or error (`PollEvent.Disconnect`). */
const DISCONNECT = 2;

/** Two eventfds shared with an echo process (also the wake-up part of the paced row's floor). */
export class EventfdLink implements Resource {
  private constructor(
    private readonly ping: number,
    private readonly slot: ReplySlot,
    private readonly peer: Peer,
  ) {}

  /**
   * Creates the eventfds and starts the echo process (closed with `scope`).
   * @param stamp - the echo process does not answer but notes the time of each of its wake-ups ({@link wakes})
   */
  static async open(scope: CaseScope, stamp = false): Promise<EventfdLink> {
    const addon = native();
    const ping = addon.eventfdCreate();
    scope.defer(() => addon.close(ping));
    const pong = addon.eventfdCreate();
    scope.defer(() => addon.close(pong));
    const slot = new ReplySlot(scope.signal);
    const watcher = new addon.Watcher(pong, (events) => {
      if (events & DISCONNECT) {
        slot.fail(new Error("eventfd watcher reported an error"));
        return;
      }
      addon.eventfdDrain(pong);
      slot.settle();
    });
    scope.defer(() => watcher.close());
    // The child gets the eventfds as fds 4 and 5 (stdio slots after stdin, stdout, stderr, ipc).
    const peer = await Peer.start(scope, "eventfd-echo.js", { fds: [ping, pong], args: ["4", "5", ...(stamp ? ["stamp"] : [])] });
    return new EventfdLink(ping, slot, peer);
  }

  /** Wakes the echo process; resolves when it woke this one back. */
  roundTrip(): Promise<void> {
    const reply = this.slot.wait();
    native().eventfdSignal(this.ping);
    return reply;
  }

  /** Wakes the echo process without waiting for it (with `stamp`, where it does not answer). */
  signal(): void {
    native().eventfdSignal(this.ping);
  }

  /** With `stamp`: when the echo process woke up (CLOCK_MONOTONIC ns) since the last call. */
  wakes(): Promise<Float64Array> {
    return this.peer.call<Float64Array>("wakes");
  }

  close(): void {}
}

for (const size of LAT_SIZES) {
  registerCase({
    row: "lat",
    name: EVENTFD_FLOOR,
    variant: size.label,
    kind: "latency",
    quick: size.quick,
    method: "eventfd signal -> uv_poll wake in the peer -> eventfd signal back; payload not carried (same floor for every size)",
    async run(ctx) {
      const link = await ctx.keep("link", (scope) => EventfdLink.open(scope));
      return roundTrips(ctx, () => link.roundTrip());
    },
  });
}
