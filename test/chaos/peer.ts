// A chaos participant: one process playing one role of a pattern. argv[2] = JSON PeerArgs.
// It prints "ready" once it can work, logs every message it receives (before releasing it)
// and every operation it started (after it settled) to its ledger, and obeys its stdin:
// "stop" ends new operations and prints "settled" once every started one settled; "close"
// closes it cleanly and exits 0. It exits when its stdin ends (the driver is gone). With
// `memEvery` it prints "mem <json>" samples of its own memory and descriptors.
import { readdirSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { connect, queue, PlexusError, type Node, type QueueClient, type QueueServer } from "../../src/index.js";
import { LedgerWriter } from "./ledger.js";
import { checkItem, makeItem, SIZES, type Item } from "./payload.js";

/** What the driver tells a participant. */
export interface PeerArgs {
  role: "pub" | "sub" | "rpc-server" | "rpc-client" | "q-server" | "q-client";
  /** This incarnation's name: its ledger is `<ledger>/<tag>.log`, its message ids `<tag>:<n>`. */
  tag: string;
  ledger: string;
  /** GraphServer address (pub/sub, rpc). */
  graph?: string;
  name?: string;
  transport?: "shm" | "tcp";
  /** TLS material: a server or publisher uses key and cert, a client verifies with ca. */
  tls?: { ca: string; key: string; cert: string };
  /** Queue URL, mode, identity. */
  url?: string;
  mode?: "fast" | "reliable";
  identity?: string;
  /** Operations kept in flight. */
  inFlight?: number;
  /** Most operations started per second (0: no limit). */
  rate?: number;
  /** Timeout of each operation (ms). */
  timeout?: number;
  memEvery?: number;
}

const args = JSON.parse(process.argv[2] as string) as PeerArgs;
const ledger = new LedgerWriter(`${args.ledger}/${args.tag}.log`);
const say = (s: string): void => void writeSync(1, `${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const timeout = args.timeout ?? 15000;
let stopped = false;
let counter = 0;
const nextItem = (): Item => {
  counter++;
  return makeItem(`${args.tag}:${counter}`, SIZES[counter % SIZES.length] as number);
};
const codeOf = (e: unknown): string => (e instanceof PlexusError ? e.code : `plain:${String(e).slice(0, 40).replace(/\s/g, "_")}`);

/** Paces operations to `rate` per second across all workers. */
let nextSlot = Date.now();
async function pace(): Promise<void> {
  if (!args.rate) return;
  const now = Date.now();
  nextSlot = Math.max(nextSlot + 1000 / args.rate, now);
  if (nextSlot > now) await sleep(nextSlot - now);
}

/** Runs `inFlight` workers of `op` until stopped; resolves when all ended. */
function workers(op: () => Promise<void>): Promise<void> {
  return Promise.all(
    Array.from({ length: args.inFlight ?? 4 }, async () => {
      while (!stopped) {
        await pace();
        if (!stopped) await op();
      }
    }),
  ).then(() => undefined);
}

function receive(v: unknown): void {
  const c = checkItem(v);
  ledger.got(c.id, c.ok);
}

let node: Node | undefined;
let qend: QueueServer | QueueClient | undefined;
let working: Promise<void> = Promise.resolve();

if (args.role === "pub" || args.role === "sub" || args.role === "rpc-server" || args.role === "rpc-client") {
  node = await connect({ address: args.graph, embedded: false });
}
const tlsServer = args.tls ? { key: args.tls.key, cert: args.tls.cert } : undefined;
const tlsClient = args.tls ? { ca: args.tls.ca } : undefined;
const tcpOpts = args.transport === "tcp" ? { tcp: { tls: tlsServer } } : {};

switch (args.role) {
  case "pub": {
    const pub = await node!.publisher<Item>(args.name!, { transport: args.transport, ...tcpOpts });
    say("ready");
    working = (async () => {
      while (!stopped) {
        await pace();
        try {
          await pub.publish(nextItem(), { timeout });
        } catch (e) {
          ledger.failed(`${args.tag}:${counter}`, codeOf(e));
        }
        if (counter % 32 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    break;
  }
  case "sub": {
    const sub = await node!.subscriber<Item>(args.name!, { transport: args.transport, tls: tlsClient, queue: 64 });
    say("ready");
    void (async () => {
      for await (const s of sub) receive(s.value);
    })();
    break;
  }
  case "rpc-server": {
    await node!.server<Item, { id: string; sum: number }>(
      args.name!,
      (req) => {
        receive(req);
        return { id: req.id, sum: req.sum };
      },
      { transport: args.transport, ...tcpOpts },
    );
    say("ready");
    break;
  }
  case "rpc-client": {
    const client = await node!.client<Item, { id: string; sum: number }>(args.name!, { transport: args.transport, tls: tlsClient, timeout });
    say("ready");
    working = workers(async () => {
      if (client.servers.length === 0) return sleep(10);
      const item = nextItem();
      try {
        const a = await client.request(item, { timeout });
        if (a.id === item.id && a.sum === item.sum) ledger.resolved(item.id);
        else ledger.wrong(item.id);
      } catch (e) {
        ledger.failed(item.id, codeOf(e));
        if (e instanceof PlexusError && e.code === "ERR_PLEXUS_NO_SERVER") await sleep(10);
      }
    });
    break;
  }
  case "q-server":
  case "q-client": {
    const common = { mode: args.mode, heartbeat: 100, peerTimeout: 1000, timeout, slots: args.mode === "reliable" ? 2 : 8 };
    // The server keeps a killed client's session 1 s; a client waits for a killed server to come
    // back for 10 s (a restarted server process may take longer than 1 s to listen again on a
    // loaded machine: a client that gave up would stall the pattern, as the docs say it does).
    const server = args.role === "q-server" ? await queue.server({ url: args.url!, tls: tlsServer, reconnectWindow: 1000, ...common }) : undefined;
    const client = args.role === "q-client" ? await queue.client({ url: args.url!, identity: args.identity, tls: tlsClient, reconnectWindow: 10000, ...common }) : undefined;
    qend = server ?? client!;
    say(client ? `ready ${client.id}` : "ready");
    void (async () => {
      for (;;) {
        let m;
        try {
          m = await qend.get();
        } catch (e) {
          if (!stopped) process.stderr.write(`get ended: ${codeOf(e)} ${e instanceof Error ? e.message : ""}\n`);
          return;
        }
        receive(m.value);
        m.release();
      }
    })();
    working = workers(async () => {
      let peers: string[] = [];
      if (server) {
        peers = server.peers;
        if (peers.length === 0) return sleep(20);
      }
      const item = nextItem();
      try {
        if (server) await server.put(item, { peers: [peers[counter % peers.length] as string], timeout });
        else await client!.put(item, { timeout });
        ledger.resolved(item.id);
      } catch (e) {
        ledger.failed(item.id, codeOf(e));
        if (e instanceof PlexusError && e.code !== "ERR_PLEXUS_TIMEOUT") await sleep(5);
      }
    });
    break;
  }
}

if (args.memEvery) {
  const sample = (): void => {
    const m = process.memoryUsage();
    say(`mem ${JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external, fds: readdirSync("/proc/self/fd").length })}`);
  };
  sample();
  setInterval(sample, args.memEvery).unref();
}

async function closeAll(): Promise<void> {
  stopped = true;
  setTimeout(() => process.exit(3), 15000).unref();
  await working;
  await qend?.close();
  await node?.close();
  ledger.close();
  process.exit(0);
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line === "stop") {
    stopped = true;
    void working.then(() => say("settled"));
  } else if (line === "close") void closeAll();
});
rl.on("close", () => process.exit(2));
setInterval(() => {}, 1 << 30);
