/**
 * Peer of the socket cases: a `net` server on a Unix socket path or TCP loopback (port 0) that
 * either echoes every whole message (`echo`) or reads and touches everything (`sink`, answering
 * `waitFor(totalBytes)`). Usage: `net-peer.js <unix|tcp> <path|-> <echo|sink> <message-bytes>`.
 * @module
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { Counter, serve, touch } from "./runtime.js";

const [transport, path, mode, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
if ((transport !== "unix" && transport !== "tcp") || (mode !== "echo" && mode !== "sink") || !(size > 0)) {
  throw new Error("usage: net-peer.js <unix|tcp> <path|-> <echo|sink> <message-bytes>");
}

const counter = new Counter();
const sockets = new Set<Socket>();

/** Echoes whole messages: replies once `size` bytes are in, with exactly the bytes received. */
function echo(socket: Socket): void {
  let chunks: Buffer[] = [];
  let pending = 0;
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    pending += chunk.length;
    if (pending < size) return;
    const all = chunks.length === 1 ? chunk : Buffer.concat(chunks, pending);
    const whole = pending - (pending % size);
    socket.write(whole === all.length ? all : all.subarray(0, whole));
    const rest = all.subarray(whole);
    chunks = rest.length > 0 ? [rest] : [];
    pending = rest.length;
  });
}

/** Reads everything, touching one byte per 64. */
function sink(socket: Socket): void {
  socket.on("data", (chunk: Buffer) => {
    counter.checksum += touch(chunk);
    counter.add(chunk.length);
  });
}

const server = createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("error", () => socket.destroy());
  if (mode === "echo") echo(socket);
  else sink(socket);
});

function cleanup(): void {
  for (const s of sockets) s.destroy();
  server.close();
  if (transport === "unix") rmSync(path as string, { force: true });
}

function ready(): void {
  const address = server.address();
  const info = transport === "unix" ? { path } : { port: (address as AddressInfo).port };
  serve(
    (op, args) => {
      if (op === "waitFor") return counter.waitFor(Number(args));
      throw new Error(`unknown op ${op}`);
    },
    info,
    cleanup,
  );
}

if (transport === "unix") server.listen(path, ready);
else server.listen(0, "127.0.0.1", ready);
