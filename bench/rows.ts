/**
 * The rows of the suite (bench/README.md, "The suite"): an id, a title and the method printed
 * with the table. Cases name their row by id; a row without registered cases is not offered by
 * the CLI.
 * @module
 */

/** A row of the suite. */
export interface Row {
  /** Short id used on the command line, e.g. "lat". */
  readonly id: string;
  /** Heading of the row's table. */
  readonly title: string;
  /** How the row is measured, printed under the heading. */
  readonly method: string;
}

const rows: Row[] = [
  {
    id: "lat",
    title: "lat: round trip between two processes, 64 B and 4 KiB",
    method:
      "Ping-pong with one message in flight: the parent sends, the peer replies with a message of the same size as soon as the whole message is in, " +
      "the parent's wake-up ends the round trip. RTT per round trip from performance.now(); p50/p99 of the median repetition (by p50). " +
      "Peers run in a forked child process, except worker postMessage (main <-> worker thread, same process).",
  },
  {
    id: "thr",
    title: "thr: one-way stream between two processes",
    method:
      "The parent writes `count` messages back to back (waiting only for the transport's own backpressure); the reader in a child process touches " +
      "one byte per 64 B of every message and confirms the total over the IPC channel. Time = first write to that confirmation. " +
      "Socket peers stream raw bytes without framing (their best case). The memcpy floor is one process, no reader: native memcpy of each " +
      "message into consecutive slots of a shared-memory segment (max(8 MiB, 2 x message)), an upper bound. GB = 1e9 B.",
  },
  {
    id: "thread",
    title: "thread: worker <-> main thread",
    method:
      "Latency: ping-pong main -> worker -> main, structured-clone copy of a Uint8Array. Throughput: main posts to a worker that touches one byte per " +
      "64 B of every message; credit-based flow control (window of max(4, 16 MiB / message) messages, acks every quarter window). " +
      "'copy' posts the same Uint8Array (cloned each time); 'transfer' allocates a fresh ArrayBuffer per message and transfers it (the allocation is counted).",
  },
];

/**
 * Adds a row (for new rows such as "fan" or "rr"); a row with the same id is replaced.
 * @param row - the row
 */
export function registerRow(row: Row): void {
  const i = rows.findIndex((r) => r.id === row.id);
  if (i >= 0) rows[i] = row;
  else rows.push(row);
}

/** All rows, in suite order. */
export function allRows(): readonly Row[] {
  return rows;
}

/** The row with this id, or a generic one for rows that were never described. */
export function rowById(id: string): Row {
  return rows.find((r) => r.id === id) ?? { id, title: id, method: "" };
}
