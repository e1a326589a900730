// Request/response between two processes: a child serves "resize" (halves a grayscale image)
// and "invert" (in place, in the request's own shared memory); the parent calls both with 16
// requests in flight. No server to start: the first connect() embeds the GraphServer.
import { fork } from "node:child_process";
import { connect, RemoteError } from "plexus";

interface Image {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** Halves an image in both directions (keeps every other pixel). */
function resize(img: Image): Image {
  const width = img.width >> 1;
  const height = img.height >> 1;
  if (width === 0 || height === 0) throw Object.assign(new Error(`image ${img.width}x${img.height} is too small`), { code: "E_TOO_SMALL" });
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) pixels[y * width + x] = img.pixels[2 * y * img.width + 2 * x];
  return { width, height, pixels };
}

if (process.argv[2] !== "child") {
  await using node = await connect(); // finds the GraphServer, or starts one in this process
  const child = fork(process.argv[1], ["child"]);
  await new Promise((r) => child.once("message", r)); // the child's servers are registered
  await using client = await node.client<Image, Image>("resize");
  await using inverter = await node.client("invert", { capacity: 4 << 20 }); // requests up to 2 MiB

  const image = (i: number): Image => ({ width: 640, height: 480, pixels: new Uint8Array(640 * 480).fill(i) });
  const outs = await Promise.all(Array.from({ length: 100 }, (_, i) => client.request(image(i), { timeout: 2000 })));
  const ok = outs.every((o, i) => o.width === 320 && o.height === 240 && o.pixels.every((p) => p === i));

  let refused = "";
  try {
    await client.request({ width: 1, height: 1, pixels: new Uint8Array(1) });
  } catch (err) {
    if (err instanceof RemoteError) refused = err.remoteCode;
  }

  const bytes = new Uint8Array(1 << 20).fill(0x0f);
  using inverted = await inverter.requestInPlace(bytes); // the answer lies in the request's own memory
  const inPlace = inverted.bytes.buffer instanceof SharedArrayBuffer && inverted.bytes.every((b) => b === 0xf0);

  console.log(`resized ${outs.length} images ${ok ? "correctly" : "WRONG"}; a 1x1 image was refused (${refused}); inverted 1 MiB ${inPlace ? "in place" : "NOT in place"}`);
  child.kill();
} else {
  await using node = await connect();
  await using resizer = await node.server("resize", async (img: Image) => resize(img));
  await using inverter = await node.server(
    "invert",
    (bytes) => {
      for (let i = 0; i < bytes.length; i++) bytes[i] = ~bytes[i] & 0xff;
    },
    { inPlace: true },
  );
  process.send?.("ready");
  // Serve until the parent says stop (or goes away).
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGTERM", stop);
      process.off("disconnect", stop); // a 'disconnect' listener keeps the IPC channel (and this process) alive
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("disconnect", stop);
  });
  void resizer;
  void inverter;
}
