/** A writer process killed mid-stream, over any transport: the reader never sees a torn message. */
import assert from "node:assert/strict";
import type { Receiver } from "../../src/index.js";
import { checkMessage } from "../conformance/suite.js";
import { fixture } from "./child.js";

/**
 * Four rounds: a `stream-writer` fixture over `transport` writes messages of varied sizes and is
 * SIGKILLed after 20..65 ms; every message received before the `PeerDeadError` is whole and in
 * sequence. `connect` attaches a receiver to the address the writer prints.
 */
export async function killedWriterNeverTears<A>(transport: "shm" | "tcp", connect: (address: A) => Promise<Receiver>): Promise<void> {
  for (let round = 0; round < 4; round++) {
    const sizes = [65536 - 1000, 3, 20000, 50000];
    const writer = fixture("stream-writer", { transport, readers: 1, count: 0, sizes, capacity: 1 << 18, hang: true });
    const rx = await connect(JSON.parse(await writer.line()) as A);
    setTimeout(() => writer.proc.kill("SIGKILL"), 20 + round * 15);
    let seq = 0;
    await assert.rejects(
      (async () => {
        for (;;) {
          const g = await rx.receive({ timeout: 10000 });
          assert.ok(g);
          seq++;
          assert.equal(g.sequence, seq);
          checkMessage(g.bytes, seq, sizes[(seq - 1) % sizes.length]);
          g.release();
        }
      })(),
      { code: "ERR_PLEXUS_PEER_DEAD" },
    );
    await rx.close();
    await writer.exited;
  }
}
