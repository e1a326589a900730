/**
 * The zb row: ZeroBuffer's own round trip (bench/README.md, "The `zb` row"). Frames of
 * 3,110,416 bytes (a 16-byte timestamp header + 1920x1080 YUV420) go from this process through
 * a relay process and back, paced at 30..1000 FPS and unpaced; latency = receive time - the timestamp
 * embedded in the frame, measured in this process. Three styles side by side:
 * - the reference's method: two plain v1 buffers of 256 MiB and a relay that copies each frame
 *   from one into the other (`frameBuffer` + copy + `commit`);
 * - the v1 duplex API (`DuplexClient` / `DuplexServer`) doing the same copy;
 * - the protocol 2 in-place duplex: one 256 MiB buffer, the relay stamps the frame in place.
 * @module
 */
import { native } from "../../src/native.js";
import { DuplexClient, InPlaceClient, Reader, Writer, type Frame } from "../../src/zerobuffer/index.js";
import { registerCase, type CaseContext, type CaseScope, type LatencySample, type Resource } from "../harness.js";
import { asError, now } from "../measure.js";
import { Peer } from "../peer.js";
import { registerRow } from "../rows.js";

/** Bytes of one frame: 16-byte timestamp header + 1920x1080 YUV420 (3,110,400). */
export const ZB_FRAME_BYTES = 16 + 1920 * 1080 * 1.5;
/** Payload of each buffer, as in the reference benchmark. */
const RING = 256 << 20;
/** Shared memory of the two-buffer styles: two v1 buffers (128-byte header, 0 metadata). */
const TWO_BUFFERS = 2 * (128 + RING);
/** Shared memory of the in-place duplex: one protocol 2 buffer (256-byte header, 0 metadata). */
const ONE_BUFFER = 256 + RING;
/** Warm-up frames before the first measurement: the rings turn over twice, so every page is mapped in both processes. */
const PREFAULT_FRAMES = Math.ceil((2 * RING) / ZB_FRAME_BYTES) + 8;
/** Bound of every wait, ms. */
const WAIT_MS = 10_000;

const fmt = (n: number): string => n.toLocaleString("en-US");

registerRow({
  id: "zb",
  title: "zb: ZeroBuffer round trip of 3.1 MB video frames through a relay process (the reference's benchmark)",
  method:
    `Frames of ${fmt(ZB_FRAME_BYTES)} B (16-byte timestamp header + 1080p YUV420) are filled in the ring by this process (frameBuffer + one native ` +
    `copy of the YUV data, as a producer capturing in place), stamped and committed, relayed by a child process and read back; ` +
    `latency = receive time - the timestamp in the frame (taken at commit, after the fill), p50/p90/p99 per repetition. ` +
    `Paced: frame i leaves at t0 + i/FPS, never earlier (a timer to ~1.5 ms before, then event-loop turns; frames may overlap when the round trip exceeds the period); unpaced: the next frame leaves when the previous one is back. ` +
    `Before measuring, ${PREFAULT_FRAMES} unpaced warm-up frames turn the rings over twice. ` +
    `Shared memory: two-buffer styles ${fmt(TWO_BUFFERS)} B (two 256 MiB v1 buffers), in-place ${fmt(ONE_BUFFER)} B (one 256 MiB protocol 2 buffer). ` +
    `The reference reports ~905 µs (C#) and ~1126 µs (Python) p50 on its own machine.`,
});

let counter = 0;

/** A frame on its way: `back` resolves with its round-trip time in µs. */
interface InFlight {
  back: Promise<number>;
}

/** A channel to a relay: `frame(id)` resolves once the frame is written. */
interface ZbLink extends Resource {
  frame(id: number): Promise<InFlight>;
}

/** The 3,110,400 bytes of "YUV" every frame carries. */
function yuvSource(): Uint8Array {
  const yuv = new Uint8Array(ZB_FRAME_BYTES - 16);
  for (let i = 0; i < yuv.length; i++) yuv[i] = (i * 13) & 0xff;
  return yuv;
}

/**
 * Fills a frame in the ring: the YUV data (the producer's one copy in), and the header
 * (timestamp ns, id, pad 0). The timestamp is taken after the copy, at send time, unless
 * `countCopy` puts it before the copy (then the copy in is part of the latency).
 */
function fill(data: Uint8Array, id: number, yuv: Uint8Array, countCopy: boolean): void {
  const header = new DataView(data.buffer, data.byteOffset, 16);
  if (countCopy) header.setBigInt64(0, process.hrtime.bigint(), true);
  native().copy(data.buffer as SharedArrayBuffer, data.byteOffset + 16, yuv);
  header.setInt32(8, id, true);
  header.setInt32(12, 0, true);
  if (!countCopy) header.setBigInt64(0, process.hrtime.bigint(), true);
}

