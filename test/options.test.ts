/**
 * Options are checked when a handle is made: every factory refuses a wrong type or value of
 * each of its options with an `InvalidArgumentError` of one form,
 * `<factory>: option "<name>" must be <accepted>, got <value>`, before it opens anything; good
 * values still work. One table per factory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  connect,
  connectInproc,
  connectShm,
  connectTcp,
  GraphServer,
  InprocSender,
  InvalidArgumentError,
  queue,
  ShmSender,
  TcpSender,
  ThreadSender,
  type Node,
} from "../src/index.js";
import { connectThread, type ThreadEndpoint } from "../src/transport/thread.js";
import { DuplexClient, DuplexServer, InPlaceClient, InPlaceServer, Reader, Writer } from "../src/zerobuffer/index.js";
import { Dashboard } from "../src/dashboard/index.js";
import { uniqueName } from "./helpers/zb.js";

// ---- what the messages say ----------------------------------------------------------------------

const int = (min: number, max: number): string => `an integer in ${min}..${max}`;
const MS = "a positive number of milliseconds (at most 2147483647)";
/** `linger` may be 0 (drop at once on close). */
const LINGER = "a number in 0..2147483647";
const TIMEOUT = "a non-negative number of milliseconds (or Infinity)";
const SPIN = "a number in 0..1000000";
const BOOL = "true or false";
const POLICY = 'one of "block", "drop-oldest", "fail"';
const TRANSPORT = 'one of "inproc", "shm", "tcp"';
const SIGNAL = "an AbortSignal";
const FUNCTION = "a function";
const CERTS = "an object of certificate options";
const BYTES = "an ArrayBufferView (Uint8Array, Buffer, ...)";
const MAX_SIZE = 2 ** 40;

/** A value as the messages show it. */
function shown(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v === null) return "null";
  if (typeof v === "function") return "a function";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "a Uint8Array";
  return "an object";
}

/** One bad value of one option (`tcp.port`: nested) and what the option accepts. */
type Row = readonly [option: string, value: unknown, accepted: string];

/** `{ a: { b: value } }` for `a.b`, over `base`. */
function withOption(base: Record<string, unknown>, option: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = option.split(".");
  if (rest.length === 0) return { ...base, [head]: value };
  return { ...base, [head]: withOption((base[head] as Record<string, unknown>) ?? {}, rest.join("."), value) };
}

/** Asserts that `make` refuses every row with the one message form, naming `where`. */
async function refuses(where: string, rows: readonly Row[], make: (opts: Record<string, unknown>) => unknown, base: Record<string, unknown> = {}): Promise<void> {
  for (const [option, value, accepted] of rows) {
    const expected = `${where}: option "${option}" must be ${accepted}, got ${shown(value)}`;
    await assert.rejects(
      async () => make(withOption(base, option, value)),
      (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError, `${option} = ${shown(value)}: ${String(e)}`);
        assert.equal(e.code, "ERR_PLEXUS_INVALID_ARGUMENT");
        assert.equal(e.message, expected);
        return true;
      },
    );
  }
}

/** Warnings emitted while `f` runs (and one turn after). */
async function warningsDuring(f: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const on = (w: Error & { code?: string }): void => void seen.push(`${w.code ?? w.name}: ${w.message}`);
  process.on("warning", on);
  try {
    await f().catch(() => {});
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    process.off("warning", on);
  }
  return seen;
}

async function graph(): Promise<{ server: GraphServer; node: Node; address: string }> {
  const server = await GraphServer.start({ port: 0 });
  const address = `127.0.0.1:${server.address.port}`;
  return { server, node: await connect({ address, embedded: false }), address };
}

// ---- the cases --------------------------------------------------------------------------

