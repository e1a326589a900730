/**
 * fan row baseline: one Node process writes every 1 MiB message to 1, 2 or 4 TCP loopback
 * sockets, each read (and touched) by its own process.
 * @module
 */
import { registerCase, type ThroughputSample } from "../harness.js";
import { NetLink } from "../links/net-link.js";

const MiB = 1 << 20;

for (const readers of [1, 2, 4]) {
  registerCase({
    row: "fan",
    name: "tcp fan-out",
    variant: `${readers} sub${readers > 1 ? "s" : ""}`,
    kind: "throughput",
    messageBytes: MiB,
    quick: readers === 2,
    method: "the same Buffer written to every socket (no framing), TCP_NODELAY, loopback",
    async run(ctx) {
      const links = await ctx.keep("links", async (scope) => {
        const all: NetLink[] = [];
        for (let i = 0; i < readers; i++) all.push(await NetLink.open(scope, "tcp", "sink", MiB));
        return { all, close: () => {} };
      });
      const samples: ThroughputSample[] = await Promise.all(links.all.map((l) => l.stream(ctx.count)));
      const seconds = Math.max(...samples.map((s) => s.seconds));
      return { kind: "throughput", messages: ctx.count * readers, bytes: ctx.count * readers * MiB, seconds };
    },
  });
}
