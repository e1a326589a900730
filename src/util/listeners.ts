/**
 * The listeners of a handle's events (`handle.on(event, listener)`): named events, each with one
 * argument type, checked names, and listeners whose throws are contained.
 * (Internal: not part of the public API.)
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import { contained } from "./blocking.js";

/** Listeners by event, for an event map `E` (event name -> argument type). */
export class Listeners<E extends object> {
  private readonly sets = new Map<keyof E, Set<(arg: never) => void>>();
  private readonly names: ReadonlySet<string>;

  /**
   * @param what - the handle, for errors ("a queue client")
   * @param names - every event name
   */
  constructor(
    private readonly what: string,
    names: readonly (keyof E & string)[],
  ) {
    this.names = new Set(names);
  }

  /** Adds `listener` to `event`; unknown names and non-functions are an `InvalidArgumentError`. */
  on<K extends keyof E & string>(event: K, listener: (arg: E[K]) => void): void {
    if (!this.names.has(event)) throw new InvalidArgumentError(`${this.what} has no event ${JSON.stringify(event)} (${[...this.names].join(", ")})`);
    if (typeof listener !== "function") throw new InvalidArgumentError(`the listener of "${event}" must be a function`);
    let set = this.sets.get(event);
    if (set === undefined) this.sets.set(event, (set = new Set()));
    set.add(listener);
  }

  /** Removes a listener. */
  off<K extends keyof E & string>(event: K, listener: (arg: E[K]) => void): void {
    this.sets.get(event)?.delete(listener);
  }

  /** Listeners of `event`. */
  count(event: keyof E): number {
    return this.sets.get(event)?.size ?? 0;
  }

  /** Calls every listener of `event` with `arg` (a throw in one is contained). */
  emit<K extends keyof E>(event: K, arg: E[K]): void {
    const set = this.sets.get(event);
    if (set === undefined) return;
    for (const l of [...set]) contained(l as (a: E[K]) => void)?.(arg);
  }
}