/** RTT in µs of a frame that came back; checks that the relay saw it. */
function rttOf(data: Uint8Array, id: number): number {
  const t1 = process.hrtime.bigint();
  const header = new DataView(data.buffer, data.byteOffset, 16);
  if (header.getInt32(8, true) !== id || data[12] !== 1) throw new Error(`zb: frame ${id} came back as ${header.getInt32(8, true)} (stamp ${data[12]})`);
  return Number(t1 - header.getBigInt64(0, true)) / 1000;
}

/** The reference's method: write into A, the relay copies into B, read B. */
class RelayLink implements ZbLink {
  private readonly waiting: { id: number; resolve: (us: number) => void; reject: (e: Error) => void }[] = [];
  private pumping = false;

  private constructor(
    private readonly writer: Writer,
    private readonly reader: Reader,
    private readonly signal: AbortSignal,
    private readonly yuv: Uint8Array,
    private readonly countCopy: boolean,
  ) {}

  static async open(scope: CaseScope, style: Style): Promise<RelayLink> {
    const name = `zb-bench-${process.pid}-${++counter}`;
    const spinMicros = style.spin ?? 0;
    const anticipate = style.anticipate === true;
    const reader = await Reader.create(`${name}-b`, { payloadSize: RING, metadataSize: 0, spinMicros, anticipate });
    scope.defer(() => reader.close());
    await Peer.start(scope, "zb-relay.js", { args: ["relay", name, String(RING), String(spinMicros), anticipate ? "anticipate" : "-"] });
    const writer = await Writer.connect(`${name}-a`, { timeout: WAIT_MS, writeTimeout: WAIT_MS, signal: scope.signal });
    scope.defer(() => writer.close());
    return new RelayLink(writer, reader, scope.signal, yuvSource(), style.countCopy === true);
  }

  async frame(id: number): Promise<InFlight> {
    const fb = await this.writer.frameBuffer(ZB_FRAME_BYTES, { signal: this.signal });
    fill(fb.data, id, this.yuv, this.countCopy);
    const back = new Promise<number>((resolve, reject) => this.waiting.push({ id, resolve, reject }));
    fb.commit();
    if (!this.pumping) void this.pump();
    return { back };
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiting.length > 0) {
        const f: Frame = this.reader.tryRead() ?? (await this.reader.read({ timeout: WAIT_MS, signal: this.signal }));
        const w = this.waiting.shift();
        try {
          w?.resolve(rttOf(f.data, w.id));
        } catch (err) {
          w?.reject(asError(err));
        }
        f.release();
      }
    } catch (err) {
      for (const w of this.waiting.splice(0)) w.reject(asError(err));
    } finally {
      this.pumping = false;
    }
  }

  close(): void {}
}

/** The v1 duplex API, or the protocol 2 in-place duplex. */
class ClientLink implements ZbLink {
  private constructor(
    private readonly client: DuplexClient | InPlaceClient,
    private readonly signal: AbortSignal,
    private readonly yuv: Uint8Array,
  ) {}

  static async open(scope: CaseScope, style: Style): Promise<ClientLink> {
    const name = `zb-bench-${process.pid}-${++counter}`;
    const spinMicros = style.spin ?? 0;
    await Peer.start(scope, "zb-relay.js", { args: [style.id, name, String(RING), String(spinMicros)] });
    const client =
      style.id === "duplex"
        ? await DuplexClient.connect(name, { timeout: WAIT_MS, signal: scope.signal, responsePayloadSize: RING, responseMetadataSize: 0, spinMicros })
        : await InPlaceClient.connect(name, { timeout: WAIT_MS, signal: scope.signal, spinMicros });
    scope.defer(() => client.close());
    return new ClientLink(client, scope.signal, yuvSource());
  }

  async frame(id: number): Promise<InFlight> {
    const rb = await this.client.frameBuffer(ZB_FRAME_BYTES, { timeout: WAIT_MS, signal: this.signal });
    fill(rb.data, id, this.yuv, false);
    const back = rb.commit({ timeout: WAIT_MS, signal: this.signal }).then((res) => {
      try {
        return rttOf(res.data, id);
      } finally {
        res.release();
      }
    });
    back.catch(() => {});
    return { back };
  }

  close(): void {}
}

