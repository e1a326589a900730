// The test vectors of docs/protocol.md §7 (queues): see helpers/vectors.ts. Where a real
// endpoint writes the message (a queue client or server), its bytes are compared with the page's too.
import assert from "node:assert/strict";
import { once as onceEvent } from "node:events";
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { decode, encode } from "../src/codec/index.js";
import { Liveness } from "../src/net/liveness.js";
import { queue, type QueueClient } from "../src/queue/index.js";
import { TimeoutError } from "../src/errors.js";
import { linkKey, MqttHub, topicPrefix } from "../src/queue/mqtt.js";
import { FrameParser } from "../src/net/frame-parser.js";
import { PING_FRAME, readFrameHeader } from "../src/net/frame.js";
import { encodeHello, encodeRefusal, encodeWelcome, PREAMBLE_BYTES, readHello, readWelcome } from "../src/net/handshake.js";
import { decodeBody, encodeBody, encodeNack, FLAG_IDLE, FLAG_RELIABLE, FLAG_TAKEN_OVER, frameTable, HandshakeStatus, header, HEADER_BYTES, NackReason, QFrame, QUEUE_SPEC, writeHeader as writeQueueHeader, type Header as QueueHeader } from "../src/queue/wire.js";
import { vec, sameBytes, checkVectors } from "./helpers/vectors.js";

// ---- §7 queues ---------------------------------------------------------------------------------

/** The page's client identity, session token, and server identity. */
const CLIENT_ID = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const TOKEN = Buffer.from("1122334455667788", "hex");
const SERVER_ID = Buffer.from("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "hex");

/** The fields of a queue HELLO or WELCOME: the preamble's that the queue sets, its status, and its body. */
interface QHandshake {
  /** Preamble: version (chosen, or the writer's highest). */
  version: number;
  /** WELCOME status (0 in a HELLO). */
  status: number;
  /** Preamble: the writer's heartbeat (0 in a refusal). */
  heartbeat: number;
  resumed: boolean;
  slots: number;
  maxMessage: number;
  identity: Buffer;
  session: Buffer;
}

/** Writes a queue HELLO or WELCOME frame with the net layer's encoders and the queue's body. */
function encodeHandshake(type: QFrame.Hello | QFrame.Welcome, f: QHandshake): Buffer {
  const body = encodeBody(f);
  const spec = { ...QUEUE_SPEC, version: f.version, minVersion: Math.min(f.version, QUEUE_SPEC.minVersion) };
  if (type === QFrame.Hello) return encodeHello(spec, f.heartbeat, body);
  if (f.status !== HandshakeStatus.Ok) return encodeRefusal(QUEUE_SPEC, f.status, body);
  const v = readHello(QUEUE_SPEC, encodeHello(QUEUE_SPEC, 1000, body).subarray(HEADER_BYTES));
  assert.ok(v.ok);
  return encodeWelcome(QUEUE_SPEC, v.hello, f.heartbeat, body);
}

/** Reads a queue HELLO or WELCOME payload back to its fields. */
function decodeHandshake(h: QueueHeader, payload: Buffer): QHandshake {
  if (h.type === QFrame.Hello) {
    const v = readHello(QUEUE_SPEC, payload);
    assert.ok(v.ok, "a HELLO this server accepts");
    return { version: v.hello.version, status: 0, heartbeat: v.hello.heartbeat, ...decodeBody(v.hello.body) };
  }
  const w = readWelcome(QUEUE_SPEC, h, payload, "the page");
  return { version: w.version, status: w.status, heartbeat: w.heartbeat, ...decodeBody(w.body) };
}

/** The page's HELLO: what a client with the default (fast) options and identity CLIENT_ID sends. */
const Q_HELLO: QHandshake = { version: 3, status: 0, resumed: false, slots: 16, heartbeat: 1000, maxMessage: 64 << 20, identity: CLIENT_ID, session: TOKEN };
/** The page's WELCOME: what a server with the default options and identity SERVER_ID answers to Q_HELLO. */
const Q_WELCOME: QHandshake = { ...Q_HELLO, identity: SERVER_ID };
/** A refusing WELCOME of the page: no heartbeat, the queue's body. */
const Q_REFUSAL: QHandshake = { ...Q_WELCOME, heartbeat: 0 };

/** A lazily started scenario, run once however many vectors use it. */
function lazily<T>(run: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= run());
}

