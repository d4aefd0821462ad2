/**
 * The reference's `NameWhitelistProcessor`: passes only events whose name is listed.
 *
 * @module
 */

import type { TrackingEvent } from "../event.ts";
import { DROP, type ProcessorObject } from "../processor.ts";
import * as v from "valibot";
import { type Expect, isPlainObject, must, options, parseOptions, type SameType, strings } from "../_schema.ts";

/** Options of {@linkcode NameAllowlistProcessor}; give one of the two. */
export interface NameAllowlistOptions {
  /** The exact event names to pass: an array, a Set, or an object whose keys are the names. */
  allowlist?: Iterable<string> | Record<string, unknown>;
  /** The reference's name for `allowlist`. */
  whitelist?: Iterable<string> | Record<string, unknown>;
}

const NAMES = "an array, Set or object of event names";

/* @__NO_SIDE_EFFECTS__ */
function names() {
  return v.union([
    strings(NAMES),
    v.custom<Record<string, unknown>>(isPlainObject, must(NAMES)),
  ], must(NAMES));
}

/** The schema of {@linkcode NameAllowlistOptions}: what the constructor and the `name_allowlist` ENGINE check. */
export const nameAllowlistOptions = /* @__PURE__ */ (() =>
  v.pipe(
    options({ allowlist: v.optional(names()), whitelist: v.optional(names()) }),
    v.check(
      (o) => o.allowlist === undefined || o.whitelist === undefined,
      '"allowlist" and "whitelist" (its reference name) are the same option: give one',
    ),
    v.forward(
      v.check(
        (o) => o.allowlist !== undefined || o.whitelist !== undefined,
        `must be ${NAMES} (or give it as "whitelist"), got undefined`,
      ),
      ["allowlist"],
    ),
  ))();
type _SameOptions = Expect<SameType<v.InferInput<typeof nameAllowlistOptions>, NameAllowlistOptions>>;

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
   * @throws {ImproperlyConfigured} Unless exactly one of `allowlist` and `whitelist` is given, as an array, Set
   * or object (a plain string is refused).
   */
  constructor(options: NameAllowlistOptions) {
    const o = parseOptions(nameAllowlistOptions, options, "NameAllowlistProcessor");
    const list = o.allowlist ?? o.whitelist ?? [];
    this.allowlist = new Set(Array.isArray(list) ? list as readonly string[] : Object.keys(list));
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