test("options: the cases of the report are refused at creation", async () => {
  const { server, node } = await graph();
  await using _s = server;
  await using _n = node;
  await assert.rejects(node.subscriber("t", { backpressure: "nope" as "block" }), /node\.subscriber: option "backpressure" must be one of "block", "drop-oldest", "fail", got "nope"/);
  await assert.rejects(node.subscriber("t", { transport: "udp" as "tcp" }), /node\.subscriber: option "transport" must be one of "inproc", "shm", "tcp", got "udp"/);
  await assert.rejects(node.subscriber("t", { timeout: -1 }), /node\.subscriber: option "timeout" must be a non-negative number of milliseconds \(or Infinity\), got -1/);
  await assert.rejects(node.subscriber("t", { spinMicros: "fast" as unknown as number }), /node\.subscriber: option "spinMicros" must be a number in 0\.\.1000000, got "fast"/);
  // capacity 0: one error, and no warning that subscribers fell back to TCP
  const warnings = await warningsDuring(async () => {
    await assert.rejects(node.publisher("t", { capacity: 0 }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.equal(e.message, 'node.publisher: option "capacity" must be an integer in 64..1073741824, got 0');
      return true;
    });
  });
  assert.deepEqual(warnings, []);
  const snapshot = await node.snapshot();
  assert.deepEqual([snapshot.publishers, snapshot.subscribers], [[], []], "nothing was registered");
});

// ---- pub/sub ------------------------------------------------------------------------------------

test("options: node.publisher", async () => {
  const { server, node } = await graph();
  await using _s = server;
  await using _n = node;
  const rows: Row[] = [
    ["capacity", 0, int(64, 2 ** 30)],
    ["capacity", 63, int(64, 2 ** 30)],
    ["capacity", 2 ** 30 + 1, int(64, 2 ** 30)],
    ["capacity", 4096.5, int(64, 2 ** 30)],
    ["capacity", "4096", int(64, 2 ** 30)],
    ["timeout", -1, TIMEOUT],
    ["timeout", Number.NaN, TIMEOUT],
    ["timeout", "5", TIMEOUT],
    ["transport", "udp", TRANSPORT],
    ["transport", 1, TRANSPORT],
    ["tcp", 5, "false or an object { host, port, tls, allowInsecure }"],
    ["tcp", null, "false or an object { host, port, tls, allowInsecure }"],
    ["tcp", true, "false or an object { host, port, tls, allowInsecure }"],
    ["tcp.host", "", "a non-empty string"],
    ["tcp.host", 127, "a non-empty string"],
    ["tcp.port", -1, int(0, 65535)],
    ["tcp.port", 65536, int(0, 65535)],
    ["tcp.tls", "yes", CERTS],
    ["tcp.allowInsecure", "yes", BOOL],
  ];
  const warnings = await warningsDuring(() => refuses("node.publisher", rows, (o) => node.publisher("p", o)));
  assert.deepEqual(warnings, []);
  await assert.rejects(node.publisher("p", 5 as never), /node\.publisher: the options must be an object, got 5/);
  assert.deepEqual((await node.snapshot()).publishers, []);
  // good values
  await using pub = await node.publisher<number>("p", { capacity: 4096, timeout: 0, transport: "tcp", tcp: { host: "127.0.0.1", port: 0, allowInsecure: false } });
  await using sub = await node.subscriber<number>("p", { transport: "tcp" });
  while (pub.subscribers === 0) await new Promise((r) => setTimeout(r, 5));
  await pub.publish(7);
  assert.equal((await sub.receive({ timeout: 5000 }))?.value, 7);
  await (await node.publisher("p", { capacity: 64, transport: "inproc" })).close();
  await (await node.publisher("p", { capacity: 2 ** 30, tcp: false, transport: "inproc", timeout: Infinity })).close();
});

test("options: node.subscriber", async () => {
  const { server, node } = await graph();
  await using _s = server;
  await using _n = node;
  const rows: Row[] = [
    ["backpressure", "nope", POLICY],
    ["backpressure", "toString", POLICY],
    ["backpressure", 1, POLICY],
    ["queue", 0, int(1, 2 ** 31 - 1)],
    ["queue", 1.5, int(1, 2 ** 31 - 1)],
    ["queue", "16", int(1, 2 ** 31 - 1)],
    ["transport", "udp", TRANSPORT],
    ["transport", "thread", TRANSPORT],
    ["tls", "yes", CERTS],
    ["tls", null, CERTS],
    ["timeout", -1, TIMEOUT],
    ["timeout", Number.NaN, TIMEOUT],
    ["timeout", "100", TIMEOUT],
    ["spinMicros", "fast", SPIN],
    ["spinMicros", -1, SPIN],
    ["spinMicros", 1_000_001, SPIN],
    ["spinMicros", Infinity, SPIN],
    ["adaptiveSpin", "no", BOOL],
    ["adaptiveSpin", 0, BOOL],
  ];
  await refuses("node.subscriber", rows, (o) => node.subscriber("s", o));
  assert.deepEqual((await node.snapshot()).subscribers, [], "nothing was registered");
  // good values: a subscriber in another "process" (shm) with every option set receives
  await using pub = await node.publisher<number>("s", { transport: "shm" });
  await using sub = await node.subscriber<number>("s", { backpressure: "drop-oldest", queue: 4, transport: "shm", timeout: 5000, spinMicros: 0.5, adaptiveSpin: false, tls: {} });
  while (pub.subscribers === 0) await new Promise((r) => setTimeout(r, 5));
  await pub.publish(3);
  assert.equal((await sub.receive())?.value, 3);
});