/**
 * The frames a socket receives, each whole (header and payload) as it was on the wire. PINGs
 * (an endpoint writes one whenever it was quiet for its heartbeat) are checked against the page's
 * and skipped.
 */
class FrameTap {
  private buffered = Buffer.alloc(0);
  private ended = false;
  /** PINGs skipped so far. */
  pings = 0;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => (this.buffered = Buffer.concat([this.buffered, chunk])));
    socket.on("close", () => (this.ended = true));
    socket.on("error", () => {});
  }

  /** The next frame, or null once the peer closed the connection after its last frame (waits up to 5 s). */
  async next(): Promise<Buffer | null> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const b = this.buffered;
      if (b.length >= HEADER_BYTES && b.length >= HEADER_BYTES + b.readUInt32LE(0)) {
        const frame = Buffer.from(b.subarray(0, HEADER_BYTES + b.readUInt32LE(0)));
        this.buffered = b.subarray(frame.length);
        if (!frame.equals(PING_FRAME)) return frame;
        this.pings++;
        continue;
      }
      if (this.ended) {
        assert.equal(b.length, 0, "the connection closed between frames");
        return null;
      }
      assert.ok(Date.now() < deadline, "no queue frame within 5 s");
      await sleep(2);
    }
  }
}

async function dial(port: number): Promise<{ socket: Socket; tap: FrameTap }> {
  const socket = netConnect({ host: "127.0.0.1", port, noDelay: true });
  const tap = new FrameTap(socket);
  await onceEvent(socket, "connect");
  return { socket, tap };
}

/**
 * A real client (identity CLIENT_ID, default options but `mode`) against a stand-in server that
 * answers its HELLO with the page's WELCOME (echoing the client's token) and acknowledges its
 * DATA: what the client wrote for connect, `put({a: 1})` and close, frame by frame.
 */
async function clientWrites(mode: "fast" | "reliable"): Promise<{ token: Buffer; hello: Buffer; data: Buffer; bye: Buffer }> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = onceEvent(server, "connection");
  let client: QueueClient | undefined;
  let socket: Socket | undefined;
  try {
    const connecting = queue.client({ url: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, identity: CLIENT_ID, mode, linger: 1000 });
    connecting.catch(() => {}); // observed below
    socket = (await accepted)[0] as Socket;
    const tap = new FrameTap(socket);
    const hello = await tap.next();
    assert.ok(hello !== null, "the client sends HELLO");
    const { session: token } = decodeHandshake(readFrameHeader(hello, 0), hello.subarray(HEADER_BYTES));
    socket.write(encodeHandshake(QFrame.Welcome, { ...Q_WELCOME, session: token }));
    client = await connecting;
    const put = client.put({ a: 1 });
    const data = await tap.next();
    assert.ok(data !== null, "the client sends DATA");
    socket.write(header(0, QFrame.Ack, 0, readFrameHeader(data, 0).a));
    await put;
    await client.close();
    const bye = await tap.next();
    assert.ok(bye !== null, "the client sends BYE");
    assert.equal(await tap.next(), null, "then closes the connection");
    return { token, hello, data, bye };
  } finally {
    socket?.destroy();
    await client?.close();
    server.close();
  }
}

const fastClient = lazily(() => clientWrites("fast"));
const reliableClient = lazily(() => clientWrites("reliable"));

