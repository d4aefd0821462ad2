/**
 * A backend that keeps events in an array, for tests.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { TrackingEvent } from "../event.ts";

/**
 * Keeps every event it receives in {@linkcode InMemoryBackend.events}, in order.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * new Tracker({ backends: { sink } }).emit("a", { x: 1 });
 * assert.deepEqual(sink.events[0].data, { x: 1 });
 * ```
 */
export class InMemoryBackend implements Backend {
  /** The events received so far, oldest first. */
  readonly events: TrackingEvent[] = [];

  /** Appends the event to {@linkcode InMemoryBackend.events}. */
  send(event: TrackingEvent): void {
    this.events.push(event);
  }
}