// ---- request/response ---------------------------------------------------------------------------

test("options: node.server and node.client", async () => {
  const { server, node } = await graph();
  await using _s = server;
  await using _n = node;
  const tcp = "false or an object { host, port, tls, allowInsecure, heartbeat, peerTimeout }";
  const serverRows: Row[] = [
    ["inPlace", "yes", BOOL],
    ["transport", "udp", TRANSPORT],
    ["capacity", 4095, int(4096, 2 ** 30)],
    ["capacity", 2 ** 30 + 1, int(4096, 2 ** 30)],
    ["maxMessageSize", 63, int(64, 2 ** 31)],
    ["timeout", -1, TIMEOUT],
    ["tcp", 5, tcp],
    ["tcp.host", 5, "a non-empty string"],
    ["tcp.port", -1, int(0, 65535)],
    ["tcp.tls", "x", CERTS],
    ["tcp.allowInsecure", 1, BOOL],
    ["tcp.heartbeat", 0, MS],
    ["tcp.peerTimeout", 2 ** 31, MS],
    ["spinMicros", -1, SPIN],
    ["maxConcurrent", 0, int(1, 1 << 20)],
    ["maxClients", 0, int(1, 1 << 20)],
  ];
  await refuses("node.server", serverRows, (o) => node.server("svc", (x: number) => x, o));
  await assert.rejects(node.server("svc", "handler" as never), /node\.server: the handler must be a function, got "handler"/);
  const clientRows: Row[] = [
    ["maxInFlight", 0, int(1, 65536)],
    ["timeout", -1, TIMEOUT],
    ["transport", "udp", TRANSPORT],
    ["capacity", 4095, int(4096, 2 ** 30)],
    ["maxMessageSize", 2 ** 31 + 1, int(64, 2 ** 31)],
    ["tls", "x", CERTS],
    ["connectTimeout", -1, TIMEOUT],
    ["spinMicros", "fast", SPIN],
    ["heartbeat", 0, MS],
    ["peerTimeout", "1000", MS],
  ];
  await refuses("node.client", clientRows, (o) => node.client("svc", o));
  const snapshot = await node.snapshot();
  assert.deepEqual([snapshot.servers, snapshot.clients], [[], []]);
  // good values
  await using srv = await node.server<number, number>("svc", (x) => x + 1, {
    inPlace: false,
    transport: "tcp",
    capacity: 4096,
    maxMessageSize: 4096,
    timeout: 1000,
    tcp: { host: "127.0.0.1", port: 0, heartbeat: 500, peerTimeout: 5000 },
    spinMicros: 0,
    maxConcurrent: 1,
    maxClients: 1,
  });
  await using client = await node.client<number, number>("svc", { maxInFlight: 1, timeout: 5000, transport: "tcp", capacity: 4096, maxMessageSize: 4096, connectTimeout: 5000, spinMicros: 10, heartbeat: 500, peerTimeout: 5000 });
  assert.equal(await client.request(1), 2);
  assert.equal(srv.served, 1);
});

// ---- joining the graph --------------------------------------------------------------------------