/**
 * A real server (default options but `maxQueue: 1`), talked to over raw sockets with the page's
 * frames: what it wrote, frame by frame, with the identity it drew.
 *
 * A sends the page's HELLO and DATA 1, which is queued and acknowledged (and taken by a get);
 * A drops. B sends the same HELLO (the session resumes). C sends it with another token (C takes
 * the identity over: B gets BYE, taken over), then DATA 1 (queued, acknowledged) and DATA 2
 * (parked: the queue holds one message). D sends the page's HELLO again (its token was
 * superseded), E a HELLO of version 2 only (the server speaks 3). Then the server closes: C's DATA 2
 * is refused, C gets BYE.
 */
const serverWrites = lazily(async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", maxQueue: 1, linger: 1000 });
  const identity = (server as unknown as { identity: Buffer }).identity;
  const sockets: Socket[] = [];
  const open = async (): Promise<FrameTap> => {
    const { socket, tap } = await dial(server.port);
    sockets.push(socket);
    return tap;
  };
  const data2 = Buffer.from(vec("queue.data-fast"));
  data2.writeUInt32LE(2, 8);
  const otherHello = encodeHandshake(QFrame.Hello, { ...Q_HELLO, session: Buffer.from("99aabbccddeeff00", "hex") });
  const v2Hello = encodeHandshake(QFrame.Hello, { ...Q_HELLO, version: 2 });
  try {
    const a = await open();
    a.socket.write(vec("queue.hello"));
    const welcome = await a.next();
    a.socket.write(vec("queue.data-fast"));
    const ack = await a.next();
    const m = await server.get({ timeout: 5000 });
    assert.deepEqual([m.value, m.peer], [{ a: 1 }, CLIENT_ID.toString("hex")]);
    a.socket.destroy();

    const b = await open();
    b.socket.write(vec("queue.hello"));
    const resumed = await b.next();

    const c = await open();
    c.socket.write(otherHello);
    const cWelcome = await c.next();
    const takenOver = await b.next();
    assert.equal(await b.next(), null, "the server closes the connection it wrote BYE (taken over) to");
    c.socket.write(Buffer.concat([vec("queue.data-fast"), data2]));
    const cAck = await c.next();

    const d = await open();
    d.socket.write(vec("queue.hello"));
    const superseded = await d.next();
    assert.equal(await d.next(), null, "the server closes the connection after a refusal");

    const e = await open();
    e.socket.write(v2Hello);
    const version = await e.next();
    assert.equal(await e.next(), null, "the server closes the connection after a refusal");

    await server.close();
    const nack = await c.next();
    const bye = await c.next();
    assert.equal(await c.next(), null, "the server closes the connection after BYE");
    return { identity, welcome, ack, resumed, cWelcome, takenOver, cAck, superseded, version, nack, bye };
  } finally {
    for (const s of sockets) s.destroy();
    await server.close();
  }
});

/**
 * A real server that beats every 50 ms and collects sessions idle for 400 ms, given the page's
 * HELLO over a raw socket: the PINGs it writes while idle, then its BYE.
 */
const idleServerWrites = lazily(async () => {
  const server = await queue.server({ url: "tcp://127.0.0.1:0", heartbeat: 50, idleTimeout: 400, linger: 1000 });
  let socket: Socket | undefined;
  try {
    const d = await dial(server.port);
    socket = d.socket;
    socket.write(vec("queue.hello"));
    const welcome = await d.tap.next();
    assert.ok(welcome !== null && welcome[4] === QFrame.Welcome && welcome.readUInt32LE(8) === HandshakeStatus.Ok, "joined");
    const bye = await d.tap.next();
    assert.ok(bye !== null, "the server writes BYE");
    assert.equal(await d.tap.next(), null, "the server closes the connection after BYE");
    return { bye, pings: d.tap.pings };
  } finally {
    socket?.destroy();
    await server.close();
  }
});

