/**
 * Peer of the socket cases: a `net` server on a Unix socket path or TCP loopback (port 0) that
 * either echoes every whole message (`echo`), reads and touches everything (`sink`, answering
 * `waitFor(totalBytes)`), or does what any message receiver must: copies each `message-bytes`
 * message into a buffer of its own, then touches it (`messages`, also answering `waitFor`).
 * Usage: `net-peer.js <unix|tcp> <path|-> <echo|sink|messages> <message-bytes>`.
 * @module
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { Counter, serve, touch } from "./runtime.js";

const [transport, path, mode, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
if ((transport !== "unix" && transport !== "tcp") || (mode !== "echo" && mode !== "sink" && mode !== "messages") || !(size > 0)) {
  throw new Error("usage: net-peer.js <unix|tcp> <path|-> <echo|sink|messages> <message-bytes>");
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

/** Reads whole `size`-byte messages, each copied into a buffer of its own (as a framed receiver must hand them out), and touches each. */
function messages(socket: Socket): void {
  let message: Buffer | undefined;
  let fill = 0;
  socket.on("data", (chunk: Buffer) => {
    for (let at = 0; at < chunk.length; ) {
      message ??= Buffer.allocUnsafe(size);
      const take = Math.min(size - fill, chunk.length - at);
      chunk.copy(message, fill, at, at + take);
      fill += take;
      at += take;
      if (fill === size) {
        counter.checksum += touch(message);
        counter.add(size);
        message = undefined;
        fill = 0;
      }
    }
  });
}

const server = createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("error", () => socket.destroy());
  if (mode === "echo") echo(socket);
  else if (mode === "messages") messages(socket);
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