test("options: connect() and GraphServer.start", async () => {
  const address = "tcp://host:port, tls://host:port or host:port (port 0..65535)";
  const connectRows: Row[] = [
    ["address", "nowhere", address],
    ["address", "127.0.0.1:70000", address],
    ["address", "", "a non-empty string"],
    ["address", 25978, "a non-empty string"],
    ["token", 12345678, "a string"],
    ["tls", "yes", "an object of TLS options"],
    ["embedded", "no", BOOL],
    ["name", 5, "a string"],
    ["timeout", -1, TIMEOUT],
    ["signal", "stop", SIGNAL],
    ["reconnect", -1, TIMEOUT],
  ];
  // Nothing listens at this address: a check that came after connecting would fail differently.
  await refuses("connect", connectRows, (o) => connect(o), { address: "127.0.0.1:9", embedded: false });
  const serverRows: Row[] = [
    ["host", "", "a non-empty string"],
    ["port", -1, int(0, 65535)],
    ["port", 65536, int(0, 65535)],
    ["tls", "yes", "an object of TLS options"],
    ["token", "short", "a string of at least 8 characters"],
    ["token", 12345678, "a string of at least 8 characters"],
    ["notifyTimeout", 0, MS],
  ];
  await refuses("GraphServer.start", serverRows, (o) => GraphServer.start(o), { port: 0 });
  // good values
  await using server = await GraphServer.start({ host: "127.0.0.1", port: 0, token: "12345678", notifyTimeout: 1000 });
  await using node = await connect({ address: `tcp://127.0.0.1:${server.address.port}`, token: "12345678", embedded: false, name: "n", timeout: 5000, signal: new AbortController().signal, reconnect: 0 });
  assert.equal((await node.snapshot()).nodes.length, 1);
  await assert.rejects(node.connect("a", "b", { persistent: "yes" as never }), /^InvalidArgumentError: node\.connect: option "persistent" must be true or false, got "yes"$/);
  await node.connect("a", "b", { persistent: false });
});

// ---- queues -------------------------------------------------------------------------------------

test("options: queue.server and queue.client", async () => {
  const url = "a URL such as tcp://127.0.0.1:51966 (tcp://, tls://, mqtt://host:port/name, mqtts://, grpc://, grpcs://)";
  const common: Row[] = [
    ["url", "nowhere", url],
    ["url", 5, url],
    ["url", "http://127.0.0.1:1", url],
    ["mode", "slow", 'one of "fast", "reliable"'],
    ["tls", 5, CERTS],
    ["allowInsecure", "yes", BOOL],
    ["slots", 0, int(1, 1024)],
    ["maxMessage", 15, int(16, 0xffffffff)],
    ["maxQueue", 0, int(1, 2 ** 31 - 1)],
    ["maxQueueBytes", 15, int(16, Number.MAX_SAFE_INTEGER)],
    ["maxPending", -1, int(0, 2 ** 31 - 1)],
    ["timeout", -1, TIMEOUT],
    ["heartbeat", 0, MS],
    ["peerTimeout", Infinity, MS],
    ["reconnectWindow", -5, MS],
    ["linger", "10", LINGER],
  ];
  const serverRows: Row[] = [
    ...common,
    ["maxClients", 0, int(1, 65536)],
    ["handshakeTimeout", 0, MS],
    ["idleTimeout", 0, MS],
    ["onPeerError", "log", FUNCTION],
  ];
  await refuses("queue.server", serverRows, (o) => queue.server(o as never), { url: "tcp://127.0.0.1:0" });
  const clientRows: Row[] = [
    ...common,
    ["url", "tcp://127.0.0.1", "a URL with a port (1..65535)"],
    ["identity", "xyz", "16 bytes (a Uint8Array) or 32 hex digits"],
    ["identity", new Uint8Array(3), "16 bytes (a Uint8Array) or 32 hex digits"],
    ["connectTimeout", -1, TIMEOUT],
    ["signal", {}, SIGNAL],
  ];
  await refuses("queue.client", clientRows, (o) => queue.client(o as never), { url: "tcp://127.0.0.1:9" });
  await assert.rejects(queue.server(undefined as never), /queue\.server: the options \{ url, \.\.\. \} are required/);
  // good values
  await using srv = await queue.server({ url: "tcp://127.0.0.1:0", mode: "reliable", slots: 2, maxClients: 4, handshakeTimeout: 1000, idleTimeout: 60_000, onPeerError: () => {}, linger: 100 });
  await using client = await queue.client({ url: srv.url, mode: "fast", identity: "0123456789abcdef0123456789abcdef", connectTimeout: 5000, signal: new AbortController().signal, linger: 100 });
  await client.put("hello");
  const msg = await srv.get({ timeout: 5000 });
  assert.equal(msg.value, "hello");
  msg.release();
});

