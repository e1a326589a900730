/**
 * The ports the fuzzer aims at, how valid traffic to each is captured (real clients of the
 * project through a recording relay), and the honest clients that must keep working meanwhile.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { connect, connectShm, connectTcp, queue, type Client, type Node, type QueueClient, type Receiver } from "../../src/index.js";
import { record, recordExact, redirect, type Capture, type Endpoint } from "./capture.js";
import type { TargetPorts, TargetReply, TargetRequest } from "./fuzz-target.js";
import { checkItem, makeItem, payloadFor, type Item } from "./payload.js";

export const TARGETS = ["graph", "transport-tcp", "transport-shm", "rpc-tcp", "rpc-shm", "queue"] as const;
export type TargetName = (typeof TARGETS)[number];

/** Where each target listens. */
export function endpoints(p: TargetPorts): Record<TargetName, Endpoint> {
  return {
    graph: { port: p.graph },
    "transport-tcp": { port: p.transportTcp.port },
    "transport-shm": { path: p.transportShm.socket, exact: true },
    "rpc-tcp": { port: p.rpcTcp },
    "rpc-shm": { path: p.rpcShmSocket },
    queue: { port: p.queue },
  };
}

export type Ask = (req: TargetRequest) => Promise<TargetReply>;

async function quietly(what: () => Promise<unknown>): Promise<void> {
  try {
    await what();
  } catch {
    // a capture only needs what the client wrote, whatever became of it
  }
}

/** Runs real clients of every protocol through recording relays; returns what they wrote, per target. */
export async function captureAll(p: TargetPorts, ask: Ask): Promise<Map<TargetName, Capture[]>> {
  const ep = endpoints(p);
  const out = new Map<TargetName, Capture[]>();
  const keep = async (name: TargetName, run: (at: Endpoint) => Promise<void>): Promise<void> => {
    const rec = name === "transport-shm" ? recordExact(name) : await record(name, ep[name]);
    await quietly(() => run(rec.at));
    await sleep(50);
    await rec.close();
    out.set(name, [...(out.get(name) ?? []), ...rec.captures()]);
  };
  const port = (at: Endpoint): number => (at as { port: number }).port;
  for (let round = 0; round < 2; round++) {
    await keep("graph", async (at) => {
      const n = await connect({ address: `127.0.0.1:${port(at)}`, embedded: false });
      const pub = await n.publisher(`fuzz/capture${round}`);
      const sub = await n.subscriber(`fuzz/capture${round}`);
      await n.snapshot();
      await pub.publish({ round });
      await sub.close();
      await n.close();
    });
    await keep("transport-tcp", async (at) => {
      const rx = await connectTcp({ ...p.transportTcp, port: port(at) });
      for (let i = 0; i <= round; i++) {
        await ask({ op: "send", id: `capture:${i}`, size: 100 * (i + 1) });
        (await rx.receive({ timeout: 5000 }))?.release();
      }
      await rx.close();
    });
    await keep("transport-shm", async (at) => {
      const rx = await connectShm({ ...p.transportShm, socket: (at as { path: string }).path }, { timeout: 2000 });
      await rx.close();
    });
    await keep("queue", async (at) => {
      const c = await queue.client({ url: `tcp://127.0.0.1:${port(at)}` });
      for (let i = 0; i <= round; i++) {
        await c.put(makeItem(`capture:${i}`, 50 + 500 * i), { timeout: 5000 });
        (await c.get({ timeout: 5000 })).release();
      }
      await c.close();
    });
    for (const [name, transport] of [["rpc-tcp", "tcp"], ["rpc-shm", "shm"]] as const) {
      const rec = await record(name, ep[name]);
      const undo = redirect(new Map<number | string, Endpoint>([[name === "rpc-tcp" ? p.rpcTcp : p.rpcShmSocket, rec.at]]));
      await quietly(async () => {
        const n = await connect({ address: `127.0.0.1:${p.graph}`, embedded: false });
        try {
          const c = await n.client<Item, Item>(p.service, { transport, timeout: 3000 });
          for (let t = 0; t < 200 && c.servers.length === 0; t++) await sleep(10);
          for (let i = 0; i <= round; i++) await c.request(makeItem(`capture:${i}`, 64 + 1000 * i));
        } finally {
          undo();
          await n.close();
        }
      });
      undo();
      await sleep(50);
      await rec.close();
      out.set(name, [...(out.get(name) ?? []), ...rec.captures()]);
    }
  }
  return out;
}

/** The honest clients: each operation must succeed whatever the fuzzer does beside it. */
export interface Honest {
  /** Runs one round of every operation; returns the failures (operation: message). */
  round(k: number): Promise<string[]>;
  close(): Promise<void>;
}

export async function honestClients(p: TargetPorts, ask: Ask): Promise<Honest> {
  const node: Node = await connect({ address: `127.0.0.1:${p.graph}`, embedded: false });
  const rpc: Record<"shm" | "tcp", Client<Item, Item>> = {
    shm: await node.client<Item, Item>(p.service, { transport: "shm" }),
    tcp: await node.client<Item, Item>(p.service, { transport: "tcp" }),
  };
  for (let t = 0; t < 500 && (rpc.shm.servers.length === 0 || rpc.tcp.servers.length === 0); t++) await sleep(10);
  const q: QueueClient = await queue.client({ url: `tcp://127.0.0.1:${p.queue}` });
  const tcpRx: Receiver = await connectTcp(p.transportTcp);
  const shmRx: Receiver = await connectShm(p.transportShm);
  const check = (v: unknown, id: string): void => {
    const c = checkItem(v);
    if (!c.ok || c.id !== id) throw new Error(`wrong answer for ${id}: ${c.id}`);
  };
  const ops: [string, (k: number) => Promise<void>][] = [
    ["graph", async () => {
      const s = await node.snapshot();
      if (!s.servers.some((x) => x.service === p.service)) throw new Error("the service is missing from the snapshot");
    }],
    ["rpc-shm", async (k) => check(await rpc.shm.request(makeItem(`h:${k}`, 200), { timeout: 10000 }), `h:${k}`)],
    ["rpc-tcp", async (k) => check(await rpc.tcp.request(makeItem(`h:${k}`, 3000), { timeout: 10000 }), `h:${k}`)],
    ["queue", async (k) => {
      await q.put(makeItem(`h:${k}`, 500), { timeout: 10000 });
      const m = await q.get({ timeout: 10000 });
      check(m.value, `h:${k}`);
      m.release();
    }],
    ["transport", async (k) => {
      const r = await ask({ op: "send", id: `h:${k}`, size: 700 });
      if (r.op !== "sent") throw new Error(`target could not send: ${r.op === "error" ? r.message : r.op}`);
      const want = payloadFor(`h:${k}`, 700);
      for (const rx of [tcpRx, shmRx]) {
        const f = await rx.receive({ timeout: 10000 });
        if (!f) throw new Error("a transport receiver ended");
        const same = f.bytes.length === want.length && f.bytes.every((b, i) => b === want[i]);
        f.release();
        if (!same) throw new Error("a transport message differs from what was sent");
      }
    }],
  ];
  return {
    async round(k) {
      const failures: string[] = [];
      for (const [name, op] of ops) {
        try {
          await op(k);
        } catch (e) {
          failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      return failures;
    },
    async close() {
      await tcpRx.close();
      await shmRx.close();
      await q.close();
      await node.close();
    },
  };
}

/** Number of honest operations in one round. */
export const HONEST_OPS = 5;
