/**
 * Who this process is: a host id (to tell "same host" from "other host") and the thread id.
 * (Internal: not part of the public API.)
 * @module
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { threadId } from "node:worker_threads";

let cached: string | undefined;

/** An id of this machine for this boot: shared memory never outlives a boot. */
export function hostId(): string {
  if (cached === undefined) {
    let boot = "";
    try {
      boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      // not Linux: the host name alone
    }
    cached = `${hostname()}/${boot}`;
  }
  return cached;
}

/** The host name in a host id of {@link hostId} (what people call the machine). */
export function hostName(id: string): string {
  const slash = id.lastIndexOf("/");
  return slash > 0 ? id.slice(0, slash) : id;
}

/** This thread's identity within the host. */
export function self(): { host: string; pid: number; threadId: number } {
  return { host: hostId(), pid: process.pid, threadId };
}