// ---- transports ---------------------------------------------------------------------------------

test("options: the transports' senders and receivers", async () => {
  const ring: Row[] = [
    ["capacity", 0, int(1, 2 ** 30)],
    ["capacity", 2 ** 30 + 1, int(1, 2 ** 30)],
    ["capacity", 1.5, int(1, 2 ** 30)],
    ["maxReceivers", 0, int(1, 256)],
    ["maxReceivers", 257, int(1, 256)],
    ["timeout", -1, TIMEOUT],
  ];
  await refuses("InprocSender.create", ring, (o) => InprocSender.create(o));
  await refuses("ThreadSender.create", ring, (o) => ThreadSender.create(o));
  await refuses("ShmSender.create", ring, (o) => ShmSender.create(o));
  const receiver: Row[] = [
    ["backpressure", "nope", POLICY],
    ["spinMicros", -1, SPIN],
    ["adaptiveSpin", "yes", BOOL],
    ["timeout", Number.NaN, TIMEOUT],
  ];
  const inproc = InprocSender.create();
  await refuses("connectInproc", receiver, (o) => connectInproc(inproc, o));
  assert.equal(inproc.receivers, 0);
  await inproc.close();
  // Checked before the endpoint's descriptors are used: these are not real.
  const endpoint = { kind: "thread", buffer: new SharedArrayBuffer(8), wakeFd: -1, writerFd: -1 } as unknown as ThreadEndpoint;
  await refuses("connectThread", receiver, (o) => connectThread(endpoint, o));
  // Checked before connecting: nothing is there.
  const shm = { kind: "shm", name: "/plexus-0-none", socket: "\0plexus-0-none" } as const;
  await refuses("connectShm", [...receiver, ["connectTimeout", -1, TIMEOUT], ["signal", "x", SIGNAL]], (o) => connectShm(shm, o));
  const tcpAddress = { kind: "tcp", host: "127.0.0.1", port: 9, tls: false } as const;
  await refuses(
    "connectTcp",
    [
      ...receiver,
      ["tls", 5, "true, false or an object of certificate options"],
      ["allowInsecure", "yes", BOOL],
      ["connectTimeout", -1, TIMEOUT],
      ["signal", "x", SIGNAL],
      ["maxMessage", -1, int(0, 2 ** 32 - 1)],
      ["heartbeat", 0, MS],
      ["peerTimeout", 0, MS],
    ],
    (o) => connectTcp(tcpAddress, o),
  );
  await refuses(
    "TcpSender.create",
    [
      ["host", "", "a non-empty string"],
      ["port", 65536, int(0, 65535)],
      ["tls", "x", CERTS],
      ["allowInsecure", 1, BOOL],
      ["capacity", 63, int(64, 2 ** 30)],
      ["maxMessage", 1 << 20, int(0, (1 << 20) - 16)],
      ["maxReceivers", 0, int(1, 65536)],
      ["timeout", -1, TIMEOUT],
      ["heartbeat", 0, MS],
      ["peerTimeout", 0, MS],
      ["handshakeTimeout", 0, MS],
      ["linger", -1, LINGER],
      ["onPeerError", "log", FUNCTION],
    ],
    (o) => TcpSender.create(o),
  );
  // good values
  const sender = ShmSender.create({ capacity: 5000, maxReceivers: 2, timeout: 100 });
  const rx = await connectShm(sender.address, { backpressure: "fail", spinMicros: 1, adaptiveSpin: false, timeout: 1000, connectTimeout: 1000 });
  assert.ok(sender.trySend(new Uint8Array([1, 2])));
  const frame = await rx.receive();
  assert.deepEqual([...(frame?.bytes ?? [])], [1, 2]);
  frame?.release();
  await rx.close();
  await sender.close();
  const tcpSender = await TcpSender.create({ host: "127.0.0.1", port: 0, capacity: 64, maxMessage: 48, maxReceivers: 1, heartbeat: 100, linger: 100, onPeerError: () => {} });
  const tcpRx = await connectTcp(tcpSender.address, { backpressure: "drop-oldest", maxMessage: 48, connectTimeout: 1000, heartbeat: 100 });
  await tcpRx.close();
  await tcpSender.close();
});