/** A frame the real server wrote: the page's bytes, with the server's identity in place of the page's. */
async function fromServer(pick: (w: Awaited<ReturnType<typeof serverWrites>>) => Buffer | null, bytes: Buffer, what: string, identityAt?: number): Promise<void> {
  const w = await serverWrites();
  const frame = pick(w);
  assert.ok(frame !== null, `the server wrote ${what}`);
  const expected = Buffer.from(bytes);
  if (identityAt !== undefined) w.identity.copy(expected, identityAt);
  sameBytes(frame, expected, `the server's ${what}${identityAt !== undefined ? " (the identity is this run's)" : ""}`);
}

/** Where the writer's identity is in a HELLO or WELCOME frame (after the header, the preamble and 8 bytes of body). */
const IDENTITY_AT = HEADER_BYTES + PREAMBLE_BYTES + 8;
/** Where the session token is in a HELLO or WELCOME frame. */
const TOKEN_AT = HEADER_BYTES + PREAMBLE_BYTES + 24;

/** The frames a FrameParser reads from `bytes`, fed whole and fed one byte at a time (the same). */
function queueFrames(bytes: Buffer): { header: QueueHeader; payload: Buffer }[] {
  const read = (chunks: Buffer[]): { header: QueueHeader; payload: Buffer }[] => {
    const out: { header: QueueHeader; payload: Buffer }[] = [];
    const parser = new FrameParser(frameTable(64 << 20), (h, f) => out.push({ header: h, payload: Buffer.from(f.subarray(HEADER_BYTES)) }));
    for (const c of chunks) parser.push(c);
    assert.ok(parser.idle, "the bytes end with a whole frame");
    return out;
  };
  const whole = read([bytes]);
  assert.deepEqual(read([...bytes].map((b) => Buffer.of(b))), whole);
  return whole;
}

/** The one frame `bytes` hold. */
function queueFrame(bytes: Buffer): { header: QueueHeader; payload: Buffer } {
  const frames = queueFrames(bytes);
  assert.equal(frames.length, 1, "one frame");
  return frames[0];
}

function queueHandshake(type: QFrame.Hello | QFrame.Welcome, fields: QHandshake, real: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeHandshake(type, fields), bytes, "encodeHello / encodeWelcome / encodeRefusal with the queue's body");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: PREAMBLE_BYTES + 32, type, flags: 0, a: fields.status, b: 0 });
    assert.deepEqual(decodeHandshake(h, payload), fields);
    await real(bytes);
  };
}

/** A frame without payload: `header` writes it, the parser reads it back. */
function queueControl(type: QFrame, flags: number, serial: number, real?: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    sameBytes(header(0, type, flags, serial), bytes, "header");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 0, type, flags, a: serial, b: 0 });
    assert.equal(payload.length, 0);
    await real?.(bytes);
  };
}

/** DATA `serial` of `{a: 1}`: as a put writes it (the codec frame after 16 bytes of room, the header written into the room). */
function queueData(flags: number, serial: number, real: (bytes: Buffer) => Promise<void>) {
  return async (bytes: Buffer): Promise<void> => {
    const frame = encode({ a: 1 });
    const b = Buffer.alloc(HEADER_BYTES + frame.length, 0xff);
    b.set(frame, HEADER_BYTES);
    writeQueueHeader(b, 0, frame.length, QFrame.Data, flags, serial);
    sameBytes(b, bytes, "writeHeader + codec frame");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 20, type: QFrame.Data, flags, a: serial, b: 0 });
    assert.deepEqual(decode(payload), { a: 1 });
    await real(bytes);
  };
}

/** A fake mqtt.js client: what an MqttHub publishes, and a way to deliver messages to it. */
function mqttHub(identity: Buffer, token: Buffer | undefined, qos: 0 | 1 = 0): { hub: MqttHub; published: { topic: string; payload: Buffer; qos: number }[] } {
  const published: { topic: string; payload: Buffer; qos: number }[] = [];
  const client = {
    on: () => undefined,
    subscribeAsync: () => Promise.resolve(),
    publish: (topic: string, payload: Buffer, opts: { qos: number }) => published.push({ topic, payload, qos: opts.qos }),
    endAsync: () => Promise.resolve(),
  };
  // MqttHub.connect dials a broker; the hub itself only needs something to publish through.
  const Hub = MqttHub as unknown as new (client: unknown, identity: Buffer, prefix: string, qos: 0 | 1, token: Buffer | undefined) => MqttHub;
  return { hub: new Hub(client, identity, topicPrefix("jobs"), qos, token), published };
}

