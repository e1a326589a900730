/**
 * `plexus bench`: runs the benchmark suite (bench/ in the source tree, `dist/bench/main.js`
 * once built) with its progress bar and Markdown table. The suite is not part of the installed
 * package: the command says so instead of failing obscurely.
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { action, CliError } from "./common.js";

/** Where the built suite is, relative to this file (dist/src/cli -> dist/bench). */
export function benchScript(): string {
  return fileURLToPath(new URL("../../bench/main.js", import.meta.url));
}

/** The `bench` command. */
export function benchCommand(): Command {
  return new Command("bench")
    .description("run the benchmark suite: progress bar on stderr, a Markdown table (or JSON) on stdout")
    .argument("[rows...]", "rows to run (default: all; `plexus bench --help-rows` lists them)")
    .option("--quick", "fewer and shorter cases (a smoke run)")
    .option("--json", "print the JSON report instead of the Markdown table")
    .option("--out <dir>", "where to write the report files")
    .addOption(new Option("--pin <mode>", "CPU pinning").choices(["none", "same", "cross"]).default("none"))
    .option("--help-rows", "list the rows and exit")
    .action(
      action("bench", async (rows: string[], opts: { quick?: boolean; json?: boolean; out?: string; pin: string; helpRows?: boolean }) => {
        const script = benchScript();
        if (!existsSync(script)) {
          throw new CliError("the benchmark suite is not installed with this package; run it from a source checkout: `npm run build && plexus bench` (or `npm run bench`)");
        }
        const args = opts.helpRows ? ["--help"] : [...rows, ...(opts.quick ? ["--quick"] : []), ...(opts.json ? ["--json"] : []), ...(opts.out ? ["--out", opts.out] : []), "--pin", opts.pin];
        const child = spawn(process.execPath, [script, ...args], { stdio: "inherit" });
        const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
        process.on("SIGINT", forward);
        const code = await new Promise<number>((resolve) => child.on("exit", (c, s) => resolve(c ?? (s ? 130 : 1))));
        process.off("SIGINT", forward);
        process.exitCode = code;
      }),
    );
}
