/**
 * The `plexus` command tree. This release has one tool: `plexus shm` lists and sweeps
 * shared-memory segments; more commands arrive with the GraphServer.
 * @module
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { Command } from "commander";
import { sweepStaleSegments } from "../transport/shm.js";
import { native } from "../native.js";
import { zerobufferCommand } from "./zerobuffer.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };

/** Builds the command tree (exported for tests). */
export function program(): Command {
  const cli = new Command("plexus")
    .description("Zero-copy messaging for TypeScript on Node.js")
    .version(pkg.version)
    .showHelpAfterError();
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
  return cli;
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

