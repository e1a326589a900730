/**
 * A description of the machine a run happened on, printed with every table.
 * @module
 */
import { cpus, loadavg, release, totalmem, type as osType, arch } from "node:os";

/** The machine and runtime of a run. */
export interface Machine {
  /** CPU model string. */
  cpu: string;
  /** Logical CPUs available to this process. */
  cores: number;
  /** Node version. */
  node: string;
  /** OS and kernel release. */
  kernel: string;
  /** CPU architecture. */
  arch: string;
  /** Total memory, GiB. */
  memoryGiB: number;
  /** 1-minute load average at the start of the run. */
  load1: number;
}

/** Describes the current machine. */
export function describeMachine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? "unknown",
    cores: list.length,
    node: process.version,
    kernel: `${osType()} ${release()}`,
    arch: arch(),
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    load1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

/** One line: "AMD EPYC, 2 cores (x64), Linux 6.1, Node v20.20.2, 7.8 GiB, load 0.12". */
export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores (${m.arch}), ${m.kernel}, Node ${m.node}, ${m.memoryGiB} GiB RAM, load ${m.load1} at start`;
}