/** Opens a link and turns its rings over (unless quick). */
async function openLink(scope: CaseScope, style: Style, quick: boolean): Promise<ZbLink> {
  const link = style.id === "relay" ? await RelayLink.open(scope, style) : await ClientLink.open(scope, style);
  const warm = quick ? 2 : PREFAULT_FRAMES;
  for (let i = 1; i <= warm; i++) await (await link.frame(-i)).back;
  return link;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One repetition: `count` frames, paced at `fps` (0: unpaced, one in flight). */
async function measure(ctx: CaseContext, link: ZbLink, fps: number): Promise<LatencySample> {
  let count = ctx.count;
  if (fps > 0) count = Math.max(20, Math.min(count, Math.round((ctx.targetMs * fps) / 1000)));
  if (ctx.quick) count = Math.min(count, 5);
  const rtt = new Float64Array(count);
  if (fps === 0) {
    let n = 0;
    while (n < count) {
      if (ctx.signal.aborted) throw asError(ctx.signal.reason);
      rtt[n] = await (await link.frame(n)).back;
      n++;
      if (now() > ctx.deadline) break;
    }
    return { kind: "latency", rttUs: rtt.subarray(0, n) };
  }
  const interval = 1000 / fps;
  const t0 = now();
  const back: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    if (ctx.signal.aborted) throw asError(ctx.signal.reason);
    // Never early: a timer (ms-grained, often late by up to a ms) to about 1.5 ms before the
    // frame is due, then turns of the event loop (I/O keeps flowing) until it is.
    const due = t0 + i * interval;
    if (due - now() > 1.5) await sleep(due - now() - 1.5);
    while (now() < due) await new Promise((resolve) => setImmediate(resolve));
    const f = await link.frame(i);
    back.push(f.back.then((us) => void (rtt[i] = us)));
  }
  await Promise.all(back);
  return { kind: "latency", rttUs: rtt };
}

/** A duplex style. */
interface Style {
  id: "relay" | "duplex" | "inplace";
  name: string;
  method: string;
  /** Timestamp before the producer's copy in (only the extra unpaced case). */
  countCopy?: boolean;
  /**
   * Busy-poll budget of both processes, µs (default 0: sleep on the semaphore at once). No
   * registered style spins: on two cores the two spinning processes starve each other as soon
   * as anything else runs.
   */
  spin?: number;
  /** Both processes anticipate the frames of the paced stream (`ReaderOptions.anticipate`). */
  anticipate?: boolean;
}

/** Name of the baseline: the reference's own method. */
const RELAY = "zb v1 relay, 2 buffers";

const STYLES: readonly Style[] = [
  { id: "relay", name: RELAY, method: `two v1 buffers of 256 MiB, a relay process copying A -> B (frameBuffer + copy + commit); ${fmt(TWO_BUFFERS)} B of shared memory` },
  {
    id: "relay",
    name: `${RELAY}, anticipate`,
    method: `as "${RELAY}", with anticipate: true on both readers (they learn the frame period and poll through the window where the next frame is due)`,
    anticipate: true,
  },
  { id: "duplex", name: "zb v1 duplex, 2 buffers", method: `DuplexClient -> DuplexServer whose handler copies the request into a response frameBuffer; ${fmt(TWO_BUFFERS)} B of shared memory` },
  { id: "inplace", name: "zb v2 in-place, 1 buffer", method: `InPlaceClient -> InPlaceServer whose handler stamps the frame in place, no copy; ${fmt(ONE_BUFFER)} B of shared memory` },
];

const RATES: readonly { fps: number; label: string }[] = [
  { fps: 30, label: "30 fps" },
  { fps: 60, label: "60 fps" },
  { fps: 120, label: "120 fps" },
  { fps: 250, label: "250 fps" },
  { fps: 500, label: "500 fps" },
  { fps: 1000, label: "1000 fps" },
  { fps: 0, label: "unpaced" },
];

/** The same relay, with the producer's copy into the ring counted (the timestamp is taken before it). */
const RELAY_COPY_COUNTED: Style = {
  id: "relay",
  name: "zb v1 relay, 2 buffers, copy in counted",
  method: `as "${RELAY}", but the timestamp is taken before the producer copies the 3.1 MB frame into buffer A, so that copy counts too`,
  countCopy: true,
};

for (const rate of RATES) {
  for (const style of rate.fps === 0 ? [...STYLES, RELAY_COPY_COUNTED] : STYLES) {
    registerCase({
      row: "zb",
      name: style.name,
      variant: rate.label,
      kind: "latency",
      ...(style.id === "relay" && style.anticipate !== true ? {} : { ratioTo: RELAY }),
      quick: rate.fps === 0 && style.countCopy !== true,
      method: style.method,
      async run(ctx) {
        const link = await ctx.keep("link", (scope) => openLink(scope, style, ctx.quick));
        return measure(ctx, link, rate.fps);
      },
    });
  }
}
