/**
 * Optional CPU pinning (`--pin`), with `taskset`: on a 2-vCPU VM a cross-core wake costs several
 * times a same-core one, and where the scheduler puts a peer decides a latency number more than
 * the transport does. `same` puts the suite (all its threads) and every peer process on CPU 0;
 * `cross` puts the suite on CPU 0 and peer processes on CPU 1 (worker threads stay with the
 * suite, so worker cases are same-core in both modes). `none` (default) leaves it to the kernel.
 * @module
 */
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";

/** A pinning mode. */
export type Pinning = "none" | "same" | "cross";

/** The pinning modes accepted by `--pin`. */
export const PINNINGS: readonly Pinning[] = ["none", "same", "cross"];

/** Where peer processes are pinned ({@link pinSuite} sets it); undefined: not pinned. */
let peerCpu: number | undefined;

/** The CPU peer processes are started on, if pinned. */
export function peerCpuOf(): number | undefined {
  return peerCpu;
}

/**
 * Pins this process (all threads existing now; later threads inherit) and chooses the CPU of
 * the peers. Throws if `taskset` is missing or `cross` is asked for on a single CPU.
 */
export function pinSuite(pinning: Pinning): void {
  if (pinning === "none") return;
  if (pinning === "cross" && availableParallelism() < 2) throw new Error("--pin cross needs at least 2 CPUs");
  execFileSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
  peerCpu = pinning === "same" ? 0 : 1;
}
