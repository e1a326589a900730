/**
 * The loopback rule, decided here for every protocol: plain TCP only on addresses that stay on
 * this machine, unless the user opts out (`allowInsecure`); anything else needs TLS.
 * (Internal: not part of the public API.)
 * @module
 */
import { isIP } from "node:net";
import { AccessDeniedError } from "../errors.js";

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

/**
 * Throws `AccessDeniedError` if plain TCP (no TLS) would be used on `host` and `host` is not a
 * loopback address, unless `allowInsecure`. `role` says whether this end serves or connects;
 * `tlsOption` names the option that turns TLS on.
 */
export function refusePlainTcp(host: string, tls: boolean, allowInsecure: boolean, role: "serve" | "connect", tlsOption = "tls"): void {
  if (tls || allowInsecure || isLoopback(host)) return;
  const on = role === "serve" ? `plain TCP on ${host}` : `plain TCP to ${host}`;
  const fix = role === "serve" ? `serve TLS (option ${tlsOption})` : `use TLS (option ${tlsOption})`;
  throw new AccessDeniedError(`${on}, which is not a loopback address, is refused: ${fix} or opt out with allowInsecure: true`);
}
