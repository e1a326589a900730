/**
 * `plexus pub <topic> <json>` and `plexus echo <topic>`: quick manual checks of a running graph.
 * @module
 */
import { Command } from "commander";
import { summarize } from "../dashboard/summary.js";
import { action, intArg, joinGraph as join, topicArg, usageError, type AddressOptions } from "./common.js";

/** The `pub` command. */
export function pubCommand(): Command {
  return new Command("pub")
    .description("publish a JSON value on a topic (subscribers present now receive it)")
    .argument("<topic>", "topic")
    .argument("<json>", "the value, as JSON")
    .option("-n, --count <n>", "publish it n times", "1")
    .option("-i, --interval <ms>", "pause between messages", "0")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("pub", async (topic: string, json: string, opts: AddressOptions & { count: string; interval: string }) => {
        topicArg(topic);
        let value: unknown;
        try {
          value = JSON.parse(json);
        } catch {
          throw usageError(`not JSON: ${json}`);
        }
        const count = intArg(opts.count, "--count", 1);
        const interval = intArg(opts.interval, "--interval", 0);
        await using node = await join(opts, "plexus pub");
        const pub = await node.publisher(topic);
        for (let i = 0; i < count; i++) {
          if (i > 0 && interval > 0) await new Promise((r) => setTimeout(r, interval));
          await pub.publish(value);
        }
        process.stderr.write(`published ${count} message(s) on ${topic} to ${pub.subscribers} subscriber(s)\n`);
        await pub.close();
      }),
    );
}

/** The `echo` command. */
export function echoCommand(): Command {
  return new Command("echo")
    .description("print the messages of a topic, one JSON line each (typed arrays shortened)")
    .argument("<topic>", "topic")
    .option("-n, --count <n>", "exit after n messages")
    .option("-v, --verbose", "prefix each line with the sequence number and the publisher id")
    .option("-a, --address <host:port>", "GraphServer (default: PLEXUS_GRAPH or 127.0.0.1:25978)")
    .action(
      action("echo", async (topic: string, opts: AddressOptions & { count?: string; verbose?: boolean }) => {
        topicArg(topic);
        const count = opts.count === undefined ? Infinity : intArg(opts.count, "--count", 1);
        await using node = await join(opts, "plexus echo");
        const sub = await node.subscriber(topic, { backpressure: "drop-oldest", queue: 256 });
        process.stderr.write(`listening on ${topic}\n`);
        const quit = (): void => void sub.close();
        process.once("SIGINT", quit);
        process.once("SIGTERM", quit);
        let seen = 0;
        try {
          await sub.forEach((s) => {
            process.stdout.write(`${opts.verbose ? `${s.sequence} ${s.publisher} ` : ""}${summarize(s.value)}\n`);
            if (++seen >= count) void sub.close();
          });
        } finally {
          process.off("SIGINT", quit);
          process.off("SIGTERM", quit);
        }
      }),
    );
}
