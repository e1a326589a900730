/**
 * Whether a host name or address stays on this machine.
 * @internal
 * @module
 */
import { isIP } from "node:net";

/**
 * True for addresses that never leave the host: `localhost`, 127.0.0.0/8, `::1` and
 * IPv4-mapped 127.x. Other names are not resolved: they count as remote.
 */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith("127.");
  if (family !== 6) return false;
  let norm: string;
  try {
    norm = new URL(`http://[${host}]/`).hostname;
  } catch {
    return false;
  }
  return norm === "[::1]" || norm.startsWith("[::ffff:7f");
}
