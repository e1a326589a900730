/**
 * Peer of the eventfd floor: waits on the ping eventfd (inherited at spawn) with the addon's
 * `uv_poll` watcher, drains it and signals the pong eventfd. Usage: `eventfd-echo.js <ping-fd> <pong-fd>`.
 * @module
 */
import { native } from "../../src/native.js";
import { serve } from "./runtime.js";

const addon = native();
const ping = Number(process.argv[2]);
const pong = Number(process.argv[3]);
if (!Number.isInteger(ping) || !Number.isInteger(pong)) throw new Error("usage: eventfd-echo.js <ping-fd> <pong-fd>");

const watcher = new addon.Watcher(ping, (events) => {
  if (events & 2) {
    process.exitCode = 1;
    watcher.close();
    return;
  }
  addon.eventfdDrain(ping);
  addon.eventfdSignal(pong);
});

serve(() => null, {}, () => watcher.close());
