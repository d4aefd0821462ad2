/**
 * The reference's `NameWhitelistProcessor`: passes only events whose name is listed.
 *
 * @module
 */

import type { TrackingEvent } from "../event.ts";
import { typeName } from "../diagnostics.ts";
import { DROP, type ProcessorObject } from "../processor.ts";

/** Options of {@linkcode NameAllowlistProcessor}; give one of the two. */
export interface NameAllowlistOptions {
  /** The exact event names to pass: an array, a Set, or an object whose keys are the names. */
  allowlist?: Iterable<string> | Record<string, unknown>;
  /** The reference's name for `allowlist`. */
  whitelist?: Iterable<string> | Record<string, unknown>;
}

function toNames(list: unknown): Set<string> {
  if (typeof list === "string" || list === null || list === undefined || typeof list !== "object") {
    throw new TypeError(
      `The NameAllowlistProcessor must be passed an array, Set or object of event names as 'allowlist': got ${
        typeName(list)
      }`,
    );
  }
  if (Symbol.iterator in list) return new Set(list as Iterable<string>);
  return new Set(Object.keys(list));
}

/**
 * Drops every event whose name is not in the allowlist (exact match).
 *
 * Given an array of events (a batch, as event-routing-backends sends), it
 * returns a new array with only the allowed ones and never drops the batch.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, NameAllowlistProcessor, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { sink },
 *   processors: [new NameAllowlistProcessor({ allowlist: ["edx.course.enrollment.activated"] })],
 * });
 * tracker.emit("edx.course.enrollment.activated");
 * tracker.emit("edx.ui.click");
 * assert.deepEqual(sink.events.map((e) => e.name), ["edx.course.enrollment.activated"]);
 * ```
 */
export class NameAllowlistProcessor implements ProcessorObject {
  /** The allowed names. */
  readonly allowlist: ReadonlySet<string>;

  /**
   * Creates the processor.
   *
   * @throws {TypeError} If neither `allowlist` nor `whitelist` is an array, Set or object (a plain string is refused).
   */
  constructor(options: NameAllowlistOptions) {
    const list = options?.allowlist ?? options?.whitelist;
    this.allowlist = toNames(list);
  }

  /** Returns `undefined` (keep) for an allowed event, {@linkcode DROP} otherwise. */
  process(event: TrackingEvent): undefined | typeof DROP;
  /** Returns the allowed events of a batch. */
  process(events: readonly TrackingEvent[]): TrackingEvent[];
  process(
    event: TrackingEvent | readonly TrackingEvent[],
  ): undefined | typeof DROP | TrackingEvent[] {
    if (Array.isArray(event)) return event.filter((item) => this.allowlist.has(item?.name));
    return this.allowlist.has((event as TrackingEvent)?.name) ? undefined : DROP;
  }
}
