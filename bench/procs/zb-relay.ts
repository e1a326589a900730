/**
 * Peer of the zb row. Usage: `zb-relay.js <relay|duplex|inplace> <name> <payload-bytes> [spin-micros] [anticipate]`.
 * - `relay`: the reference's relay process (bench/README.md, "The `zb` row"): owns buffer
 *   `<name>-a` as its reader, writes into `<name>-b` (owned by the suite) with `frameBuffer` +
 *   native copy + `commit`, then releases the input frame.
 * - `duplex`: a v1 `DuplexServer` on channel `<name>` whose handler copies the request into a
 *   response `frameBuffer` (the same work as the relay, through the duplex API).
 * - `inplace`: a protocol 2 `InPlaceServer` on channel `<name>` whose handler stamps the frame
 *   header in place (no copy).
 * Every buffer has 0 bytes of metadata, as in the C++ benchmark. `spin-micros` > 0 busy-polls for
 * the next frame that long before sleeping on the semaphore; `anticipate` (relay, duplex) polls
 * through the window where the next frame of a paced stream is due (`ReaderOptions.anticipate`).
 * @module
 */
import { rmSync } from "node:fs";
import { native } from "../../src/native.js";
import { DuplexServer, InPlaceServer, Reader, ReaderDeadError, Writer, WriterDeadError } from "../../src/zerobuffer/index.js";
import { serve } from "./runtime.js";

const [mode, name, payloadArg, spinArg, anticipateArg] = process.argv.slice(2);
const anticipate = anticipateArg === "anticipate";
if ((mode !== "relay" && mode !== "duplex" && mode !== "inplace") || name === undefined) {
  throw new Error("usage: zb-relay.js <relay|duplex|inplace> <name> <payload-bytes>");
}
const payloadSize = Number(payloadArg ?? 256 << 20);
const spinMicros = Number(spinArg ?? 0);
const owned = mode === "relay" ? `${name}-a` : `${name}_request`;

/** Removes what this process owns (synchronously: the runtime exits right after). */
function removeOwned(): void {
  for (const path of [`/dev/shm/${owned}`, ...["w", "r", "p", "c"].map((k) => `/dev/shm/sem.sem-${k}-${owned}`), `/tmp/zerobuffer/${owned}.lock`]) {
    rmSync(path, { force: true });
  }
}

/** Marks a relayed frame: byte 12..15 of the timestamp header (the reference's padding) = 1. */
function stamp(data: Uint8Array): void {
  data[12] = 1;
}

if (mode === "relay") {
  const input = await Reader.create(owned, { payloadSize, metadataSize: 0, spinMicros, anticipate });
  const output = await Writer.connect(`${name}-b`, { timeout: 10_000, writeTimeout: 10_000 });
  serve(() => null, {}, removeOwned);
  try {
    for (;;) {
      const frame = input.tryRead() ?? (await input.read({ timeout: Infinity }));
      const fb = await output.frameBuffer(frame.data.length);
      native().copy(sharedOf(fb.data), fb.data.byteOffset, frame.data);
      stamp(fb.data);
      fb.commit();
      frame.release();
    }
  } catch (err) {
    // The suite closed its writer (it is done) or its reader: wait for "exit".
    if (!(err instanceof WriterDeadError) && !(err instanceof ReaderDeadError)) process.stderr.write(`zb-relay: ${String(err)}\n`);
  }
} else if (mode === "duplex") {
  await DuplexServer.create(
    name,
    async (request, respond) => {
      const fb = await respond.frameBuffer(request.data.length);
      native().copy(sharedOf(fb.data), fb.data.byteOffset, request.data);
      stamp(fb.data);
      fb.commit();
    },
    { payloadSize, metadataSize: 0, connectTimeout: 10_000, writeTimeout: 10_000, spinMicros, anticipate },
  );
  serve(() => null, {}, removeOwned);
} else {
  await InPlaceServer.create(name, (request) => stamp(request.data), { payloadSize, metadataSize: 0, drainTimeout: 0, spinMicros });
  serve(() => null, {}, removeOwned);
}

/** The SharedArrayBuffer under a ring view. */
function sharedOf(view: Uint8Array): SharedArrayBuffer {
  return view.buffer as SharedArrayBuffer;
}