// ---- ZeroBuffer ---------------------------------------------------------------------------------

test("options: ZeroBuffer readers, writers and duplex channels", async () => {
  const name = uniqueName("opts");
  const sizes: Row[] = [
    ["payloadSize", 0, int(17, MAX_SIZE)],
    ["payloadSize", 2 ** 40 + 1, int(17, MAX_SIZE)],
    ["payloadSize", "1024", int(17, MAX_SIZE)],
    ["metadataSize", -1, int(0, MAX_SIZE)],
    ["metadataSize", 1.5, int(0, MAX_SIZE)],
  ];
  const reader: Row[] = [...sizes, ["timeout", -1, TIMEOUT], ["spinMicros", "fast", SPIN], ["anticipate", "yes", BOOL]];
  await refuses("Reader.create", reader, (o) => Reader.create(name, o));
  await refuses(
    "Writer.connect",
    [
      ["timeout", -1, TIMEOUT],
      ["writeTimeout", "5", TIMEOUT],
      ["signal", "x", SIGNAL],
    ],
    (o) => Writer.connect(name, o),
  );
  const handlerRows: Row[] = [
    ["onInit", "x", FUNCTION],
    ["onError", 5, FUNCTION],
  ];
  await refuses("DuplexServer.create", [...reader, ["connectTimeout", -1, TIMEOUT], ["writeTimeout", -1, TIMEOUT], ...handlerRows], (o) => DuplexServer.create(name, () => {}, o));
  await refuses(
    "DuplexClient.connect",
    [
      ["timeout", -1, TIMEOUT],
      ["metadata", "meta", BYTES],
      ["responsePayloadSize", 16, int(17, MAX_SIZE)],
      ["responseMetadataSize", -1, int(0, MAX_SIZE)],
      ["spinMicros", -1, SPIN],
      ["anticipate", 1, BOOL],
      ["signal", "x", SIGNAL],
    ],
    (o) => DuplexClient.connect(name, o),
  );
  await refuses(
    "InPlaceServer.create",
    [
      ["payloadSize", 16, int(33, MAX_SIZE)],
      ["metadataSize", -1, int(0, MAX_SIZE)],
      ["drainTimeout", -1, TIMEOUT],
      ["spinMicros", 2e6, SPIN],
      ...handlerRows,
    ],
    (o) => InPlaceServer.create(name, () => {}, o),
  );
  await refuses(
    "InPlaceClient.connect",
    [
      ["timeout", -1, TIMEOUT],
      ["metadata", [1, 2], BYTES],
      ["spinMicros", -1, SPIN],
      ["signal", "x", SIGNAL],
    ],
    (o) => InPlaceClient.connect(name, o),
  );
  // good values
  await using r = await Reader.create(name, { payloadSize: 4096, metadataSize: 0, timeout: 1000, spinMicros: 0, anticipate: false });
  await using w = await Writer.connect(name, { timeout: 1000, writeTimeout: 1000, signal: new AbortController().signal });
  await w.write(new Uint8Array([9]));
  const frame = await r.read();
  assert.deepEqual([...frame.data], [9]);
  frame.release();
});

// ---- the dashboard ------------------------------------------------------------------------------

test("options: Dashboard.start", async () => {
  await using server = await GraphServer.start({ port: 0 });
  const source = "a GraphServer or an object with snapshot() and stats()";
  const rows: Row[] = [
    ["source", 5, source],
    ["source", {}, source],
    ["graphAddress", "nowhere", "the GraphServer's address (tcp://host:port, tls://host:port or host:port)"],
    ["graphToken", 5, "a string"],
    ["graphTls", "x", "an object of TLS options"],
    ["host", "", "a non-empty string"],
    ["port", -1, int(0, 65535)],
    ["token", "short", "a string of at least 8 characters"],
    ["interval", 0, MS],
  ];
  await refuses("Dashboard.start", rows, (o) => Dashboard.start(o as never), { source: server, graphAddress: `127.0.0.1:${server.address.port}` });
  // good values
  await using dash = await Dashboard.start({ source: server, graphAddress: `127.0.0.1:${server.address.port}`, port: 0, token: "12345678", interval: 1000 });
  assert.match(dash.url, /\?token=12345678$/);
});
