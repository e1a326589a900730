/**
 * How a pipeline's units show in the graph: each running unit serves a request/response service
 * `<path>#settings` that reads and changes its settings and describes the unit (docs/pipeline.md).
 * Shared by the pipeline that serves it and the tools that read it (`plexus graph --pipelines`,
 * `plexus settings`, the dashboard).
 * (Internal: not part of the public API.)
 * @module
 */

/** The suffix of a unit's settings service. */
export const UNIT_SERVICE_SUFFIX = "#settings";

/** The request/response service through which a unit's settings are read and changed while it runs. */
export function settingsService(path: string): string {
  return `${path}${UNIT_SERVICE_SUFFIX}`;
}

/** The unit whose settings service `service` is, or undefined if it is none. */
export function unitOfService(service: string): string | undefined {
  return service.endsWith(UNIT_SERVICE_SUFFIX) && service.length > UNIT_SERVICE_SUFFIX.length ? service.slice(0, -UNIT_SERVICE_SUFFIX.length) : undefined;
}

/** A request to a unit's settings service: `set` changes some settings (checked), nothing reads them; `describe` asks for a {@link UnitDescription}. */
export interface SettingsRequest {
  /** The settings to change. */
  set?: Record<string, unknown>;
  /** Answer with the unit's description instead of its settings. */
  describe?: boolean;
}

/** What a unit's settings service answers to `{ describe: true }`: where it runs, its streams, its settings. */
export interface UnitDescription {
  /** The unit's path. */
  path: string;
  /** Its placement. */
  placement: "main" | "worker" | "process";
  /** Its process. */
  pid: number;
  /** Its thread (0: the main thread of its process). */
  threadId: number;
  /** Its streams: property name, kind and topic. */
  streams: { name: string; kind: "input" | "output"; topic: string }[];
  /** Its settings now. */
  settings: object;
}
