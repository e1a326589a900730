/**
 * Peer of the eventfd floor: waits on the ping eventfd (inherited at spawn) with the addon's
 * `uv_poll` watcher, drains it and signals the pong eventfd. Usage:
 * `eventfd-echo.js <ping-fd> <pong-fd> [stamp]`; with `stamp` it does not answer but notes the
 * time of each wake-up (CLOCK_MONOTONIC, as the paced row's subscribers), answered and
 * forgotten by `wakes`: a one-way receiver, whose sender does not wait for it.
 * @module
 */
import { native } from "../../src/native.js";
import { monotonicNs } from "./paced-arrivals.js";
import { serve } from "./runtime.js";

const addon = native();
const ping = Number(process.argv[2]);
const pong = Number(process.argv[3]);
const stamp = process.argv[4] === "stamp";
let wakes: number[] = [];
if (!Number.isInteger(ping) || !Number.isInteger(pong)) throw new Error("usage: eventfd-echo.js <ping-fd> <pong-fd>");

const watcher = new addon.Watcher(ping, (events) => {
  if (events & 2) {
    process.exitCode = 1;
    watcher.close();
    return;
  }
  if (stamp) wakes.push(monotonicNs());
  addon.eventfdDrain(ping);
  if (!stamp) addon.eventfdSignal(pong);
});

serve(
  (op) => {
    if (op !== "wakes") return null;
    const got = Float64Array.from(wakes);
    wakes = [];
    return got;
  },
  {},
  () => watcher.close(),
);
