/**
 * The `plexus` command tree: the GraphServer (serve, start, stop, status), looking at a running
 * graph (graph, top, pub, echo), the benchmark suite, the demo pipeline, and the
 * shared-memory tools (shm, zerobuffer). docs/cli.md describes every command.
 * @module
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { Command } from "commander";
import { sweepStaleSegments } from "../transport/shm.js";
import { native } from "../native.js";
import { zerobufferCommand } from "./zerobuffer.js";
import { addDaemonCommands } from "./daemon.js";
import { graphCommand } from "./graph.js";
import { topCommand } from "./top.js";
import { echoCommand, pubCommand } from "./pubecho.js";
import { benchCommand } from "./bench.js";
import { demoCommand } from "./demo.js";
import { runCommand } from "./run.js";
import { settingsCommand } from "./settings.js";
import { bridgeCommand } from "./bridge.js";
import { Exit } from "./common.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };

/** Builds the command tree (exported for tests). */
export function program(): Command {
  const cli = new Command("plexus")
    .description("Zero-copy messaging for TypeScript on Node.js")
    .version(pkg.version)
    .showHelpAfterError();
  addDaemonCommands(cli);
  cli.addCommand(graphCommand());
  cli.addCommand(topCommand());
  cli.addCommand(pubCommand());
  cli.addCommand(echoCommand());
  cli.addCommand(benchCommand());
  cli.addCommand(demoCommand());
  cli.addCommand(runCommand());
  cli.addCommand(settingsCommand());
  bridgeCommand(cli);
  const shm = cli.command("shm").description("shared-memory segments made by Plexus on this host");
  shm
    .command("list")
    .description("list segments with their size and whether their owner is alive")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const rows = listSegments();
      if (opts.json) console.log(JSON.stringify(rows));
      else if (rows.length === 0) console.log("no Plexus segments in /dev/shm");
      else for (const r of rows) console.log(`${r.name}\t${r.bytes}\t${r.alive ? "alive" : "stale"}`);
    });
  shm
    .command("sweep")
    .description("unlink segments whose owner process is gone")
    .action(() => {
      const removed = sweepStaleSegments();
      console.log(removed.length ? `removed ${removed.join(", ")}` : "nothing to remove");
    });
  cli.addCommand(zerobufferCommand());
  usageExits(cli);
  return cli;
}

/** Usage errors exit with 2 (help and version with 0), in every subcommand. */
function usageExits(cmd: Command): void {
  cmd.exitOverride((err) => {
    const ok = err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help";
    process.exit(ok ? Exit.Ok : err.exitCode === 0 ? Exit.Ok : Exit.Usage);
  });
  for (const c of cmd.commands) usageExits(c);
}

/** One segment in /dev/shm. */
interface SegmentRow {
  name: string;
  bytes: number;
  pid: number;
  alive: boolean;
}

function listSegments(): SegmentRow[] {
  let names: string[] = [];
  try {
    names = readdirSync("/dev/shm").filter((f) => f.startsWith("plexus-"));
  } catch {
    return [];
  }
  return names.map((name) => {
    const pid = Number(name.split("-")[1]);
    let bytes = 0;
    try {
      bytes = statSync(`/dev/shm/${name}`).size;
    } catch {
      // vanished meanwhile
    }
    return { name, bytes, pid, alive: Number.isInteger(pid) && pid > 0 && native().processAlive(pid) };
  });
}

