/**
 * Process-wide named trackers, and `emit` on the default one.
 *
 * @module
 */

import { Tracker } from "./tracker.ts";

/** The name `registerTracker` and `getTracker` use when given none. */
export const DEFAULT_TRACKER_NAME = "default";

const trackers = new Map<string, Tracker>();

/**
 * Registers a tracker under a name, replacing any tracker of that name.
 *
 * @example Register and use the default tracker
 * ```ts
 * import { emit, InMemoryBackend, registerTracker, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * registerTracker(new Tracker({ backends: { sink } }));
 * emit("edx.ui.click");
 * assert.equal(sink.events[0].name, "edx.ui.click");
 * ```
 *
 * @throws {TypeError} If `tracker` is not a {@linkcode Tracker}.
 */
export function registerTracker(tracker: Tracker, name: string = DEFAULT_TRACKER_NAME): void {
  if (!(tracker instanceof Tracker)) {
    throw new TypeError(`Cannot register tracker "${name}": expected a Tracker`);
  }
  trackers.set(name, tracker);
}

/**
 * Returns the tracker registered under `name`.
 *
 * @example
 * ```ts
 * import { getTracker, registerTracker, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const tracker = new Tracker();
 * registerTracker(tracker, "analytics");
 * assert.equal(getTracker("analytics"), tracker);
 * ```
 *
 * @throws {Error} If no tracker is registered under that name.
 */
export function getTracker(name: string = DEFAULT_TRACKER_NAME): Tracker {
  const tracker = trackers.get(name);
  if (tracker === undefined) {
    throw new Error(`Cannot get tracker "${name}": none is registered under that name; call registerTracker() first`);
  }
  return tracker;
}

/**
 * Emits an event on the default tracker. See {@linkcode Tracker.emit}.
 *
 * @example
 * ```ts
 * import { emit, InMemoryBackend, registerTracker, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * registerTracker(new Tracker({ backends: { sink } }));
 * const id = emit("navigation.request", { url: "/" });
 * assert.equal(sink.events[0].id, id);
 * ```
 *
 * @returns The event's id.
 * @throws {Error} If no default tracker is registered.
 */
export function emit(name?: string, data?: unknown): string {
  return getTracker().emit(name, data);
}
