/**
 * Verdicts over the ledgers of one chaos pattern: what was sent, resolved, failed and received,
 * and every violation — torn or wrong messages, resolved but never received, duplicates,
 * gaps in a pub/sub stream, puts or requests that ended in a timeout (a hang, since every
 * participant's death is detected long before).
 */
import type { Ledger } from "./ledger.js";

/** Which promises a pattern's ledgers are held to. */
export interface Promises {
  /** A resolved operation was received by the other side's application (reliable queues, rpc). */
  resolvedIsReceived: boolean;
  /** Each receiver sees each publisher incarnation's messages in order without gaps (pub/sub, `block`). */
  gapless: boolean;
}

export interface Verdicts {
  resolved: number;
  failed: number;
  received: number;
  /** Received with a checksum or payload that does not match its id. */
  torn: number;
  /** Answers that did not match their request, or ids no participant sends. */
  wrong: number;
  /** Resolved, never received by any application, where the pattern promises it. */
  lost: number;
  /** Resolved (acknowledged on arrival: fast mode) but not taken by an application — allowed when the receiver was killed. */
  ackedNotTaken: number;
  /** The same id received more than once. */
  duplicates: number;
  /** Pub/sub: messages missing between two received ones of the same publisher incarnation. */
  gaps: number;
  /** Operations that failed with a timeout. */
  timeouts: number;
  /** Failures by error code. */
  failures: Record<string, number>;
  /** A few examples of each violation. */
  examples: string[];
}

/** Judges the ledgers of one pattern. `senders` are the incarnation tags whose ids are legitimate. */
export function judge(ledgers: readonly Ledger[], promises: Promises): Verdicts {
  const v: Verdicts = { resolved: 0, failed: 0, received: 0, torn: 0, wrong: 0, lost: 0, ackedNotTaken: 0, duplicates: 0, gaps: 0, timeouts: 0, failures: {}, examples: [] };
  const example = (s: string): void => {
    if (v.examples.length < 20) v.examples.push(s);
  };
  const senders = new Set(ledgers.map((l) => l.name));
  const received = new Map<string, number>();
  for (const l of ledgers) {
    const last = new Map<string, number>();
    for (const g of l.got) {
      v.received++;
      received.set(g.id, (received.get(g.id) ?? 0) + 1);
      const sep = g.id.lastIndexOf(":");
      const tag = g.id.slice(0, sep);
      const n = Number(g.id.slice(sep + 1));
      if (!g.ok) {
        v.torn++;
        example(`torn ${g.id} at ${l.name}`);
      } else if (!senders.has(tag) || !Number.isInteger(n)) {
        v.wrong++;
        example(`unknown id ${g.id} at ${l.name}`);
      }
      if (promises.gapless && Number.isInteger(n)) {
        const prev = last.get(tag);
        if (prev !== undefined && n !== prev + 1) {
          if (n > prev + 1) {
            v.gaps += n - prev - 1;
            example(`gap ${tag}:${prev + 1}..${n - 1} at ${l.name}`);
          } else {
            v.duplicates++;
            example(`out of order ${g.id} after ${prev} at ${l.name}`);
          }
        }
        last.set(tag, n);
      }
    }
    for (const w of l.wrong) {
      v.wrong++;
      example(`wrong answer to ${w} at ${l.name}`);
    }
  }
  if (!promises.gapless) {
    for (const [id, n] of received) {
      if (n > 1) {
        v.duplicates += n - 1;
        example(`duplicate ${id} (${n} times)`);
      }
    }
  }
  for (const l of ledgers) {
    for (const id of l.resolved) {
      v.resolved++;
      if (!received.has(id)) {
        if (promises.resolvedIsReceived) {
          v.lost++;
          example(`resolved, never received: ${id}`);
        } else v.ackedNotTaken++;
      }
    }
    for (const f of l.failed) {
      v.failed++;
      v.failures[f.code] = (v.failures[f.code] ?? 0) + 1;
      if (f.code === "ERR_PLEXUS_TIMEOUT") {
        v.timeouts++;
        example(`timed out: ${f.id}`);
      }
    }
  }
  return v;
}
