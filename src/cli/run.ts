/**
 * `plexus run <module>`: runs the pipeline a module exports as its default export (a unit or a
 * collection, its class, or a function making one), with placements and settings given on the
 * command line; Ctrl-C stops it in order. Workers and processes import the same module.
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Command } from "commander";
import { UnitError } from "../errors.js";
import { componentOf } from "../pipeline/entry.js";
import { PLACEMENTS, type Component, type Placement } from "../pipeline/component.js";
import { run } from "../pipeline/runner.js";
import { action, addressOf, CliError, palette, usageError, type AddressOptions } from "./common.js";

interface RunCommandOptions extends AddressOptions {
  place: string[];
  set: string[];
  single?: boolean;
}

/** `path=value` pairs, repeated: `--place SYS/F=process --place SYS/G=worker`. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A value given on the command line: JSON when it parses (numbers, booleans, arrays), else the string itself. */
export function valueArg(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Splits `name=value`; a usage error naming `flag` otherwise. */
export function assignment(text: string, flag: string): [string, string] {
  const i = text.indexOf("=");
  if (i <= 0) throw usageError(`${flag} takes name=value, got ${JSON.stringify(text)}`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/** The `run` command. */
export function runCommand(): Command {
  return new Command("run")
    .description("run the pipeline a module exports (its default export: a unit or a collection); Ctrl-C shuts every unit down in order")
    .argument("<module>", "the module (a .js file) whose default export is the system")
    .option("-p, --place <path=placement>", `place a component: ${PLACEMENTS.join(", ")} (repeatable)`, collect, [])
    .option("-s, --set <path.setting=value>", "set a setting of a component, e.g. SYS/LFO.freq=0.5 (repeatable; values are JSON or strings)", collect, [])
    .option("--single", "run every unit in this thread")
    .option("-a, --address <host:port>", "GraphServer; one is started here if none answers (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("run", async (file: string, opts: RunCommandOptions) => {
        const address = addressOf(opts);
        const placement: Record<string, Placement> = {};
        for (const p of opts.place) {
          const [path, where] = assignment(p, "--place");
          placement[path] = where as Placement;
        }
        const settings: Record<string, Record<string, unknown>> = {};
        for (const s of opts.set) {
          const [key, value] = assignment(s, "--set");
          const dot = key.lastIndexOf(".");
          if (dot <= 0) throw usageError(`--set takes path.setting=value, got ${JSON.stringify(s)}`);
          (settings[key.slice(0, dot)] ??= {})[key.slice(dot + 1)] = valueArg(value);
        }
        const module = pathToFileURL(resolve(file)).href;
        let exported: { default?: unknown };
        try {
          exported = (await import(module)) as { default?: unknown };
        } catch (err) {
          throw new CliError(`cannot import ${file}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
        const system = componentOf(exported.default) as Component<object>;
        try {
          await run(system, { module, address, placement, settings, single: opts.single });
        } catch (err) {
          if (!(err instanceof UnitError)) throw err;
          const c = palette(process.stderr);
          process.stderr.write(`${c.red("plexus run:")} ${err.message} [${err.code}]\n${err.cause instanceof Error ? (err.cause.stack ?? "") : ""}\n`);
          process.exitCode = 1;
        }
      }),
    );
}
