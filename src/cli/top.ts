/**
 * `plexus top`: a live table of topics (rate, bandwidth, subscribers, backpressure, drops) and
 * of request/response services (request rate, errors, in flight, round trip),
 * refreshed in place on a terminal; `--json` prints one JSON line per refresh for scripts.
 * @module
 */
import { Command } from "commander";
import type { GraphStats, ServiceStats, TopicStats } from "../graph/stats.js";
import type { RemoteGraphInfo, Snapshot } from "../graph/registry.js";
import { action, CliError, connectGraph, Exit, human, intArg, isUnreachable, numberArg, palette, type AddressOptions } from "./common.js";

/** The table `plexus top` prints. */
export function topTable(stats: GraphStats, color = palette({ isTTY: false } as NodeJS.WriteStream), remote?: RemoteGraphInfo[]): string {
  const head = ["TOPIC", "PUB", "SUB", "MSG/S", "BYTES/S", "RECV/S", "WAITS", "DROPS", "LINKS"];
  const rows = stats.topics.map((t: TopicStats) => {
    const kinds = new Map<string, number>();
    for (const l of t.links) kinds.set(l.transport, (kinds.get(l.transport) ?? 0) + 1);
    return [
      // Published by other graphs through a bridge: marked with those hosts.
      (t.remote ?? []).length > 0 ? `${t.topic} <- ${(t.remote ?? []).join(",")}` : t.topic,
      String(t.publishers),
      String(t.subscribers),
      human(t.rate),
      human(t.bandwidth, "B"),
      human(t.receiveRate),
      String(t.waits),
      String(t.drops),
      [...kinds].map(([k, n]) => `${k}x${n}`).join(" ") || "-",
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  const out = [color.bold(line(head))];
  stats.topics.forEach((t, i) => {
    const text = line(rows[i]);
    out.push(t.dropRate > 0 ? color.red(text) : t.waitRate > 0 ? color.yellow(text) : text);
  });
  if (rows.length === 0) out.push(color.dim("(no topics)"));
  const services = stats.services ?? [];
  if (services.length > 0) out.push("", serviceTable(services, color));
  if (remote !== undefined && remote.length > 0) out.push("", hostTable(remote, color));
  return `${out.join("\n")}\n`;
}

/** The other graphs joined through bridges: host, machines, what it offers. */
function hostTable(remote: RemoteGraphInfo[], color: ReturnType<typeof palette>): string {
  const byOrigin = new Map<string, RemoteGraphInfo>();
  for (const r of remote) if (!byOrigin.has(r.origin)) byOrigin.set(r.origin, r);
  const head = ["HOST", "MACHINES", "TOPICS", "SERVICES", "QUEUES"];
  const rows = [...byOrigin.values()].map((r) => [r.origin, r.hostnames.join(",") || "-", String(r.topics.length), String(r.services.length), r.queues.join(",") || "-"]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [color.bold(line(head)), ...rows.map(line)].join("\n");
}

/** The services part of the table: request rate, errors, in flight, mean round trip, link transports. */
function serviceTable(services: ServiceStats[], color: ReturnType<typeof palette>): string {
  const head = ["SERVICE", "SRV", "CLI", "REQ/S", "BYTES/S", "ERR/S", "ERRORS", "INFLIGHT", "RTT(ms)", "LINKS"];
  const rows = services.map((v) => {
    const kinds = new Map<string, number>();
    for (const l of v.links) kinds.set(l.transport, (kinds.get(l.transport) ?? 0) + 1);
    return [
      (v.remote ?? []).length > 0 ? `${v.service} -> ${(v.remote ?? []).join(",")}` : v.service,
      String(v.servers),
      String(v.clients),
      human(Math.max(v.rate, v.callRate)),
      human(v.bandwidth, "B"),
      human(v.errorRate),
      String(v.errors),
      String(v.inFlight),
      v.latency === null ? "-" : v.latency.toFixed(v.latency < 10 ? 3 : 1),
      [...kinds].map(([k, n]) => `${k}x${n}`).join(" ") || "-",
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  const out = [color.bold(line(head))];
  services.forEach((v, i) => out.push(v.errorRate > 0 ? color.red(line(rows[i])) : line(rows[i])));
  return out.join("\n");
}

/** The `top` command. */
export function topCommand(): Command {
  return new Command("top")
    .description("live table of topics (message rate, bandwidth, subscribers, backpressure waits, drops, link transports) and services (request rate, errors, in flight, round trip)")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .option("-i, --interval <ms>", "refresh period", "1000")
    .option("-n, --iterations <n>", "stop after n refreshes (default: until Ctrl-C)")
    .option("--json", "one JSON line per refresh (no screen control)")
    .action(
      action("top", async (opts: AddressOptions & { interval: string; iterations?: string; json?: boolean }) => {
        const interval = numberArg(opts.interval, "--interval", 50, 2 ** 31 - 1);
        const iterations = opts.iterations === undefined ? Infinity : intArg(opts.iterations, "--iterations", 1);
        const graph = await connectGraph(opts, "plexus top");
        const tty = process.stdout.isTTY === true && !opts.json;
        let stop = false;
        const quit = (): void => void (stop = true);
        process.once("SIGINT", quit);
        try {
          for (let i = 0; i < iterations && !stop; i++) {
            if (i > 0) await new Promise((r) => setTimeout(r, interval));
            if (stop) break;
            let stats: GraphStats;
            let remote: RemoteGraphInfo[] = [];
            try {
              stats = await graph.request<GraphStats>("stats");
              remote = (await graph.request<Snapshot>("snapshot")).remote ?? [];
            } catch (err) {
              if (isUnreachable(err) || (err as { code?: string }).code === "ERR_PLEXUS_PEER_DEAD") throw new CliError("the GraphServer went away", Exit.NoServer);
              throw err;
            }
            if (opts.json) process.stdout.write(`${JSON.stringify({ ...stats, remote })}\n`);
            else if (tty) process.stdout.write(`\x1b[H\x1b[2J${palette().dim(`plexus top  ${new Date(stats.at).toLocaleTimeString()}  (Ctrl-C quits)`)}\n${topTable(stats, palette(), remote)}`);
            else process.stdout.write(`${topTable(stats, undefined, remote)}\n`);
          }
        } finally {
          process.off("SIGINT", quit);
          await graph.close();
        }
      }),
    );
}
