/**
 * `plexus settings <path> [name=value...]`: reads, or changes, the settings of a pipeline unit
 * while it runs, through the unit's settings service (docs/pipeline.md, *Live settings*).
 * @module
 */
import { Command } from "commander";
import { InvalidArgumentError, NoServerError, RemoteError } from "../errors.js";
import { settingsService, type SettingsRequest } from "../graph/units.js";
import { action, CliError, joinGraph, topicArg, type AddressOptions } from "./common.js";
import { assignment, valueArg } from "./run.js";

/** The `settings` command. */
export function settingsCommand(): Command {
  return new Command("settings")
    .description("print the settings of a running pipeline unit, or change some (name=value; values are JSON or strings), e.g. plexus settings SYS/LFO freq=0.5")
    .argument("<path>", "the unit's path, e.g. SYS/LFO")
    .argument("[assignments...]", "settings to change: name=value")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("settings", async (path: string, assignments: string[], opts: AddressOptions) => {
        topicArg(path);
        const set: Record<string, unknown> = {};
        for (const a of assignments) {
          const [name, value] = assignment(a, "a setting");
          set[name] = valueArg(value);
        }
        await using node = await joinGraph(opts, "plexus settings");
        const client = await node.client<SettingsRequest, object>(settingsService(path));
        try {
          const now = await client.request(assignments.length > 0 ? { set } : {}, { timeout: 5000 });
          console.log(JSON.stringify(now));
        } catch (err) {
          if (err instanceof NoServerError) throw new CliError(`no pipeline unit ${path} runs in this graph`);
          if (err instanceof RemoteError && err.remoteCode === InvalidArgumentError.code) throw new InvalidArgumentError(err.message);
          throw err;
        } finally {
          await client.close();
        }
      }),
    );
}