const queues = {
  "queue.hello": queueHandshake(QFrame.Hello, Q_HELLO, async (bytes) => {
    const { token, hello } = await fastClient();
    const expected = Buffer.from(bytes);
    token.copy(expected, TOKEN_AT);
    sameBytes(hello, expected, "a client's HELLO (the token is this run's)");
  }),
  "queue.welcome": queueHandshake(QFrame.Welcome, Q_WELCOME, (bytes) => fromServer((w) => w.welcome, bytes, "WELCOME", IDENTITY_AT)),
  "queue.welcome-resumed": queueHandshake(QFrame.Welcome, { ...Q_WELCOME, resumed: true }, (bytes) =>
    fromServer((w) => w.resumed, bytes, "WELCOME to the same client reconnecting", IDENTITY_AT),
  ),
  "queue.welcome-superseded": queueHandshake(QFrame.Welcome, { ...Q_REFUSAL, status: HandshakeStatus.Superseded }, async (bytes) => {
    await fromServer((w) => w.superseded, bytes, "WELCOME to a client whose identity was taken over", IDENTITY_AT);
    // The new session started from the other token: a WELCOME like the page's, with that token.
    const expected = Buffer.from(vec("queue.welcome"));
    Buffer.from("99aabbccddeeff00", "hex").copy(expected, TOKEN_AT);
    await fromServer((w) => w.cWelcome, expected, "WELCOME to the client that took the identity over", IDENTITY_AT);
  }),
  "queue.welcome-version": queueHandshake(QFrame.Welcome, { ...Q_REFUSAL, status: HandshakeStatus.Version, session: Buffer.alloc(8) }, (bytes) =>
    fromServer((w) => w.version, bytes, "WELCOME to a version-2 HELLO", IDENTITY_AT),
  ),
  "queue.data-fast": queueData(0, 1, async (bytes) => {
    sameBytes((await fastClient()).data, bytes, "a fast client's put({a: 1})");
  }),
  "queue.data-reliable": queueData(FLAG_RELIABLE, 1, async (bytes) => {
    sameBytes((await reliableClient()).data, bytes, "a reliable client's put({a: 1})");
  }),
  "queue.ack": queueControl(QFrame.Ack, 0, 1, async (bytes) => {
    await fromServer((w) => w.ack, bytes, "ACK of a queued DATA 1");
    await fromServer((w) => w.cAck, bytes, "ACK of a queued DATA 1 (the new session's)");
  }),
  "queue.nack": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeNack(2, NackReason.Closed, "queue closed"), bytes, "encodeNack");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 16, type: QFrame.Nack, flags: 0, a: 2, b: 0 });
    assert.equal(payload.readUInt32LE(0), NackReason.Closed);
    assert.equal(payload.toString("utf8", 4), "queue closed");
    await fromServer((w) => w.nack, bytes, "NACK of the DATA 2 it held when it closed");
  },
  "queue.nack-failed": async (bytes: Buffer): Promise<void> => {
    sameBytes(encodeNack(3, NackReason.Failed, "ERR_PLEXUS_TIMEOUT late"), bytes, "encodeNack");
    const { header: h, payload } = queueFrame(bytes);
    assert.deepEqual(h, { length: 27, type: QFrame.Nack, flags: 0, a: 3, b: 0 });
    assert.equal(payload.readUInt32LE(0), NackReason.Failed);
    // A server whose tap refuses a message with a TimeoutError writes this NACK; the client's
    // put rejects with that class.
    const server = await queue.server({ url: "tcp://127.0.0.1:0" });
    server.tap = (d) => d.fail(new TimeoutError("late"));
    const client = await queue.client({ url: server.url });
    try {
      await assert.rejects(client.put({ a: 1 }), (e: unknown) => e instanceof TimeoutError && e.message === "the peer could not handle the message: late");
    } finally {
      await client.close();
      await server.close();
    }
  },
  "queue.bye": queueControl(QFrame.Bye, 0, 0, async (bytes) => {
    sameBytes((await fastClient()).bye, bytes, "a client's BYE on close");
    await fromServer((w) => w.bye, bytes, "BYE on close");
  }),
  "queue.bye-idle": queueControl(QFrame.Bye, FLAG_IDLE, 0, async (bytes) => {
    const idle = await idleServerWrites();
    sameBytes(idle.bye, bytes, "the server's BYE to a session it collected");
    // The tap took each frame equal to the connection's PING (§0) as one.
    assert.ok(idle.pings > 0, "the idle server wrote PINGs before");
  }),
  "queue.bye-taken-over": queueControl(QFrame.Bye, FLAG_TAKEN_OVER, 0, (bytes) => fromServer((w) => w.takenOver, bytes, "BYE to the client whose identity was taken over")),
  "queue.mqtt-data": (bytes: Buffer): void => {
    const data = vec("queue.data-fast");
    const clientHex = CLIENT_ID.toString("hex");
    // Written: the server's link to the client's session publishes DATA 1 of {a: 1}.
    const server = mqttHub(SERVER_ID, undefined);
    const toClient = server.hub.link(linkKey(clientHex, TOKEN), `c/${clientHex}`, 64 << 20, TOKEN, new Liveness(500, 1000, 5000));
    toClient.write([data]);
    assert.deepEqual(server.published, [{ topic: "plexus/q/jobs/c/000102030405060708090a0b0c0d0e0f", payload: bytes, qos: 0 }]);
    // The same bytes at QoS 1 from an endpoint whose URL says ?qos=1.
    const qos1 = mqttHub(SERVER_ID, undefined, 1);
    qos1.hub.link(linkKey(clientHex, TOKEN), `c/${clientHex}`, 64 << 20, TOKEN, new Liveness(500, 1000, 5000)).write([data]);
    assert.deepEqual(qos1.published, [{ topic: "plexus/q/jobs/c/000102030405060708090a0b0c0d0e0f", payload: bytes, qos: 1 }]);
    assert.equal(bytes.length, 16 + 8 + HEADER_BYTES + bytes.readUInt32LE(24), "identity, token, header, payload");
    // Read: the client (identity and token the page's) gets the frame, from the server's identity.
    const client = mqttHub(CLIENT_ID, TOKEN);
    const fromServerLink = client.hub.link("server", "s", 64 << 20, TOKEN, new Liveness(500, 1000, 5000));
    const unknown: string[] = [];
    client.hub.onUnknown = (peer, token, frame) => {
      unknown.push(`${peer}:${token.toString("hex")}`);
      fromServerLink.receive(frame);
    };
    const got: { header: QueueHeader; payload: Buffer }[] = [];
    fromServerLink.bind({ frame: (h, payload) => got.push({ header: h, payload }), gone: (err) => assert.fail(`the link ended: ${String(err)}`) });
    const route = (payload: Buffer): void => (client.hub as unknown as { route(topic: string, payload: Buffer): void }).route(server.published[0].topic, payload);
    route(bytes);
    assert.deepEqual(unknown, [`${SERVER_ID.toString("hex")}:${TOKEN.toString("hex")}`]);
    assert.deepEqual(got, [{ header: { length: 20, type: QFrame.Data, flags: 0, a: 1, b: 0 }, payload: data.subarray(HEADER_BYTES) }]);
    assert.deepEqual(decode(got[0].payload), { a: 1 });
    // The same message with another session token is not for this client: dropped.
    const other = Buffer.from(bytes);
    other[16] ^= 0xff;
    route(other);
    assert.equal(got.length, 1);
  },
};


checkVectors(["queue."], { ...queues });
