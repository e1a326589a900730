/**
 * What every `plexus` command shares: exit codes, error printing, the checks of arguments (a
 * bad one is a usage error, exit 2, before anything happens), colors (only on a terminal),
 * connecting to the GraphServer with a clear message when none runs.
 * @module
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { InvalidArgumentError, PlexusError, SystemError, TimeoutError } from "../errors.js";
import { GraphClient, defaultAddress, parseAddress } from "../graph/client.js";
import { checkTopic } from "../graph/registry.js";
import { connect, type Node } from "../node/node.js";

/** Exit codes of the `plexus` command (docs/cli.md). */
export const Exit = {
  /** Success. */
  Ok: 0,
  /** The command failed (the reason is on stderr). */
  Failed: 1,
  /** Bad usage: unknown command or option, bad argument. */
  Usage: 2,
  /** No GraphServer answered (or no daemon runs, for `stop` and `status`). */
  NoServer: 3,
} as const;

/** An error that ends a command with a message and an exit code (no stack trace). */
export class CliError extends Error {
  /** @param message - printed on stderr; @param exitCode - the process exit code */
  constructor(
    message: string,
    readonly exitCode: number = Exit.Failed,
  ) {
    super(message);
  }
}

/** A bad argument or option value: exit 2, before the command does anything. */
export function usageError(message: string): CliError {
  return new CliError(message, Exit.Usage);
}

/** `value` (of `flag`) as an integer in `min`..`max`; else a usage error. */
export function intArg(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw usageError(`${flag} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** `value` (of `flag`) as a number (not necessarily whole) in `min`..`max`; else a usage error. */
export function numberArg(value: string, flag: string, min: number, max = Number.MAX_VALUE): number {
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw usageError(`${flag} must be a number ${max === Number.MAX_VALUE ? `>= ${min}` : `in ${min}..${max}`}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** `value` (of `flag`) as a port number (0: any free port); `true` (the flag without a value) is 0. */
export function portArg(value: string | true, flag: string): number {
  return value === true ? 0 : intArg(value, flag, 0, 65535);
}

/** A topic (or service) argument, checked before anything connects; else a usage error. */
export function topicArg(topic: string): string {
  try {
    return checkTopic(topic);
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

/** Colors, only when `stream` is a terminal and NO_COLOR is not set. */
export function palette(stream: NodeJS.WriteStream = process.stdout): { bold(s: string): string; dim(s: string): string; red(s: string): string; green(s: string): string; yellow(s: string): string; cyan(s: string): string } {
  const on = stream.isTTY === true && !process.env.NO_COLOR;
  const wrap = (code: number) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: wrap(1), dim: wrap(2), red: wrap(31), green: wrap(32), yellow: wrap(33), cyan: wrap(36) };
}

/** Wraps a command action: errors become one line on stderr and an exit code. */
export function action<A extends unknown[]>(name: string, fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const c = palette(process.stderr);
      if (err instanceof CliError) {
        process.stderr.write(`${c.red(`plexus ${name}:`)} ${err.message}\n`);
        process.exitCode = err.exitCode;
      } else if (err instanceof InvalidArgumentError) {
        // Always about what the command was given (an argument, an option, PLEXUS_GRAPH).
        process.stderr.write(`${c.red(`plexus ${name}:`)} ${err.message}\n`);
        process.exitCode = Exit.Usage;
      } else if (err instanceof PlexusError) {
        process.stderr.write(`${c.red(`plexus ${name}:`)} ${err.message} [${err.code}]\n`);
        process.exitCode = Exit.Failed;
      } else {
        process.stderr.write(`${c.red(`plexus ${name}:`)} ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = Exit.Failed;
      }
    }
  };
}

/** The file an option names; one that cannot be read is a usage error. */
export function readArgFile(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw usageError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Options of commands that talk to a running GraphServer. */
export interface AddressOptions {
  /** `host:port`. */
  address?: string;
}

/**
 * The GraphServer address of a command: `--address`, else `PLEXUS_GRAPH`, else the default;
 * a malformed one is a usage error.
 */
export function addressOf(opts: AddressOptions): string {
  const address = opts.address ?? defaultAddress();
  try {
    parseAddress(address);
  } catch (err) {
    throw usageError(`${opts.address !== undefined ? "--address" : "PLEXUS_GRAPH"}: ${(err as Error).message}`);
  }
  return address;
}

/** The message when no GraphServer answers at `address`. */
export function noServer(address: string): CliError {
  return new CliError(`no GraphServer answers at ${address}; start one with \`plexus serve\` (foreground) or \`plexus start\` (background), or point PLEXUS_GRAPH at one`, Exit.NoServer);
}

/** True if `err` means nobody listens (or answers) there. */
export function isUnreachable(err: unknown): boolean {
  return (err instanceof SystemError && ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "ENOTFOUND"].includes(err.errnoName)) || err instanceof TimeoutError;
}

/**
 * TLS options for reaching a GraphServer that serves TLS: `PLEXUS_TLS_CA` names a PEM file with
 * the authority (or the self-signed certificate) to trust. Undefined when the variable is unset.
 */
export function clientTls(): ConnectionOptions | undefined {
  const file = process.env.PLEXUS_TLS_CA;
  if (!file) return undefined;
  try {
    return { ca: readFileSync(file) };
  } catch (err) {
    throw new CliError(`PLEXUS_TLS_CA: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The access token commands present: `PLEXUS_TOKEN`. */
export function clientToken(): string | undefined {
  return process.env.PLEXUS_TOKEN || undefined;
}

/** Connects to a running GraphServer (never starts one). */
export async function connectGraph(opts: AddressOptions, name: string): Promise<GraphClient> {
  const address = addressOf(opts);
  try {
    return await GraphClient.connect({ address, embedded: false, timeout: 3000, name, token: clientToken(), tls: clientTls() });
  } catch (err) {
    if (isUnreachable(err)) throw noServer(address);
    throw err;
  }
}

/** Joins a running GraphServer as a node (never starts one), named `name`. */
export async function joinGraph(opts: AddressOptions, name: string): Promise<Node> {
  const address = addressOf(opts);
  try {
    return await connect({ address, embedded: false, reconnect: 0, timeout: 3000, name, token: clientToken(), tls: clientTls() });
  } catch (err) {
    if (isUnreachable(err)) throw noServer(address);
    throw err;
  }
}

/** Formats a count per second: 1234 -> "1.23k". */
export function human(n: number, unit = ""): string {
  const abs = Math.abs(n);
  const [v, s] = abs >= 1e9 ? [n / 1e9, "G"] : abs >= 1e6 ? [n / 1e6, "M"] : abs >= 1e3 ? [n / 1e3, "k"] : [n, ""];
  const digits = Math.abs(v) >= 100 || s === "" ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${s}${unit}`;
}
