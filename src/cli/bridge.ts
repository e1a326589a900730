/**
 * `plexus bridge`: a bridge between the local graph and a NATS cluster, in the foreground
 * (docs/scale-out.md); its options are also `plexus serve`'s `--nats …`.
 * @module
 */
import type { Command } from "commander";
import { Bridge, type BridgeOptions } from "../bridge/index.js";
import type { NatsOptions } from "../bridge/types.js";
import { action, addressOf, clientTls, clientToken, intArg, palette, readArgFile, usageError, type AddressOptions } from "./common.js";

/** The options `bridge` and `serve --nats` share. */
export interface BridgeCliOptions {
  nats?: string;
  export?: string[];
  import?: string[];
  deny?: string[];
  name?: string;
  prefix?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  natsUser?: string;
  natsNkey?: string;
  capacity?: string;
  maxMessage?: string;
  backpressure?: string;
  /** False with `--no-batch`. */
  batch?: boolean;
  announceInterval?: string;
  exportQueue?: string[];
  importQueue?: string[];
  queueDelivery?: string;
  queueReplicas?: string;
}

const collect = (v: string, all: string[] | undefined): string[] => [...(all ?? []), v];

/** Adds the bridge's options to `cmd` (`--nats` is required by `bridge`, optional for `serve`). */
export function bridgeOptions(cmd: Command): Command {
  return cmd
    .option("--export <pattern>", "local topics and services to send to NATS (repeatable; `*` one segment, `>` the rest)", collect)
    .option("--import <pattern>", "remote topics and services to receive from NATS (repeatable)", collect)
    .option("--deny <pattern>", "never bridge these, either way (repeatable)", collect)
    .option("--name <name>", "this graph's name on NATS (default: host name and GraphServer port)")
    .option("--prefix <prefix>", "subject prefix (default: plexus)")
    .option("--nats-ca <file>", "CA (PEM) that signed the NATS servers' certificates")
    .option("--nats-cert <file>", "client certificate (PEM) for NATS servers that ask for one")
    .option("--nats-key <file>", "its private key (PEM)")
    .option("--nats-user <user>", "NATS user (the password from PLEXUS_NATS_PASS)")
    .option("--nats-nkey <file>", "file holding an nkey seed to sign in with")
    .option("--capacity <bytes>", "ring of each publisher held for a remote topic (default 4 MiB; the largest message is half)")
    .option("--max-message <bytes>", "largest message bridged (default: half the capacity)")
    .option("--backpressure <policy>", "when NATS cannot keep up with an exported topic: drop-oldest (default), block, fail")
    .option("--no-batch", "send every message as a NATS message of its own, not in batches (while bridges of an older Plexus still receive this graph's topics)")
    .option("--announce-interval <ms>", "ms between announcements of this graph; a graph silent for three is gone (default 1000)")
    .option("--export-queue <name=url>", "a queue server at url whose puts go to the queue's JetStream stream (repeatable)", collect)
    .option("--import-queue <name=url>", "put what the queue's stream holds into the queue server at url (repeatable)", collect)
    .option("--queue-delivery <mode>", "exported queues: a put resolves when stored (fast, default) or when the consumer released it (reliable)")
    .option("--queue-replicas <n>", "replicas of a queue's stream when the bridge creates it (default 1)");
}

