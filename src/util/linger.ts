/**
 * Linger: how long `close()` waits for what a handle already accepted to reach its peers — a
 * tcp sender's stream to its receivers (a publisher's over TCP), a queue endpoint's puts waiting
 * for their acknowledgement, an rpc server's requests still being handled. One option name and
 * meaning on every handle that waits on close: the handle's `linger` option, overridden per call
 * by `close({ linger })`; `0` drops at once. Whatever is still undelivered when it passes is
 * dropped, and the application is told so by a process warning (code `PLEXUS_LINGER`).
 * (Internal, but for {@link CloseOptions}: not part of the public API.)
 * @module
 */
import { performance } from "node:perf_hooks";
import { MAX_TIMER_MS, readOptions } from "./options.js";

/** Options of `close()` on a handle that waits for what it already accepted (see docs/operations.md, *Closing*). */
export interface CloseOptions {
  /**
   * Wait at most this many ms for what the handle already accepted to be delivered (`0`: drop
   * it now). Default: the handle's `linger` option, itself 2000 ms by default. What is dropped is
   * reported with a process warning (code `PLEXUS_LINGER`).
   */
  linger?: number;
}

/** The default `linger` of every handle that waits on close (ms). */
export const DEFAULT_LINGER = 2000;

/** Code of the process warning a close emits when its linger passed and it dropped something. */
export const LINGER_WARNING = "PLEXUS_LINGER";

/**
 * The `linger` a `close(opts)` call asks for, or undefined for the handle's own; a bad one is an
 * `InvalidArgumentError` ("close: option "linger" must be a number in 0..2147483647, got -1").
 * (A handle's own `linger` option is read with the others: `o.number("linger", DEFAULT_LINGER, 0, MAX_TIMER_MS)`.)
 */
export function requestedLinger(opts: CloseOptions | undefined): number | undefined {
  if (opts === undefined) return undefined;
  const o = readOptions("close", opts);
  return o.number("linger", undefined, 0, MAX_TIMER_MS);
}

/** The `linger` of a `close(opts)` call: `opts.linger`, else the handle's own `fallback`. */
export function closeLinger(opts: CloseOptions | undefined, fallback: number): number {
  return requestedLinger(opts) ?? fallback;
}

/** Tells the application that a close dropped what it had not delivered (`what` says what, and whose). */
export function warnDropped(what: string): void {
  process.emitWarning(`plexus: ${what}`, { code: LINGER_WARNING });
}

/**
 * The wait of one close: it ends when what it waits for is done ({@link end}), or when its
 * linger passes ({@link expired} then). A later `close()` with a shorter linger shortens it
 * ({@link shorten}). Its timer keeps the process alive while it waits: `close()` is awaited.
 */
export class Linger {
  /** Resolves when the wait ended, either way. */
  readonly ended: Promise<void>;
  /** It ended because the linger passed. */
  expired = false;
  /** The linger that counts (ms), for messages. */
  ms = 0;
  private resolve!: () => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private at = Infinity;
  private over = false;

  /** @param ms - the linger (ms) */
  constructor(ms: number) {
    this.ended = new Promise<void>((resolve) => (this.resolve = resolve));
    this.shorten(ms);
  }

  /** Ends the wait at the latest `ms` from now (an earlier end stands). */
  shorten(ms: number): void {
    const at = performance.now() + ms;
    if (this.over || at >= this.at) return;
    this.at = at;
    this.ms = ms;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.expired = true;
      this.end();
    }, ms);
  }

  /** What it waited for is done: the wait ends now. */
  end(): void {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    this.resolve();
  }
}
