/**
 * `plexus/pipeline`: units and collections placed on threads and processes by one `run()`.
 * A {@link Unit} declares typed inputs and outputs, settings, and its work (handlers, producers,
 * tasks); a {@link Collection} holds units and collections and connects their streams; `run()`
 * places each component in the main thread, a worker thread or a process of its own, and every
 * connection is a topic edge of the graph: the value itself within a thread, a shared-memory
 * ring between threads and processes. See docs/pipeline.md.
 * @packageDocumentation
 */
export { Collection, Component, Unit, PLACEMENTS, type CollectionClass, type ComponentStatics, type NoSettings, type Placement, type UnitClass } from "./component.js";
export { Input, Output, Topic, connect, input, output, topic, type Backpressure, type Connection, type InputOptions, type OutputOptions, type Sink, type Source } from "./stream.js";
export { setting, type NumberBounds, type Setting, type SettingsOf, type SettingsSchema } from "./settings.js";
export { Runner, run, start, type RunOptions, type RunState, type UnitPlace } from "./runner.js";
export { UnitHarness, testUnit, type TestUnitOptions } from "./testing.js";
export { AbortError, BackpressureError, ClosedError, CycleError, InvalidArgumentError, NotFoundError, PlexusError, TimeoutError, UnitError } from "../errors.js";
export type { BlockingOptions } from "../util/blocking.js";