/** The bridge's options from the command line (a usage error for a bad one); the token comes from PLEXUS_NATS_TOKEN. */
export function bridgeSettings(opts: BridgeCliOptions, graphAddress: string): BridgeOptions {
  if (opts.nats === undefined) throw usageError("--nats <url> is required (nats://host:4222, comma-separated for several servers)");
  if ((opts.natsCert === undefined) !== (opts.natsKey === undefined)) throw usageError("--nats-cert and --nats-key go together");
  const text = (file: string | undefined, flag: string): string | undefined => (file === undefined ? undefined : readArgFile(file, flag).toString("utf8").trim());
  const tls = opts.natsCa !== undefined || opts.natsCert !== undefined ? { ca: text(opts.natsCa, "--nats-ca"), cert: text(opts.natsCert, "--nats-cert"), key: text(opts.natsKey, "--nats-key") } : undefined;
  const nats: NatsOptions = {
    servers: opts.nats,
    ...(tls ? { tls: Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) } : {}),
    ...(opts.natsUser !== undefined ? { user: opts.natsUser, pass: process.env.PLEXUS_NATS_PASS ?? "" } : {}),
    ...(process.env.PLEXUS_NATS_TOKEN ? { token: process.env.PLEXUS_NATS_TOKEN } : {}),
    ...(opts.natsNkey !== undefined ? { nkeySeed: text(opts.natsNkey, "--nats-nkey") } : {}),
  };
  const backpressure = opts.backpressure;
  if (backpressure !== undefined && !["block", "drop-oldest", "fail"].includes(backpressure)) throw usageError(`--backpressure must be block, drop-oldest or fail, got ${JSON.stringify(backpressure)}`);
  const delivery = opts.queueDelivery as "fast" | "reliable" | undefined;
  if (delivery !== undefined && delivery !== "fast" && delivery !== "reliable") throw usageError(`--queue-delivery must be fast or reliable, got ${JSON.stringify(delivery)}`);
  const replicas = opts.queueReplicas === undefined ? undefined : intArg(opts.queueReplicas, "--queue-replicas", 1, 5);
  const queues = (["export", "import"] as const).flatMap((direction) =>
    ((direction === "export" ? opts.exportQueue : opts.importQueue) ?? []).map((arg) => {
      const eq = arg.indexOf("=");
      if (eq <= 0 || eq === arg.length - 1) throw usageError(`--${direction}-queue takes name=url, got ${JSON.stringify(arg)}`);
      return { name: arg.slice(0, eq), direction, url: arg.slice(eq + 1), ...(delivery !== undefined ? { delivery } : {}), ...(replicas !== undefined ? { replicas } : {}) };
    }),
  );
  if ((opts.export ?? []).length === 0 && (opts.import ?? []).length === 0 && queues.length === 0) throw usageError("nothing to bridge: give --export and/or --import patterns (`>` for everything), or queues");
  return {
    nats,
    export: opts.export ?? [],
    import: opts.import ?? [],
    deny: opts.deny ?? [],
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
    ...(opts.capacity !== undefined ? { capacity: intArg(opts.capacity, "--capacity", 64 << 10) } : {}),
    ...(opts.maxMessage !== undefined ? { maxMessage: intArg(opts.maxMessage, "--max-message", 1024) } : {}),
    ...(backpressure !== undefined ? { backpressure: backpressure as "block" | "drop-oldest" | "fail" } : {}),
    ...(opts.batch === false ? { batch: false } : {}),
    queues,
    ...(opts.announceInterval !== undefined ? { announceInterval: intArg(opts.announceInterval, "--announce-interval", 100, 600_000) } : {}),
    graph: { address: graphAddress, embedded: false, token: clientToken(), tls: clientTls() },
  };
}

/** Starts a bridge and prints what happens to it (remote graphs joining and leaving, failures, at most one line a second each). */
export async function startBridge(settings: BridgeOptions): Promise<Bridge> {
  const bridge = await Bridge.start(settings);
  const c = palette();
  const e = palette(process.stderr);
  let lastError = 0;
  let quiet = 0;
  bridge.on("host-join", (h) => console.log(`${c.green("joined")}: ${h.origin} (${h.hostnames.join(", ")}): ${h.topics.length} topic(s), ${h.services.length} service(s)`));
  bridge.on("host-leave", (origin) => console.log(`${c.yellow("left")}: ${origin}`));
  bridge.on("reconnect", (r) => console.log(`reconnected to NATS (${r.server})`));
  bridge.on("error", (err) => {
    const now = Date.now();
    if (now - lastError < 1000) {
      quiet++;
      return;
    }
    lastError = now;
    process.stderr.write(`${e.yellow("bridge:")} ${err.message} [${err.code}]${quiet > 0 ? ` (and ${quiet} more)` : ""}\n`);
    quiet = 0;
  });
  console.log(`bridge ${c.bold(bridge.name)} on NATS; exporting ${JSON.stringify(settings.export ?? [])}, importing ${JSON.stringify(settings.import ?? [])}`);
  return bridge;
}

/** `plexus bridge`. */
export function bridgeCommand(cli: Command): void {
  bridgeOptions(cli.command("bridge"))
    .description("bridge the local graph and a NATS cluster: topics and services across hosts (Ctrl-C stops it)")
    .option("--nats <urls>", "NATS server URL(s), comma-separated (nats://host:4222, tls://host:4222)")
    .option("-a, --address <host:port>", "the local GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("bridge", async (opts: BridgeCliOptions & AddressOptions) => {
        const bridge = await startBridge(bridgeSettings(opts, addressOf(opts)));
        await new Promise<void>((resolve) => {
          process.once("SIGINT", resolve);
          process.once("SIGTERM", resolve);
        });
        await bridge.close();
      }),
    );
}
